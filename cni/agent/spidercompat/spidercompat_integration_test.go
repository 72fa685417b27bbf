//go:build integration

package spidercompat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/agent/pools"
	"github.com/underlink/underlink/cni/agent/service"
	"github.com/underlink/underlink/cni/agent/spidercompat"
	"github.com/underlink/underlink/cni/agent/store"
	"github.com/underlink/underlink/test/controlplane"
)

var _ spidercompat.Releaser = (*service.Service)(nil)

const node = "node-1"

// TestSpiderpoolsPluginsAreAnsweredAfterSpiderpoolIsGone runs the server with the agent's real IPAM
// service against a real apiserver, and speaks Spiderpool v1.2.2's agent API to it over the unix
// socket, with the bodies its openapi spec gives (and, when hack/build-peers.sh spiderpool has built
// them into the tool cache, through Spiderpool's own IPAM and coordinator binaries).
func TestSpiderpoolsPluginsAreAnsweredAfterSpiderpoolIsGone(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client

	// A pool as Spiderpool left it (its record has no interface, container or node) with an address
	// underlink gave on this node since.
	gw := "172.110.0.1"
	pool := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "cluster-a"}, Spec: spv2.IPPoolSpec{
		Subnet: "172.110.0.0/16", Gateway: &gw, IPs: []string{"172.110.1.1-172.110.1.100"},
	}}
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	pool.Status.AllocatedIPs = ptr.To(`{"172.110.1.5":{"pod":"default/spiderpool-pod","podUid":"uid-sp"},` +
		`"172.110.1.6":{"interface":"net1","pod":"default/underlink-pod","podUid":"uid-ul","containerID":"c-ul","node":"node-1"},` +
		`"172.110.1.7":{"interface":"net1","pod":"default/underlink-pod-2","podUid":"uid-ul2","containerID":"c-ul2","node":"node-1"}}`)
	pool.Status.AllocatedIPCount = ptr.To(int64(3))
	if err := c.Status().Update(ctx, pool); err != nil {
		t.Fatal(err)
	}

	m := metrics.New(nil)
	view := pools.New(c, c)
	svc := &service.Service{Cache: c, Pools: view, Live: c, Store: store.New(ctx, c, view, m, logr.Discard(), store.Options{}),
		NodeName: node, Metrics: m, Log: logr.Discard(), Writer: c}
	dir := t.TempDir()
	socket := filepath.Join(dir, "spidernet", "spiderpool.sock")
	srv := &spidercompat.Server{Socket: socket, NodeName: node, Releaser: svc, Coordinators: c, Pods: c, Log: logr.Discard()}
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the socket is left behind: %v", err)
		}
	}()
	hc := waitServed(t, socket)

	if code, body := do(t, hc, socket, http.MethodGet, spidercompat.PathHealthy, ""); code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", spidercompat.PathHealthy, code, body)
	}

	// The IPAM plugin's DEL of the pod underlink served: freed through underlink's release path.
	del := `{"containerID":"c-ul","ifName":"net1","netNamespace":"/var/run/netns/gone","podNamespace":"default","podName":"underlink-pod","podUID":"uid-ul"}`
	if code, body := do(t, hc, socket, http.MethodDelete, spidercompat.PathIP, del); code != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s", spidercompat.PathIP, code, body)
	}
	if held := allocated(t, c); held["172.110.1.6"] {
		t.Errorf("172.110.1.6 still held after its DEL: %v", held)
	}
	if code, body := do(t, hc, socket, http.MethodDelete, spidercompat.PathIP, del); code != http.StatusOK {
		t.Fatalf("a repeated DEL: %d %s, want 200", code, body)
	}
	// A pod Spiderpool set up: its record names no interface, so no DEL matches it (cni/IPAM.md);
	// the DEL succeeds and garbage collection frees the address once the pod is gone.
	spDel := `{"containerID":"c-sp","ifName":"eth0","netNamespace":"/var/run/netns/gone","podNamespace":"default","podName":"spiderpool-pod","podUID":"uid-sp"}`
	if code, body := do(t, hc, socket, http.MethodDelete, spidercompat.PathIP, spDel); code != http.StatusOK {
		t.Fatalf("DELETE %s of Spiderpool's pod: %d %s", spidercompat.PathIP, code, body)
	}
	if held := allocated(t, c); !held["172.110.1.5"] {
		t.Errorf("Spiderpool's record of 172.110.1.5 was freed by a DEL; garbage collection frees it: %v", held)
	}
	code, body := do(t, hc, socket, http.MethodDelete, spidercompat.PathIP, `{"containerID":"c-x","ifName":"","podNamespace":"default","podName":"p","podUID":"u"}`)
	if msg := message(t, body); code != http.StatusInternalServerError || !strings.Contains(msg, "CNI_IFNAME") {
		t.Fatalf("a DEL without ifName: %d %q", code, msg)
	}

	// The coordinator's config: Spiderpool's defaults without a SpiderCoordinator, then the cluster's.
	args := `{"podName":"underlink-pod","podNamespace":"default"}`
	if got := coordinatorConfig(t, hc, socket, args); got.Mode != "auto" || got.HostRuleTable != 500 || !got.TunePodRoutes || got.OverlayPodCIDR == nil || got.ServiceCIDR == nil {
		t.Errorf("with no SpiderCoordinator: %+v, want Spiderpool's defaults", got)
	}
	coord := &spv2.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: spv2.CoordinatorDefaultName}, Spec: spv2.CoordinatorSpec{
		Mode: ptr.To("underlay"), PodCIDRType: ptr.To("cluster"), HostRuleTable: ptr.To(int64(600)), HijackCIDR: []string{"10.243.0.0/18"},
	}}
	if err := c.Create(ctx, coord); err != nil {
		t.Fatal(err)
	}
	coord.Status = spv2.CoordinatorStatus{Phase: "Synced", OverlayPodCIDR: []string{"10.233.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"}}
	if err := c.Status().Update(ctx, coord); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "underlink-pod", Annotations: map[string]string{spidercompat.AnnoDefaultRouteNIC: "net1"}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	got := coordinatorConfig(t, hc, socket, args)
	if got.Mode != "underlay" || got.HostRuleTable != 600 || got.PodDefaultRouteNIC != "net1" || strings.Join(got.ServiceCIDR, ",") != "10.233.0.0/18" ||
		strings.Join(got.HijackCIDR, ",") != "10.243.0.0/18" || got.VethMTU != 1500 {
		t.Errorf("with the cluster's SpiderCoordinator: %+v", got)
	}

	// An ADD through Spiderpool's IPAM plugin is refused with the fix.
	code, body = do(t, hc, socket, http.MethodPost, spidercompat.PathIP,
		`{"containerID":"c-new","ifName":"eth0","netNamespace":"/var/run/netns/x","podNamespace":"default","podName":"new-pod","podUID":"uid-new"}`)
	if msg := message(t, body); code != http.StatusInternalServerError || !strings.Contains(msg, "Spiderpool is not installed") || !strings.Contains(msg, "default/new-pod") {
		t.Fatalf("ADD: %d %q", code, msg)
	}

	spiderpoolBinaries(t, c, socket, dir)
}

// spiderpoolBinaries runs Spiderpool v1.2.2's own plugins' DEL against the server when the tool cache
// has them (hack/build-peers.sh spiderpool; `make test` does not build them).
func spiderpoolBinaries(t *testing.T, c client.Client, socket, dir string) {
	home, _ := os.UserHomeDir()
	bin := filepath.Join(home, ".cache", "underlink", "bin")
	ipam := filepath.Join(bin, "spiderpool-ipam")
	if _, err := os.Stat(ipam); err != nil {
		t.Logf("Spiderpool's plugins are not in %s (hack/build-peers.sh spiderpool builds them): only the API was spoken", bin)
		return
	}
	// The IPAM plugin dials the network config's ipam_unix_socket_path.
	conf := fmt.Sprintf(`{"cniVersion":"0.3.1","name":"macvlan-conf","type":"macvlan","ipam":{"type":"spiderpool","log_file_path":%q,"ipam_unix_socket_path":%q}}`,
		filepath.Join(dir, "spiderpool.log"), socket)
	if out, err := runPlugin(ipam, "DEL", "c-ul2", "net1", "underlink-pod-2", "uid-ul2", conf, nil); err != nil {
		t.Fatalf("Spiderpool's IPAM plugin DEL: %v\n%s", err, out)
	}
	if held := allocated(t, c); held["172.110.1.7"] {
		t.Errorf("172.110.1.7 still held after Spiderpool's IPAM plugin's DEL: %v", held)
	}

	// The coordinator always dials /var/run/spidernet/spiderpool.sock: it runs in a mount namespace of
	// its own in which /run is the test's directory, so the host's /run is not touched. A pod netns
	// that is gone ends its DEL right after it parsed the config this server gave.
	coordinator := filepath.Join(bin, "spiderpool-coordinator")
	unshare, err := exec.LookPath("unshare")
	if _, serr := os.Stat(coordinator); serr != nil || err != nil {
		t.Logf("Spiderpool's coordinator or unshare is missing: its DEL was not run")
		return
	}
	real, err := filepath.EvalSymlinks("/var/run")
	if err != nil {
		t.Fatal(err)
	}
	cconf := fmt.Sprintf(`{"cniVersion":"0.3.1","name":"macvlan-conf","type":"coordinator","logOptions":{"logLevel":"debug","logFilePath":%q}}`, filepath.Join(dir, "coordinator.log"))
	wrap := []string{unshare, "--mount", "--propagation", "private", "sh", "-c", fmt.Sprintf(`mount --bind %q %q && exec "$0"`, dir, real)}
	out, err := runPlugin(coordinator, "DEL", "c-ul", "net1", "underlink-pod", "uid-ul", cconf, wrap)
	if err != nil {
		t.Fatalf("Spiderpool's coordinator DEL: %v\n%s", err, out)
	}
	t.Logf("Spiderpool's IPAM plugin and coordinator ran their DEL against the server")
}

// allocated is the set of addresses pool cluster-a holds.
func allocated(t *testing.T, c client.Client) map[string]bool {
	t.Helper()
	var p spv2.SpiderIPPool
	if err := c.Get(context.Background(), types.NamespacedName{Name: "cluster-a"}, &p); err != nil {
		t.Fatal(err)
	}
	allocs, err := spv2.ParseAllocations(p.Status)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for ip := range allocs {
		out[ip] = true
	}
	return out
}

// runPlugin runs a CNI plugin's command as a runtime does (wrapped in wrap, a command line the plugin
// path is appended to, when given).
func runPlugin(plugin, command, containerID, ifName, podName, podUID, conf string, wrap []string) ([]byte, error) {
	argv := append(append([]string{}, wrap...), plugin)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + containerID, "CNI_NETNS=/var/run/netns/underlink-test-gone-" + containerID,
		"CNI_IFNAME=" + ifName, "CNI_PATH=" + filepath.Dir(plugin),
		fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=%s;K8S_POD_UID=%s;K8S_POD_INFRA_CONTAINER_ID=%s", podName, podUID, containerID),
	}
	cmd.Stdin = strings.NewReader(conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func waitServed(t *testing.T, socket string) *http.Client {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if conn, err := net.Dial("unix", socket); err == nil {
			_ = conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
}

// do sends a request as Spiderpool's go-swagger client does: the socket path as the URL's host, JSON.
func do(t *testing.T, hc *http.Client, socket, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = socket
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func message(t *testing.T, body []byte) string {
	t.Helper()
	var msg string
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("%q is not Spiderpool's Error model (a JSON string): %v", body, err)
	}
	return msg
}

func coordinatorConfig(t *testing.T, hc *http.Client, socket, args string) spidercompat.CoordinatorConfig {
	t.Helper()
	code, body := do(t, hc, socket, http.MethodGet, spidercompat.PathCoordinatorConfig, args)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", spidercompat.PathCoordinatorConfig, code, body)
	}
	var got spidercompat.CoordinatorConfig
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return got
}
