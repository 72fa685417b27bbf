package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/api/scheme"
	"github.com/underlink/underlink/cli/doctor"
	"github.com/underlink/underlink/webhook/snapshot"
)

func init() {
	register(command{
		name:    "doctor",
		summary: "check a live cluster against every rule, as a checklist (exit 1 when a check fails)",
		run:     runDoctor,
	})
}

// staticClusters is doctor's repeatable --static-cluster flag.
type staticClusters []string

func (s *staticClusters) String() string     { return strings.Join(*s, " ") }
func (s *staticClusters) Set(v string) error { *s = append(*s, v); return nil }

func runDoctor(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("underlink doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var kubeconfig, kubeContext, output string
	var statics staticClusters
	var o doctor.Options
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to check (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kubeContext, "context", "", "kubeconfig context to use")
	fs.StringVar(&output, "o", "text", "output format: text or json")
	fs.StringVar(&o.Snapshot.LocalCluster, "local-cluster", "", "the local cluster's Submariner ID (default: the Cluster whose service CIDR holds the API server's service IP)")
	fs.StringVar(&o.Snapshot.DefaultNetwork, "default-network", "kube-system/macvlan-conf", "the network the webhook injects into pods that name none (its --default-network)")
	fs.Var(&statics, "static-cluster", "a cluster without a Submariner Cluster object, as the webhook's --static-cluster (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: underlink doctor [--kubeconfig FILE] [-o text|json]\n\n"+
			"Checks the cluster's Submariner clusters, pools, multus configs, their NADs, pods and workloads\n"+
			"against every underlink rule: ✓ holds, ! warning, ✗ broken (with why and the fix).\n"+
			"Exit 1 when a check fails, 2 when the cluster cannot be read.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if output != "text" && output != "json" {
		fmt.Fprintf(stderr, "underlink doctor: -o %q: use text or json\n", output)
		return 2
	}
	for _, s := range statics {
		c, err := snapshot.ParseClusterFlag(s)
		if err != nil {
			fmt.Fprintln(stderr, "underlink doctor:", err)
			return 2
		}
		o.Snapshot.StaticClusters = append(o.Snapshot.StaticClusters, c)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "underlink doctor: kubeconfig: %v\n", err)
		return 2
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		fmt.Fprintf(stderr, "underlink doctor: connect to %s: %v\n", cfg.Host, err)
		return 2
	}
	rep, err := doctor.Run(ctx, c, o)
	if err != nil {
		fmt.Fprintf(stderr, "underlink doctor: read cluster %s: %v\n", cfg.Host, err)
		return 2
	}
	if output == "json" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "underlink doctor:", err)
		return 2
	}
	if rep.Failed() {
		return 1
	}
	return 0
}
