// Command chartgen regenerates the underlink chart's CRDs, scheduler configuration and webhook
// configurations from their sources (deploy/crds, deploy/scheduler and webhook/registration);
// `make generate-chart` runs it from the repository root.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/underlink/underlink/hack/chartgen"
)

func main() {
	crds := flag.String("crds", "deploy/crds", "directory of the CRDs controller-gen writes")
	sched := flag.String("scheduler-config", "deploy/scheduler/underlink-scheduler.yaml", "the second-scheduler KubeSchedulerConfiguration")
	chart := flag.String("chart", "deploy/helm/underlink", "chart directory to write into")
	flag.Parse()
	files, err := chartgen.Files(*crds, *sched)
	if err == nil {
		err = chartgen.Write(*chart, files)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartgen:", err)
		os.Exit(1)
	}
}
