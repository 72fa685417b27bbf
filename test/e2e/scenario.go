package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/underlink/underlink/api/scheme"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/nodes"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/test/submariner"
	"github.com/vishvananda/netlink"
)

// Target is what the scenario runs against.
type Target struct {
	Out io.Writer
	// Kubectl and Helm are the binaries; Chart is the chart's directory.
	Kubectl, Helm, Chart string
	// Images are the tarballs imported into the nodes (their references name the chart's images and the
	// test app).
	Images []nodes.Image
	// MultusTree is Multus' unpacked release tree, whose thin DaemonSet manifest the scenario applies.
	MultusTree string
	// Clusters are cluster-a and cluster-b, in that order.
	Clusters []TargetCluster
	// RestartUnderlink restarts underlink's pods after the install step: the running nodes got rebuilt
	// images under the same tags, which running pods would not pick up.
	RestartUnderlink bool
	// Previous is the previous release, which the upgrade step installs and then upgrades from; nil when
	// `make images-previous` has not built it.
	Previous *Release
}

// Release is a release of underlink: its chart and its own images.
type Release struct {
	Chart  string
	Images []nodes.Image
}

// TargetCluster is one cluster of the scenario.
type TargetCluster struct {
	Name, Kubeconfig         string
	ClusterCIDR, ServiceCIDR string
	Nodes                    []TargetNode
	// Hosts are the cluster's foreign hosts by name (NodePlan), outside Kubernetes.
	Hosts map[string]*netbed.Netns
}

// TargetNode is a node and its network namespace (for the link fault and the cable's counters).
type TargetNode struct {
	Name    string
	Gateway bool
	Net     *netbed.Netns
	// Kubelet stops and starts the node's kubelet, for the node-failure step.
	Kubelet NodeDaemon
	// ContainerdSocket is the node's containerd socket as this process reaches it (images are imported
	// through it).
	ContainerdSocket string
	// CNIConfDir is the node's /etc/cni/net.d as this process reaches it (the bed writes what a peer's
	// installer would, where the peer has no image here).
	CNIConfDir string
}

// NodeDaemon is a node daemon that the node-failure step stops and starts again.
type NodeDaemon interface {
	// Stop stops it the way a failing node loses it; what it started keeps running.
	Stop() error
	// Start brings it back.
	Start() error
	// How says how Stop stops it, for the scenario's output.
	How() string
}

// UnderlayLabel is the node label underlink's agent keeps for ens224, with the chart's default prefix.
var UnderlayLabel = underlay.LabelKey(underlay.LabelPrefix, "ens224")

// the seed's objects
const (
	appName      = "test-app"
	svcName      = "test-app-svc"
	configName   = "macvlan-conf"
	configNS     = "kube-system"
	probePodName = "fault-probe"
	releaseNS    = "underlink-system"
	releaseName  = "underlink"
)

// errStop ends the scenario after a step whose failure leaves nothing for the next steps to show.
var errStop = errors.New("stop")

type runner struct {
	ctx    context.Context
	t      Target
	out    io.Writer
	report *Report
	a, b   TargetCluster
	// filled as the scenario goes
	testApp  string
	pods     map[string][]podInfo // cluster → Running test-app pods
	svcIP    map[string]string    // cluster → test-app-svc ClusterIP
	pools    map[string]string    // cluster → pool ips range
	stepNo   int
	remained []string
}

type podInfo struct{ Name, IP, Node string }

// Run follows the seed on both clusters and returns every check. It never returns early without a
// report: a failed step ends the run, and the checks it did not reach are listed as not run.
func Run(ctx context.Context, t Target) *Report {
	r := newRunner(ctx, t)
	if len(t.Clusters) != 2 {
		r.fail("scenario", fmt.Sprintf("needs cluster-a and cluster-b, got %d clusters", len(t.Clusters)))
		return r.report
	}
	r.a, r.b = t.Clusters[0], t.Clusters[1]
	return r.run([]step{
		{"Start from a clean slate (objects of an earlier run)", r.clean},
		{"Submariner: the clusters are joined (subctl show all)", r.showSubmariner},
		{"Install Multus (its own thin DaemonSet, as Spiderpool's chart does)", r.installMultus},
		{"Install underlink (the Helm chart, as a user would)", r.install},
		{"Configure SpiderIPPool: the seed's pools, verbatim", r.seedPools},
		{"Configure SpiderIPPool: corrected", r.correctedPools},
		{"Configure SpiderMultusConfig: the seed's, verbatim", r.multusConfigs},
		{"Create Deployment: the seed's, verbatim", r.seedDeployment},
		{"Create Deployment: corrected", r.correctedDeployment},
		{"Check the running status of the Pods", r.showPods},
		{"Multus' network-status: the pool's IPs, eth0, and kubectl get po -o wide", r.networkStatus},
		{"Routes inside a cluster-a pod", r.podRoutes},
		{"Ping from a cluster-a pod to a cluster-b pod", r.pingAB},
		{"HTTP from a cluster-a pod to cluster-b's Service, and back", r.httpBothWays},
		{"Fault: ens224 down on a node", r.linkFault},
		{"Several networks on one pod through Multus (k8s.v1.cni.cncf.io/networks, both formats), each coordinated", r.severalNetworks},
		{"Bad input: a pod Event names the network and the cause; no IP or veth left", r.badInput},
		{"A second underlay NIC: net1 on ens256 beside eth0, replies by net1, hijack routes by each veth", r.secondNIC},
		{"A network whose parent is missing on a node: its pods are never placed there", r.parentMissing},
		{"IP conflict with a host outside Kubernetes: the ADD names its MAC, the pool records it, the next ADD gets another address", r.ipConflict},
		{"An address moves to a pod on another node: the foreign host's ARP cache follows within a second", r.addressMove},
		{"Day 2: a pool in use, a cluster joining, a network deleted under a running Deployment", r.day2},
		{"Day 2: a node fails under a running pod (kubelet and agent stopped, the pod force-deleted); no process but root reaches the agent", r.nodeFailure},
		{"Dual stack: IPv4 and IPv6 pools on one network; pods on two nodes ping each other and their node over both families", r.dualStack},
		{"matchMasterSubnet: nodes on two subnets; each pod gets the pool of its node's subnet, and the scheduler places by it", r.matchMasterSubnet},
		{"StatefulSet fixed IPs: rolled twice and a pod force-deleted, every pod keeps its addresses; scaled down and deleted, they are released", r.statefulSet},
		{"Upgrade: helm upgrade from the previous release while pods are created at 20/s", r.upgradeUnderLoad},
	})
}

func newRunner(ctx context.Context, t Target) *runner {
	r := &runner{ctx: ctx, t: t, out: t.Out, report: &Report{}, pods: map[string][]podInfo{}, svcIP: map[string]string{}, pools: map[string]string{}}
	if r.out == nil {
		r.out = io.Discard
	}
	return r
}

// step is one titled step of a scenario.
type step struct {
	title string
	run   func() error
}

// run runs steps in order and returns every check. It never returns early without a report: a failed
// step ends the run, and the checks it did not reach are listed as not run.
func (r *runner) run(steps []step) *Report {
	start := time.Now()
	for i, s := range steps {
		r.stepNo = i
		fmt.Fprintf(r.out, "\n\033[1m== %d. %s\033[0m\n", i, s.title)
		if err := s.run(); err != nil {
			if !errors.Is(err, errStop) {
				r.fail(s.title, err.Error())
			}
			for _, rest := range steps[i+1:] {
				r.report.Checks = append(r.report.Checks, Check{Name: rest.title, Skipped: true, Detail: "not run: step " + fmt.Sprint(i) + " failed"})
			}
			break
		}
	}
	r.report.Took = time.Since(start)
	r.report.WriteSummary(r.out)
	return r.report
}

func (r *runner) pass(name, detail string) {
	fmt.Fprintf(r.out, "   ✓ %s %s\n", name, detail)
	r.report.Checks = append(r.report.Checks, Check{Name: name, OK: true, Detail: detail})
}

func (r *runner) fail(name, detail string) {
	fmt.Fprintf(r.out, "   ✗ %s: %s\n", name, detail)
	r.report.Checks = append(r.report.Checks, Check{Name: name, Detail: detail})
}

// check records a check and turns a failure into errStop when the next steps need it.
func (r *runner) check(ok bool, name, detail string) error {
	if ok {
		r.pass(name, detail)
		return nil
	}
	r.fail(name, detail)
	return errStop
}

// kubectl runs kubectl against c, printing the command the way the seed shows it and its output.
func (r *runner) kubectl(c TargetCluster, stdin []byte, args ...string) (string, error) {
	fmt.Fprintf(r.out, "[%s]$ kubectl %s\n", c.Name, strings.Join(args, " "))
	out, err := r.kubectlQuiet(c, stdin, args...)
	if s := strings.TrimRight(out, "\n"); s != "" {
		fmt.Fprintln(r.out, indent(s))
	}
	return out, err
}

func (r *runner) kubectlQuiet(c TargetCluster, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.t.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// showManifest prints a manifest as the seed's `cat <<EOF | kubectl ... -f -`.
func (r *runner) showManifest(c TargetCluster, verb string, m []byte) (string, error) {
	fmt.Fprintf(r.out, "[%s]$ cat <<EOF | kubectl %s -f -\n%sEOF\n", c.Name, verb, indent(strings.TrimRight(string(m), "\n"))+"\n")
	out, err := r.kubectlQuiet(c, m, verb, "-f", "-")
	if s := strings.TrimRight(out, "\n"); s != "" {
		fmt.Fprintln(r.out, indent(s))
	}
	return out, err
}

// both are cluster-a and cluster-b; only cluster-a in a scenario of one cluster (RunMigration).
func (r *runner) both() []TargetCluster {
	if r.b.Name == r.a.Name {
		return []TargetCluster{r.a}
	}
	return []TargetCluster{r.a, r.b}
}

func (r *runner) remote(c TargetCluster) TargetCluster {
	if c.Name == r.a.Name {
		return r.b
	}
	return r.a
}

// clean deletes what an earlier run left (pods first, so their IPs return to the pools). Multus' own
// objects stay: the install step applies its manifest again, which also gives its ClusterRole back the
// rule a stopped bad-input step took.
func (r *runner) clean() error {
	if err := r.cleanUnderlay(r.a); err != nil {
		return err
	}
	if err := r.cleanDay2(r.a); err != nil {
		return err
	}
	if err := r.cleanDualStack(r.a); err != nil {
		return err
	}
	if err := r.cleanStatefulSet(r.a); err != nil {
		return err
	}
	if err := r.cleanNodeFail(r.a); err != nil {
		return err
	}
	if err := r.cleanUpgrade(r.b); err != nil {
		return err
	}
	for _, c := range r.both() {
		if err := r.deleteLeftovers(c, [][]string{
			append([]string{"delete", "pod", "-n", appNamespace, "--ignore-not-found", "--wait=true", "--timeout=60s", "--grace-period=1"}, multusPods...),
			{"delete", "network-attachment-definition", brokenNAD, "-n", appNamespace, "--ignore-not-found"},
			{"delete", "spidermultusconfig", extraNetA, extraNetB, "-n", configNS, "--ignore-not-found"},
			{"delete", "deployment", appName, "--ignore-not-found", "--wait=true", "--timeout=90s"},
			{"delete", "pod", probePodName, "--ignore-not-found", "--wait=true", "--timeout=60s", "--grace-period=1"},
			{"delete", "service", svcName, "--ignore-not-found"},
			{"wait", "--for=delete", "pod", "-l", "app=" + appName, "--timeout=90s"},
			{"delete", "spidermultusconfig", configName, "-n", configNS, "--ignore-not-found"},
			{"delete", "spiderippool", c.Name, "--ignore-not-found"},
		}); err != nil {
			return err
		}
	}
	r.pass("clean slate", "no test-app, test-app-svc, macvlan-conf or seed pools left from an earlier run")
	return nil
}

// deleteLeftovers runs each kubectl command (deletes and waits for deletion) on c, in order. A command
// that finds nothing to wait for, or a kind the cluster does not serve yet (a fresh cluster before the
// install), is not an error.
func (r *runner) deleteLeftovers(c TargetCluster, cmds [][]string) error {
	for _, args := range cmds {
		if out, err := r.kubectlQuiet(c, nil, args...); err != nil && !strings.Contains(out, "no matching resources") &&
			!strings.Contains(out, "the server doesn't have a resource type") {
			return fmt.Errorf("%s: kubectl %s: %v\n%s", c.Name, strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// showSubmariner prints `subctl show all` for each cluster from its Cluster and Endpoint objects, with
// a probe through the cable in place of Submariner's health check.
func (r *runner) showSubmariner() error {
	ok := true
	var details []string
	for _, c := range r.both() {
		fmt.Fprintf(r.out, "[%s]$ subctl show all   # simulated: objects of the broker sync, state of the vxlan cable\n", c.Name)
		in, err := r.submarinerView(c)
		if err != nil {
			return err
		}
		var b strings.Builder
		good := submariner.Show(&b, in)
		fmt.Fprintln(r.out, indent(strings.TrimRight(b.String(), "\n")))
		ok = ok && good
		for _, conn := range in.Connections {
			details = append(details, fmt.Sprintf("%s→%s rtt %s", c.Name, conn.RemoteClusterID, conn.RTT.Round(time.Microsecond)))
		}
	}
	return r.check(ok, "submariner: gateways connected over the vxlan cable", strings.Join(details, ", "))
}

func (r *runner) client(c TargetCluster) (client.Client, error) {
	cfg, err := clientConfig(c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme.New()})
}

func (r *runner) submarinerView(c TargetCluster) (submariner.ShowInput, error) {
	cl, err := r.client(c)
	if err != nil {
		return submariner.ShowInput{}, err
	}
	var clusters submarinerv1.ClusterList
	var eps submarinerv1.EndpointList
	if err := cl.List(r.ctx, &clusters, client.InNamespace(submariner.Namespace)); err != nil {
		return submariner.ShowInput{}, fmt.Errorf("%s: list Submariner Clusters: %w", c.Name, err)
	}
	if err := cl.List(r.ctx, &eps, client.InNamespace(submariner.Namespace)); err != nil {
		return submariner.ShowInput{}, fmt.Errorf("%s: list Submariner Endpoints: %w", c.Name, err)
	}
	in := submariner.ShowInput{LocalClusterID: c.Name, Clusters: clusters.Items, Endpoints: eps.Items, NetworkPlugin: "macvlan (Spiderpool-compatible, underlink)"}
	gw := gatewayOf(c)
	for _, ep := range eps.Items {
		if ep.Spec.ClusterID == c.Name {
			continue
		}
		conn := submariner.Connection{RemoteClusterID: ep.Spec.ClusterID}
		priv, err := netip.ParseAddr(ep.Spec.PrivateIP)
		if err == nil && gw != nil {
			var vtep netip.Prefix
			if vtep, err = submariner.VTEPAddr(priv); err == nil {
				conn.RTT, err = submariner.Probe(gw.Net, vtep.Addr(), 3)
			}
		} else if gw == nil {
			err = errors.New("no gateway node")
		}
		conn.Connected, conn.Err = err == nil, err
		in.Connections = append(in.Connections, conn)
	}
	return in, nil
}

func gatewayOf(c TargetCluster) *TargetNode {
	for i := range c.Nodes {
		if c.Nodes[i].Gateway {
			return &c.Nodes[i]
		}
	}
	return nil
}

// install installs (or upgrades) the chart into both clusters, with the images `make images` built and
// the nodes imported, and opts the default namespace in to injection.
func (r *runner) install() error {
	if _, err := os.Stat(r.t.Chart); err != nil {
		return r.check(false, "underlink installed", fmt.Sprintf("the Helm chart %s is missing (the deploy issue builds it): %v", r.t.Chart, err))
	}
	if r.t.Helm == "" {
		return r.check(false, "underlink installed", "helm is not built: hack/build-tools.sh helm")
	}
	webhookRef, err := nodes.PickImage(r.t.Images, "underlink-webhook")
	if err != nil {
		return r.check(false, "underlink installed", err.Error())
	}
	for _, name := range []string{"underlink-agent", "underlink-scheduler", "underlink-testapp"} {
		if _, err := nodes.PickImage(r.t.Images, name); err != nil {
			return r.check(false, "underlink installed", err.Error())
		}
	}
	r.testApp, _ = nodes.PickImage(r.t.Images, "underlink-testapp")
	repo, tag := splitRef(webhookRef)
	for _, c := range r.both() {
		out, err := r.helmUpgrade(c, r.t.Chart, repo, tag, nil)
		if err != nil {
			pods, _ := r.kubectlQuiet(c, nil, "get", "pods", "-n", releaseNS, "-o", "wide")
			return r.check(false, "underlink installed on "+c.Name, fmt.Sprintf("helm: %v\n%s\n%s", err, out, pods))
		}
		if r.t.RestartUnderlink {
			for _, args := range [][]string{
				{"rollout", "restart", "deployment,daemonset", "-n", releaseNS},
				{"rollout", "status", "deployment", "-n", releaseNS, "--timeout=3m"},
				{"rollout", "status", "daemonset", "-n", releaseNS, "--timeout=3m"},
			} {
				if out, err := r.kubectl(c, nil, args...); err != nil {
					return r.check(false, "underlink restarted on "+c.Name+" with the rebuilt images", out)
				}
			}
		}
		if _, err := r.kubectl(c, nil, "get", "pods", "-n", releaseNS, "-o", "wide"); err != nil {
			return err
		}
		if _, err := r.kubectl(c, nil, "label", "namespace", "default", "underlink.io/inject=enabled", "--overwrite"); err != nil {
			return err
		}
		r.pass("underlink installed on "+c.Name, fmt.Sprintf("chart %s, images %s:%s", r.t.Chart, repo, tag))
	}
	return nil
}

// helmUpgrade installs or upgrades the release on c from chart with the images repo:tag, the test bed's
// values and sets (--set each), and flags, waiting until it is rolled out.
func (r *runner) helmUpgrade(c TargetCluster, chart, repo, tag string, sets []string, flags ...string) (string, error) {
	args := []string{"upgrade", "--install", releaseName, chart, "--kubeconfig", c.Kubeconfig,
		"--namespace", releaseNS, "--create-namespace",
		"--set", "image.repository=" + repo, "--set", "image.tag=" + tag, "--set", "image.pullPolicy=Never",
		// The apiserver reaches Services only through the nodes; pod IPs of a bridge on one node are
		// not routed to the others, node IPs are.
		"--set", "webhook.hostNetwork=true",
		// Underlay pods go to the scheduler that knows which nodes have ens224 up.
		"--set", "webhook.schedulerName=underlink-scheduler",
		"--wait", "--timeout", "4m"}
	for _, e := range sets {
		args = append(args, "--set", e)
	}
	args = append(args, flags...)
	fmt.Fprintf(r.out, "[%s]$ helm %s\n", c.Name, strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, r.t.Helm, args...).CombinedOutput()
	fmt.Fprintln(r.out, indent(lastLines(string(out), 8)))
	return string(out), err
}

func splitRef(ref string) (repo, tag string) {
	i := strings.LastIndexByte(ref, ':')
	j := strings.LastIndexByte(ref, '/')
	if i < 0 || i < j {
		return ref[:max(j, 0)], "latest"
	}
	return ref[:j], ref[i+1:]
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func seedFile(c TargetCluster, kind string) string { return c.Name + "-" + kind + ".yaml" }

// seedPools applies the seed's pools unchanged: both have their gateway outside their subnet, and the
// webhook denies them with the field and the fix.
func (r *runner) seedPools() error {
	for _, c := range r.both() {
		m, err := test.SeedManifest(seedFile(c, "ippool"))
		if err != nil {
			return err
		}
		out, err := r.showManifest(c, "apply", m)
		name := "seed SpiderIPPool " + c.Name + " denied (gateway outside subnet)"
		if err := r.check(err != nil && strings.Contains(out, "spec.gateway"), name,
			firstLine(out, "spec.gateway")); err != nil {
			return err
		}
	}
	return nil
}

func firstLine(out, containing string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, containing) {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lastLines(out, 1))
}

// correctedPools widens each pool's subnet to its underlay segment, which holds the gateway.
func (r *runner) correctedPools() error {
	for _, c := range r.both() {
		m, err := test.SeedManifest(seedFile(c, "ippool"))
		if err != nil {
			return err
		}
		seedSubnet, segment, ips, err := poolSubnets(m, c)
		if err != nil {
			return err
		}
		fix := PoolCorrection(seedSubnet, segment)
		fmt.Fprintf(r.out, "[%s] the denial's second fix, widening spec.subnet, taken up to the whole underlay segment:\n%s", c.Name, indent(Diff(fix)))
		fmt.Fprintln(r.out)
		fixed, err := Correct(m, fix)
		if err != nil {
			return err
		}
		out, err := r.showManifest(c, "apply", fixed)
		if err := r.check(err == nil, "corrected SpiderIPPool "+c.Name+" admitted", strings.TrimSpace(out)); err != nil {
			return err
		}
		r.pools[c.Name] = ips
	}
	return nil
}

// poolSubnets reads a seed pool's subnet and ips, and the underlay segment (the cluster's pod CIDR,
// which holds the gateway).
func poolSubnets(m []byte, c TargetCluster) (subnet, segment, ips string, err error) {
	for _, l := range strings.Split(string(m), "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "subnet: "); ok {
			subnet = v
		}
		if v, ok := strings.CutPrefix(l, `- "`); ok {
			ips = strings.TrimSuffix(v, `"`)
		}
	}
	if subnet == "" || ips == "" {
		return "", "", "", fmt.Errorf("seed pool of %s: no subnet or ips", c.Name)
	}
	return subnet, c.ClusterCIDR, ips, nil
}

// multusConfigs applies the seed's SpiderMultusConfigs (their hijackCIDRs are right) and waits for the
// controller's NetworkAttachmentDefinition.
func (r *runner) multusConfigs() error {
	for _, c := range r.both() {
		m, err := test.SeedManifest(seedFile(c, "multusconfig"))
		if err != nil {
			return err
		}
		out, err := r.showManifest(c, "apply", m)
		if err := r.check(err == nil, "seed SpiderMultusConfig "+c.Name+" admitted", strings.TrimSpace(out)); err != nil {
			return err
		}
		if _, werr := r.waitNAD(c, configName, "underlink-coordinator"); werr != nil {
			return r.check(false, "NetworkAttachmentDefinition "+configNS+"/"+configName+" on "+c.Name, werr.Error())
		}
		if _, err := r.kubectl(c, nil, "get", "network-attachment-definitions", "-n", configNS); err != nil {
			return err
		}
		r.pass("NetworkAttachmentDefinition "+configNS+"/"+configName+" on "+c.Name, "macvlan (ens224) + underlink-ipam + underlink-coordinator")
	}
	return nil
}

// seedDeployment creates the seed's Deployment and Service unchanged: the Deployment names
// kube-system/macvlan-confg, and is denied at create time with a did-you-mean; the Service is created.
func (r *runner) seedDeployment() error {
	m, err := test.SeedManifest("deployment-and-service.yaml")
	if err != nil {
		return err
	}
	for _, c := range r.both() {
		out, err := r.showManifest(c, "create", m)
		denied := err != nil && strings.Contains(out, "macvlan-confg") && strings.Contains(out, "did you mean")
		if err := r.check(denied, "seed Deployment on "+c.Name+" denied (macvlan-confg)", firstLine(out, "macvlan-confg")); err != nil {
			return err
		}
		if !strings.Contains(out, "service/"+svcName+" created") {
			return r.check(false, "seed Service on "+c.Name+" created", out)
		}
	}
	return nil
}

// correctedDeployment creates the Deployment with the network name fixed and the test app's image, and
// waits until its pods run with pool IPs.
func (r *runner) correctedDeployment() error {
	m, err := test.SeedManifest("deployment-and-service.yaml")
	if err != nil {
		return err
	}
	fixes := DeploymentCorrections(r.testApp)
	fixed, err := Correct(m, fixes...)
	if err != nil {
		return err
	}
	deployment, _, _ := strings.Cut(string(fixed), "\n---\n")
	for _, c := range r.both() {
		fmt.Fprintf(r.out, "[%s] corrected (test-app-svc exists from the previous step):\n%s\n", c.Name, indent(Diff(fixes...)))
		out, err := r.showManifest(c, "create", []byte(deployment+"\n"))
		if err := r.check(err == nil, "corrected Deployment on "+c.Name+" admitted", strings.TrimSpace(out)); err != nil {
			return err
		}
	}
	for _, c := range r.both() {
		pods, err := r.waitPods(c, 2, 150*time.Second)
		if err != nil {
			desc, _ := r.kubectlQuiet(c, nil, "describe", "pods", "-l", "app="+appName)
			events, _ := r.kubectlQuiet(c, nil, "get", "events", "-n", appNamespace, "--sort-by=.lastTimestamp")
			return r.check(false, "test-app pods Running on "+c.Name, err.Error()+"\n"+lastLines(desc, 25)+"\n"+lastLines(events, 15))
		}
		var bad []string
		for _, p := range pods {
			if !InRange(p.IP, r.pools[c.Name]) {
				bad = append(bad, fmt.Sprintf("%s has %s, outside pool %s", p.Name, p.IP, r.pools[c.Name]))
			}
		}
		if err := r.check(len(bad) == 0, "test-app pods Running with pool IPs on "+c.Name, podSummary(pods)+strings.Join(bad, "; ")); err != nil {
			return err
		}
		r.pods[c.Name] = pods
	}
	return nil
}

func podSummary(ps []podInfo) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.IP+"@"+p.Node)
	}
	return strings.Join(s, ", ") + " "
}

// waitPods waits until the Deployment has n Running, ready pods with IPs and returns them.
func (r *runner) waitPods(c TargetCluster, n int, timeout time.Duration) ([]podInfo, error) {
	return r.waitLabeled(c, "app="+appName, n, timeout)
}

// waitLabeled waits until the pods of selector in the app namespace are n Running, ready pods with IPs,
// and none is doing anything else, and returns them. n < 0 returns the Running pods after one read.
func (r *runner) waitLabeled(c TargetCluster, selector string, n int, timeout time.Duration) ([]podInfo, error) {
	var pods []podInfo
	var last string
	err := poll.Wait(r.ctx, timeout, pollInterval, fmt.Sprintf("%d Running pods of %s", n, selector), func() (bool, string, error) {
		out, err := r.kubectlQuiet(c, nil, "get", "pods", "-n", appNamespace, "-l", selector, "-o", "json")
		if err != nil {
			last = out
			return n < 0, last, nil
		}
		pods, last = runningPods(out)
		return n < 0 || (len(pods) == n && last == ""), last, nil
	})
	if err != nil {
		return nil, fmt.Errorf("want %d Running pods of %s: %s", n, selector, last)
	}
	return pods, nil
}

// podJSON is what the bed reads of a pod in kubectl's JSON.
type podJSON struct {
	Metadata struct {
		Name              string  `json:"name"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type, Status, Reason, Message string
		} `json:"conditions"`
	} `json:"status"`
}

// started says whether the pod is Running, ready and has an IP, and if not, what it is doing.
func (p podJSON) started() (podInfo, bool, string) {
	if p.Metadata.DeletionTimestamp != nil {
		return podInfo{}, false, p.Metadata.Name + " terminating"
	}
	ready := false
	why := p.Status.Phase
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			ready = true
		}
		if c.Status == "False" && c.Message != "" {
			why += " (" + c.Type + ": " + c.Message + ")"
		}
	}
	if p.Status.Phase == "Running" && ready && p.Status.PodIP != "" {
		return podInfo{Name: p.Metadata.Name, IP: p.Status.PodIP, Node: p.Spec.NodeName}, true, ""
	}
	return podInfo{}, false, p.Metadata.Name + " " + why
}

// runningPods reads `kubectl get pods -o json`: the Running, ready pods with an IP (sorted by name), and
// what the others are doing.
func runningPods(js string) ([]podInfo, string) {
	var list struct {
		Items []podJSON `json:"items"`
	}
	if err := json.Unmarshal([]byte(js), &list); err != nil {
		return nil, err.Error()
	}
	var pods []podInfo
	var others []string
	for _, it := range list.Items {
		if p, ok, why := it.started(); ok {
			pods = append(pods, p)
		} else {
			others = append(others, why)
		}
	}
	slices.SortFunc(pods, func(a, b podInfo) int { return strings.Compare(a.Name, b.Name) })
	return pods, strings.Join(others, "; ")
}

// showPods prints the seed's `kubectl get po -o wide` and `kubectl get svc` on both clusters.
func (r *runner) showPods() error {
	for _, c := range r.both() {
		if _, err := r.kubectl(c, nil, "get", "po", "-o", "wide"); err != nil {
			return err
		}
		if _, err := r.kubectl(c, nil, "get", "svc"); err != nil {
			return err
		}
		ip, err := r.kubectlQuiet(c, nil, "get", "svc", svcName, "-o", "jsonpath={.spec.clusterIP}")
		if err != nil || ip == "" {
			return r.check(false, "test-app-svc ClusterIP on "+c.Name, ip)
		}
		r.svcIP[c.Name] = ip
	}
	return r.check(true, "test-app-svc has a ClusterIP in each cluster", fmt.Sprintf("%s %s, %s %s", r.a.Name, r.svcIP[r.a.Name], r.b.Name, r.svcIP[r.b.Name]))
}

// podRoutes shows `ip route` inside a cluster-a pod: the remote cluster's pod and service CIDRs and the
// local service CIDR via the node over veth0.
func (r *runner) podRoutes() error {
	p := r.pods[r.a.Name][0]
	out, err := r.kubectl(r.a, nil, "exec", p.Name, "--", "ip", "route")
	if err != nil {
		return r.check(false, "routes in "+p.Name, out)
	}
	hijacked := []string{r.b.ServiceCIDR, r.b.ClusterCIDR, r.a.ServiceCIDR}
	problems := HijackProblems(ParseRoutes(out), hijacked)
	return r.check(len(problems) == 0, "cluster-a pod routes "+strings.Join(hijacked, ", ")+" via the node over veth0",
		strings.Join(problems, "; "))
}

// counters reads both gateways' cable counters.
func (r *runner) counters() (map[string]submariner.CableCounters, error) {
	out := map[string]submariner.CableCounters{}
	for _, c := range r.both() {
		gw := gatewayOf(c)
		if gw == nil {
			return nil, fmt.Errorf("%s has no gateway node", c.Name)
		}
		cc, err := submariner.Counters(gw.Net)
		if err != nil {
			return nil, err
		}
		out[c.Name] = cc
	}
	return out, nil
}

// cableDelta prints and checks that both gateways' cables carried at least n packets each way.
func (r *runner) cableDelta(before map[string]submariner.CableCounters, n uint64, what string) error {
	after, err := r.counters()
	if err != nil {
		return err
	}
	ok := true
	var parts []string
	for _, c := range r.both() {
		gw := gatewayOf(c)
		tx, rx := after[c.Name].TxPackets-before[c.Name].TxPackets, after[c.Name].RxPackets-before[c.Name].RxPackets
		fmt.Fprintf(r.out, "[%s]# ip -s link show %s   # on gateway %s: +%d packets out, +%d in\n", c.Name, submariner.TunnelInterface, gw.Name, tx, rx)
		parts = append(parts, fmt.Sprintf("%s tx+%d rx+%d", gw.Name, tx, rx))
		ok = ok && tx >= n && rx >= n
	}
	return r.check(ok, what+" travelled the cable both ways", strings.Join(parts, ", "))
}

func (r *runner) ping(from TargetCluster, p podInfo, dst string) error {
	out, err := r.kubectl(from, nil, "exec", p.Name, "--", "ping", "-c2", dst)
	return r.check(err == nil && strings.Contains(out, "2 packets received"), fmt.Sprintf("ping %s pod → %s pod %s", from.Name, r.remote(from).Name, dst),
		firstLine(out, "packets transmitted"))
}

// pingAB pings a cluster-b pod from a cluster-a pod and shows the cable carried it.
func (r *runner) pingAB() error {
	before, err := r.counters()
	if err != nil {
		return err
	}
	if err := r.ping(r.a, r.pods[r.a.Name][0], r.pods[r.b.Name][0].IP); err != nil {
		return err
	}
	return r.cableDelta(before, 2, "the echoes and replies")
}

func (r *runner) curl(from TargetCluster, p podInfo, dst string) error {
	out, err := r.kubectl(from, nil, "exec", p.Name, "--", "curl", "-I", dst)
	status := HTTPStatus(out)
	return r.check(err == nil && strings.HasPrefix(status, "HTTP/1.1 200"), fmt.Sprintf("HTTP %s pod → %s's test-app-svc %s", from.Name, r.remote(from).Name, dst),
		status+" "+strings.TrimSpace(firstLine(out, "error")))
}

// httpBothWays: cluster-a pod → cluster-b's Service ClusterIP, and cluster-b pod → cluster-a's (with a
// ping back too), each through the cable.
func (r *runner) httpBothWays() error {
	before, err := r.counters()
	if err != nil {
		return err
	}
	if err := r.curl(r.a, r.pods[r.a.Name][0], r.svcIP[r.b.Name]); err != nil {
		return err
	}
	if err := r.ping(r.b, r.pods[r.b.Name][0], r.pods[r.a.Name][0].IP); err != nil {
		return err
	}
	if err := r.curl(r.b, r.pods[r.b.Name][0], r.svcIP[r.a.Name]); err != nil {
		return err
	}
	return r.cableDelta(before, 4, "the HTTP exchanges")
}

// setLink sets a node's ens224 up or down, as `ip link set ens224 down` on the node would.
func setLink(n TargetNode, up bool) error {
	return onNodeLink(n, netbed.UnderlayNIC, func(h netlinksafe.Handle, l netlink.Link) error {
		if up {
			return h.LinkSetUp(l)
		}
		return h.LinkSetDown(l)
	})
}

func (r *runner) nodeLabel(c TargetCluster, node string) string {
	out, _ := r.kubectlQuiet(c, nil, "get", "node", node, "-o", "jsonpath={.metadata.labels."+strings.NewReplacer(".", `\.`, "/", `\/`).Replace(UnderlayLabel)+"}")
	return strings.TrimSpace(out)
}

// linkFault takes ens224 down on cluster-a's second node: the agent relabels it, a pod that may only
// run there stays Pending with the scheduler's reason and new replicas go elsewhere; bringing the link
// up relabels the node and the pod lands.
func (r *runner) linkFault() error {
	c := r.a
	var victim *TargetNode
	for i := range c.Nodes {
		if !c.Nodes[i].Gateway {
			victim = &c.Nodes[i]
		}
	}
	if victim == nil {
		return errors.New("cluster-a has no non-gateway node")
	}
	restore := func() { _ = setLink(*victim, true) }
	defer restore()
	if _, err := r.kubectl(c, nil, "get", "nodes", "-L", UnderlayLabel); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "[%s]# ip link set %s down\n", victim.Name, netbed.UnderlayNIC)
	start := time.Now()
	if err := setLink(*victim, false); err != nil {
		return err
	}
	err := poll.Wait(r.ctx, 15*time.Second, pollInterval, victim.Name+" labelled down", func() (bool, string, error) {
		label := r.nodeLabel(c, victim.Name)
		return label == "down", label, nil
	})
	if err := r.check(err == nil, "agent relabels "+victim.Name+" "+UnderlayLabel+"=down", fmt.Sprintf("after %s", time.Since(start).Round(10*time.Millisecond))); err != nil {
		return err
	}
	if _, err := r.kubectl(c, nil, "get", "nodes", "-L", UnderlayLabel); err != nil {
		return err
	}

	probe := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  annotations:
    v1.multus-cni.io/default-network: %s/%s
spec:
  nodeSelector:
    kubernetes.io/hostname: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: test-app
    image: %s
    imagePullPolicy: IfNotPresent
`, probePodName, configNS, configName, victim.Name, r.testApp)
	if _, err := r.showManifest(c, "create", []byte(probe)); err != nil {
		return err
	}
	var reason string
	err = poll.Wait(r.ctx, 20*time.Second, pollInterval, probePodName+" refused for "+netbed.UnderlayNIC, func() (bool, string, error) {
		out, _ := r.kubectlQuiet(c, nil, "get", "pod", probePodName, "-o", `jsonpath={.spec.nodeName}|{.status.conditions[?(@.type=="PodScheduled")].message}`)
		node, msg, _ := strings.Cut(out, "|")
		if node != "" {
			reason = "bound to " + node + " although its ens224 is down"
			return true, reason, nil
		}
		reason = msg
		return strings.Contains(msg, netbed.UnderlayNIC), reason, nil
	})
	if _, kerr := r.kubectl(c, nil, "get", "pod", probePodName, "-o", "wide"); kerr != nil {
		return kerr
	}
	if err := r.check(err == nil && !strings.HasPrefix(reason, "bound"), "a pod for "+victim.Name+" stays Pending while ens224 is down", reason); err != nil {
		return err
	}
	if _, err := r.kubectl(c, nil, "scale", "deployment", appName, "--replicas=4"); err != nil {
		return err
	}
	pods, err := r.waitPods(c, 4, 90*time.Second)
	if err != nil {
		return r.check(false, "new replicas avoid "+victim.Name, err.Error())
	}
	var onVictim []string
	for _, p := range pods {
		if p.Node == victim.Name && !slices.ContainsFunc(r.pods[c.Name], func(o podInfo) bool { return o.Name == p.Name }) {
			onVictim = append(onVictim, p.Name)
		}
	}
	if _, err := r.kubectl(c, nil, "get", "po", "-o", "wide", "-l", "app="+appName); err != nil {
		return err
	}
	if err := r.check(len(onVictim) == 0, "new replicas avoid "+victim.Name, podSummary(pods)+strings.Join(onVictim, " ")); err != nil {
		return err
	}

	fmt.Fprintf(r.out, "[%s]# ip link set %s up\n", victim.Name, netbed.UnderlayNIC)
	start = time.Now()
	if err := setLink(*victim, true); err != nil {
		return err
	}
	err = poll.Wait(r.ctx, 15*time.Second, pollInterval, victim.Name+" labelled up", func() (bool, string, error) {
		label := r.nodeLabel(c, victim.Name)
		return label == "up", label, nil
	})
	if err := r.check(err == nil, "agent relabels "+victim.Name+" "+UnderlayLabel+"=up", fmt.Sprintf("after %s", time.Since(start).Round(10*time.Millisecond))); err != nil {
		return err
	}
	start = time.Now()
	err = poll.Wait(r.ctx, 60*time.Second, pollInterval, probePodName+" Running", func() (bool, string, error) {
		out, _ := r.kubectlQuiet(c, nil, "get", "pod", probePodName, "-o", "jsonpath={.status.phase}")
		return out == "Running", "phase " + out, nil
	})
	if _, kerr := r.kubectl(c, nil, "get", "pod", probePodName, "-o", "wide"); kerr != nil {
		return kerr
	}
	if err := r.check(err == nil, "the pod lands on "+victim.Name+" once ens224 is up", fmt.Sprintf("Running after %s", time.Since(start).Round(100*time.Millisecond))); err != nil {
		return err
	}
	for _, args := range [][]string{{"delete", "pod", probePodName, "--wait=false"}, {"scale", "deployment", appName, "--replicas=2"}} {
		if _, err := r.kubectl(c, nil, args...); err != nil {
			return err
		}
	}
	return nil
}

// pollInterval is how often the scenario asks the clusters again while it waits (each ask is a kubectl).
const pollInterval = 500 * time.Millisecond
