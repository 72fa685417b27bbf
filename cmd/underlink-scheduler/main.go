// Command underlink-scheduler is kube-scheduler v1.37 with underlink's UnderlayNetwork plugin
// registered. It takes every kube-scheduler flag; enable the plugin in a profile of its
// KubeSchedulerConfiguration (deploy/scheduler/), as a second scheduler or as an extra profile of the
// cluster's scheduler.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/underlink/underlink/scheduler/underlaynetwork"
)

func main() {
	cmd := app.NewSchedulerCommand(app.WithPlugin(underlaynetwork.Name, underlaynetwork.New))
	cmd.Use = "underlink-scheduler"
	os.Exit(cli.Run(cmd))
}
