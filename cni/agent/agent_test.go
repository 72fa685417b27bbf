package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/cniinstall"
)

func pool(name, allocatedIPs string) *spv2.SpiderIPPool {
	p := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if allocatedIPs != "" {
		p.Status.AllocatedIPs = ptr.To(allocatedIPs)
	}
	return p
}

// TestPluginsStayForThePodsUnderlinkSetUpOnTheNode: the plugins stay on an uninstall while a pool
// records an address given on this node (a pod underlink-ipam served here, whose DEL runs underlink's
// plugins), whether it has its sandbox yet or not; records of other nodes, Spiderpool's records (no
// node) and addresses set aside as conflicts do not keep them; a pool whose status cannot be read
// keeps them, since it may hold such a pod.
func TestPluginsStayForThePodsUnderlinkSetUpOnTheNode(t *testing.T) {
	for _, tc := range []struct {
		name           string
		pools          []*spv2.SpiderIPPool
		pods, unreadbl []string
	}{{
		name:  "no pools",
		pools: nil,
	}, {
		name:  "empty pools",
		pools: []*spv2.SpiderIPPool{pool("cluster-a", ""), pool("cluster-b", "{}")},
	}, {
		name: "another node's pods and Spiderpool's pods",
		pools: []*spv2.SpiderIPPool{pool("cluster-a", `{
			"172.110.1.5":{"interface":"eth0","pod":"default/web-0","podUid":"u0","containerID":"c0","node":"node-2"},
			"172.110.1.6":{"pod":"default/old-spiderpool-pod","podUid":"u1"}}`)},
	}, {
		name: "pods served on this node, with a sandbox and pre-allocated, in two pools",
		pools: []*spv2.SpiderIPPool{
			pool("cluster-a", `{
				"172.110.1.5":{"interface":"eth0","pod":"default/web-0","podUid":"u0","containerID":"c0","node":"node-1"},
				"172.110.1.7":{"interface":"eth0","pod":"default/web-2","podUid":"u2","node":"node-1"},
				"172.110.1.8":{"interface":"eth0","pod":"default/web-3","podUid":"u3","containerID":"c3","node":"node-2"}}`),
			pool("cluster-a-net1", `{"172.111.1.5":{"interface":"net1","pod":"default/web-0","podUid":"u0","containerID":"c0","node":"node-1"}}`),
		},
		pods: []string{"default/web-0", "default/web-2"},
	}, {
		name: "an address set aside as a conflict is no pod's",
		pools: []*spv2.SpiderIPPool{pool("cluster-a", `{
			"172.110.200.10":{"interface":"eth0","pod":"default/conflict","podUid":"","node":"node-1","ipConflict":{"mac":"00:11:22:33:44:55","node":"node-1"}}}`)},
	}, {
		name:     "a status that is not Spiderpool's shape",
		pools:    []*spv2.SpiderIPPool{pool("broken", `not json`), pool("cluster-a", `{"172.110.1.5":{"interface":"eth0","pod":"default/web-0","podUid":"u0","node":"node-1"}}`)},
		pods:     []string{"default/web-0"},
		unreadbl: []string{"broken"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			pods, unreadable := pluginUsers(tc.pools, "node-1")
			if !reflect.DeepEqual(pods, tc.pods) || !reflect.DeepEqual(unreadable, tc.unreadbl) {
				t.Fatalf("pods %q, unreadable pools %q; want %q, %q", pods, unreadable, tc.pods, tc.unreadbl)
			}
		})
	}
}

// refused is the apiserver as the agent finds it once helm removed its RBAC.
type refused struct{ client.Reader }

func (refused) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return apierrors.NewForbidden(schema.GroupResource{Group: spv2.GroupVersion.Group, Resource: "spiderippools"}, "", errors.New("RBAC removed"))
}

// TestUninstallKeepsThePluginsPodsStillNeed: underlink uninstalled (its DaemonSet gone, its RBAC too),
// the plugins stay while the pools as the agent last held them record a pod of this node, or when the
// agent never read the pools; they are removed once no pod of this node holds an address.
func TestUninstallKeepsThePluginsPodsStillNeed(t *testing.T) {
	withPod := []*spv2.SpiderIPPool{pool("cluster-a", `{"172.110.1.5":{"interface":"eth0","pod":"default/web-0","podUid":"u0","containerID":"c0","node":"node-1"}}`)}
	otherNode := []*spv2.SpiderIPPool{pool("cluster-a", `{"172.110.1.5":{"interface":"eth0","pod":"default/web-0","podUid":"u0","containerID":"c0","node":"node-2"}}`)}
	for _, tc := range []struct {
		name    string
		held    []*spv2.SpiderIPPool
		primed  bool
		removed bool
	}{
		{"a pod of this node holds an address", withPod, true, false},
		{"the agent never read the pools", nil, false, false},
		{"only another node's pods hold addresses", otherNode, true, true},
		{"no address held", nil, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, bin := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "underlink-coordinator"), []byte("coordinator"), 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := cniinstall.Install(src, bin, []string{"underlink-coordinator"}); err != nil {
				t.Fatal(err)
			}
			o := Options{NodeName: "node-1", CNIBinDir: bin, DaemonSet: "underlink-agent", LeaseNamespace: "underlink-system"}
			held := func() ([]*spv2.SpiderIPPool, bool) { return tc.held, tc.primed }
			uninstallIfRemoved(fake.NewClientset(), refused{}, held, o, logr.Discard())
			_, err := os.Stat(filepath.Join(bin, "underlink-coordinator"))
			if gone := errors.Is(err, os.ErrNotExist); gone != tc.removed {
				t.Fatalf("plugin removed: %t, want %t (%v)", gone, tc.removed, err)
			}
		})
	}
}
