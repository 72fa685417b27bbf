// Command underlink-agent is underlink's node daemon (a hostNetwork DaemonSet): cluster-wide IPAM for the
// underlink-ipam CNI plugin on a root-only unix socket, the underlay NIC labels of its node, garbage
// collection of leaked addresses, and the answers Spiderpool's plugins need for the DEL of the pods
// Spiderpool set up on its node (cni/agent/spidercompat). See cni/agent and cni/IPAM.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/textlogger"

	"github.com/underlink/underlink/api/cniconf"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/cni/agent"
	"github.com/underlink/underlink/cni/agent/spidercompat"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "underlink-agent:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("underlink-agent", flag.ContinueOnError)
	hostname, _ := os.Hostname()
	var (
		o          agent.Options
		kubeconfig = fs.String("kubeconfig", "", "kubeconfig file; empty uses the in-cluster service account, then $KUBECONFIG")
		nics       = fs.String("nics", "", "comma-separated underlay NICs to label; empty: the masters of the cluster's SpiderMultusConfigs, else ens224")
		qps        = fs.Float64("kube-api-qps", 50, "apiserver requests per second")
		burst      = fs.Int("kube-api-burst", 100, "apiserver request burst")
	)
	fs.StringVar(&o.NodeName, "node-name", envOr("NODE_NAME", hostname), "this node's name")
	fs.StringVar(&o.LabelPrefix, "label-prefix", underlay.LabelPrefix, "prefix of the node labels <prefix><nic>=up|down; must be the scheduler's UnderlayNetwork labelPrefix")
	fs.StringVar(&o.Socket, "socket", cniconf.DefaultAgentSocket, "unix socket to serve IPAM on (directory created 0700, socket 0600)")
	fs.DurationVar(&o.GCInterval, "gc-interval", 30*time.Second, "time between garbage collection passes")
	fs.DurationVar(&o.GCGrace, "gc-grace", 60*time.Second, "how long an address must stay orphaned (pod gone or replaced) before it is freed")
	fs.BoolVar(&o.StatefulSets, "statefulset-fixed-ips", true, "keep a StatefulSet pod's addresses for its ordinal: the pod recreated under its name gets them back, and they are freed once the StatefulSet no longer wants the ordinal (recorded in SpiderEndpoints, as Spiderpool does)")
	fs.DurationVar(&o.GCNodeLostAfter, "gc-node-lost-timeout", 0, "free the addresses of pods gone from a node that has been down (NotReady, or its kubelet's Lease expired) this long; 0 keeps them until the node is back, since the old containers may still answer with them on the underlay")
	fs.StringVar(&o.CNIBinDir, "cni-bin-dir", "", "the host's CNI bin directory as mounted here; with --daemonset, the plugins underlink installed there are removed when the agent stops because its DaemonSet was deleted")
	fs.StringVar(&o.DaemonSet, "daemonset", "", "this agent's DaemonSet (in --lease-namespace), whose deletion means underlink is uninstalled")
	// Off unless given (the chart gives spidercompat.DefaultSocket): a test bed running several agents
	// on one host must not have each of them take the host's Spiderpool socket.
	fs.StringVar(&o.SpiderpoolSocket, "spiderpool-socket", "", "Spiderpool's agent socket, e.g. "+spidercompat.DefaultSocket+": while no Spiderpool agent answers there, answer Spiderpool's CNI plugins for the DEL of the pods Spiderpool set up (and refuse their ADD, saying how to fix the network); empty: off")
	fs.BoolVar(&o.Preallocate, "preallocate", true, "give pods scheduled to this node their default network's addresses as soon as they are seen, so CNI ADD does not wait for a pool write; false: allocate on ADD")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":9711", "address of /metrics; 0 disables")
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", ":9712", "address of /healthz and /readyz; 0 disables")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", "0", "address of /debug/pprof for profiling; 0 disables")
	fs.StringVar(&o.LeaseNamespace, "lease-namespace", envOr("POD_NAMESPACE", "kube-system"), "namespace of the garbage collection Lease")
	fs.DurationVar(&o.LeaseDuration, "lease-duration", 15*time.Second, "garbage collection Lease duration")
	fs.DurationVar(&o.RenewDeadline, "lease-renew-deadline", 10*time.Second, "garbage collection Lease renew deadline")
	fs.DurationVar(&o.RetryPeriod, "lease-retry-period", 2*time.Second, "garbage collection Lease retry period")
	logConfig := textlogger.NewConfig()
	logConfig.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Log = textlogger.NewLogger(logConfig)
	if err := underlay.ValidateLabelPrefix(o.LabelPrefix); err != nil {
		return fmt.Errorf("--label-prefix %q: %w", o.LabelPrefix, err)
	}
	if *nics != "" {
		for _, n := range strings.Split(*nics, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.NICs = append(o.NICs, n)
			}
		}
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	cfg.UserAgent = "underlink-agent/" + o.NodeName
	o.Config = cfg
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return agent.Run(ctx, o)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	if cfg, err := rest.InClusterConfig(); err == nil {
		return cfg, nil
	}
	if p := os.Getenv("KUBECONFIG"); p != "" {
		return clientcmd.BuildConfigFromFlags("", p)
	}
	return nil, fmt.Errorf("no apiserver: not in a cluster, and neither --kubeconfig nor $KUBECONFIG is set")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
