// Command underlink-localenv starts, stops and lists underlink's local clusters (cluster-a, cluster-b):
// the implementation behind `make up`, `make down` and `make status`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/localenv"
)

func main() {
	dir := flag.String("dir", ".local", "directory for state, logs, pid files and kubeconfigs")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: underlink-localenv [-dir .local] up|down|status\n\nUNDERLINK_PORT_BASE moves every port (default 10000: cluster-a apiserver 16443, cluster-b 26443).\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctrllog.SetLogger(logr.Discard()) // envtest's CRD installer logs through controller-runtime; our lines say enough
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	base := 0
	if s := os.Getenv("UNDERLINK_PORT_BASE"); s != "" {
		b, err := strconv.Atoi(s)
		if err != nil || b < 1024 || b > 30000 {
			fmt.Fprintf(os.Stderr, "UNDERLINK_PORT_BASE=%q: want a number from 1024 to 30000 (ports are base+6443 and base+16443 and nearby)\n", s)
			os.Exit(2)
		}
		base = b
	}
	env := &localenv.Env{Dir: *dir, Clusters: localenv.Clusters(base), Out: os.Stdout}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	var err error
	switch flag.Arg(0) {
	case "up":
		if err = env.Up(ctx); err == nil {
			fmt.Println()
			for _, c := range env.Clusters {
				fmt.Printf("  kubectl --kubeconfig %s get clusters.submariner.io -A\n", env.KubeconfigPath(c))
			}
			fmt.Printf("\nor: export KUBECONFIG=%s   (kubectl: %s)\n", env.KubeconfigPath(env.Clusters[0]), kubectlPath())
		}
	case "down":
		err = env.Down()
	case "status":
		var st []localenv.ProcessStatus
		if st, err = env.Status(); err == nil {
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLUSTER\tPROCESS\tPID\tSTATE\tPORT\tLOG")
			for _, s := range st {
				state, pid := "stopped", "-"
				if s.Running {
					state, pid = "running", strconv.Itoa(s.PID)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Cluster, s.Name, pid, state, s.Port, s.Log)
			}
			tw.Flush()
		}
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "underlink-localenv %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
}

func kubectlPath() string {
	if p, err := controlplane.Binary("kubectl"); err == nil {
		return p
	}
	return "kubectl"
}
