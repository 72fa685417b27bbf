// Command underlink-webhook serves underlink's admission webhooks (pod network injection; validation of
// pools, multus configs, pods and workloads) and runs the SpiderMultusConfig → NetworkAttachmentDefinition
// controller on the elected leader. See webhook/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/klog/v2/textlogger"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/certs"
	"github.com/underlink/underlink/webhook/app"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/snapshot"
)

// clusterFlags collects repeated --static-cluster values.
type clusterFlags []string

func (c *clusterFlags) String() string     { return strings.Join(*c, " ") }
func (c *clusterFlags) Set(v string) error { *c = append(*c, v); return nil }

func main() {
	var o app.Options
	var static clusterFlags
	var configMap string
	flag.StringVar(&o.DefaultNetwork, "default-network", app.DefaultNetwork, "Multus network (namespace/name) injected into pods of opted-in namespaces that name none; a namespace's underlink.io/default-network annotation overrides it")
	flag.StringVar(&o.SchedulerName, "scheduler-name", "", "scheduler set on injected pods that still use the default scheduler, e.g. "+app.DefaultSchedulerName+"; empty leaves spec.schedulerName alone")
	flag.StringVar(&o.Snapshot.LocalCluster, "local-cluster", "", "this cluster's Submariner cluster ID; empty infers it from the default/kubernetes service IP")
	flag.Var(&static, "static-cluster", "a cluster without a Submariner Cluster object, as id=cluster-b,cluster-cidr=172.111.0.0/16,service-cidr=10.243.0.0/18 (repeatable)")
	flag.StringVar(&configMap, "static-clusters-configmap", "", "namespace/name of a ConfigMap whose key "+snapshot.ConfigMapKey+" lists more static clusters")
	flag.StringVar(&o.Host, "webhook-host", "", "address the webhook server listens on (empty: all)")
	flag.IntVar(&o.Port, "webhook-port", app.DefaultPort, "port the webhook server listens on")
	flag.StringVar(&o.CertDir, "cert-dir", app.DefaultCertDir, "--cert-mode=cert-manager: directory with the serving certificate tls.crt and key tls.key; reloaded when they change")
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", app.DefaultMetricsAddr, "address of the metrics endpoint (HTTPS; each scrape authenticated and authorized by the apiserver); 0 turns it off")
	flag.BoolVar(&o.InsecureMetrics, "metrics-insecure", false, "serve metrics over plain HTTP without authentication (tests only)")
	flag.BoolVar(&o.EnableHTTP2, "enable-http2", false, "serve the webhooks and metrics over HTTP/2 too; off because of HTTP/2's stream-reset denial-of-service flaws")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", app.DefaultProbeAddr, "address of /healthz and /readyz")
	flag.BoolVar(&o.LeaderElection, "leader-elect", true, "elect one replica to run the controller; the webhooks run on every replica")
	flag.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
	flag.StringVar(&o.LeaderElectionID, "leader-election-id", app.DefaultLeaderElectionID, "name of the leader election Lease")
	flag.BoolVar(&o.DisableController, "disable-controller", false, "serve only the webhooks")
	var drainFor time.Duration
	flag.DurationVar(&drainFor, "drain", 100*time.Second, "after SIGTERM, keep serving, closing each kept-alive connection after its answer and reporting not ready, until the clients have closed every connection or this long; the apiserver closes an idle one after 90 s")
	o.Drain = &app.Drain{}
	flag.StringVar(&o.FastPathConfiguration, "fast-path-webhook-configuration", registration.ConfigurationName, "ValidatingWebhookConfiguration whose "+registration.FastPathConditionName+" condition the controller keeps, so the apiserver skips the webhook for pods naming an existing network; empty: always call")
	var certOpts certs.Options
	certOpts.AddFlags(flag.CommandLine)
	logConfig := textlogger.NewConfig()
	logConfig.AddFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(textlogger.NewLogger(logConfig))
	log := ctrl.Log.WithName("setup")

	for _, s := range static {
		c, err := snapshot.ParseClusterFlag(s)
		if err != nil {
			fail(err)
		}
		o.Snapshot.StaticClusters = append(o.Snapshot.StaticClusters, c)
	}
	if configMap != "" {
		ns, name, ok := strings.Cut(configMap, "/")
		if !ok || ns == "" || name == "" {
			fail(fmt.Errorf("--static-clusters-configmap %q: write namespace/name", configMap))
		}
		o.Snapshot.StaticClustersConfigMap = &client.ObjectKey{Namespace: ns, Name: name}
	}
	if o.DefaultNetwork == "" {
		fail(fmt.Errorf("--default-network is empty; name the SpiderMultusConfig pods get, e.g. %s", app.DefaultNetwork))
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		fail(fmt.Errorf("kubeconfig: %w", err))
	}
	cm, err := certs.New(cfg, certOpts, ctrl.Log.WithName("certs"))
	if err != nil {
		fail(err)
	}
	o.Certs = cm
	mgr, err := app.New(cfg, o)
	if err != nil {
		fail(err)
	}
	log.Info("starting", "defaultNetwork", o.DefaultNetwork, "schedulerName", o.SchedulerName, "localCluster", o.Snapshot.LocalCluster, "staticClusters", len(o.Snapshot.StaticClusters))
	if err := mgr.Start(app.SignalContext(o.Drain, drainFor, log.Info)); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "underlink-webhook:", err)
	os.Exit(1)
}
