package spidercompat

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// TestConfigForAnswersAsSpiderpoolsAgent: the cluster defaults pass through, Spiderpool's own defaults
// fill what they leave unset (hostRuleTable 500, mode auto), the pod's default-route-nic annotation
// wins, and the required lists are present even when empty.
func TestConfigForAnswersAsSpiderpoolsAgent(t *testing.T) {
	defaults := CoordinatorConfig{
		Mode: "auto", OverlayPodCIDR: []string{}, ServiceCIDR: []string{}, HijackCIDR: []string{},
		TunePodRoutes: true, HostRuleTable: 500, VethMTU: 1500,
	}
	for _, tc := range []struct {
		name  string
		coord *spv2.SpiderCoordinator
		pod   *corev1.Pod
		want  CoordinatorConfig
	}{{
		name: "no SpiderCoordinator: Spiderpool's defaults",
		want: defaults,
	}, {
		name:  "an empty spec: Spiderpool's defaults",
		coord: &spv2.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		want:  defaults,
	}, {
		name: "the seed's cluster-a coordinator",
		coord: &spv2.SpiderCoordinator{
			ObjectMeta: metav1.ObjectMeta{Name: "default"},
			Spec: spv2.CoordinatorSpec{
				Mode: ptr.To("underlay"), PodCIDRType: ptr.To("cluster"), HijackCIDR: []string{"10.243.0.0/18", "172.111.0.0/16"},
				PodMACPrefix: ptr.To("0a:1b"), TunePodRoutes: ptr.To(false), PodDefaultRouteNIC: ptr.To("net1"),
				HostRuleTable: ptr.To(int64(600)), PodRPFilter: ptr.To(int32(-1)), TxQueueLen: ptr.To(int32(2000)),
				VethMTU: ptr.To(int64(9000)), VethLinkAddress: ptr.To("169.254.100.1"),
				PolicyRoutes: []spv2.PolicyRoute{{Dst: "10.9.0.0/16", Gw: "172.110.0.1"}},
			},
			Status: spv2.CoordinatorStatus{Phase: "Synced", OverlayPodCIDR: []string{"10.233.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"}},
		},
		want: CoordinatorConfig{
			Mode: "underlay", OverlayPodCIDR: []string{"10.233.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"},
			HijackCIDR: []string{"10.243.0.0/18", "172.111.0.0/16"}, PolicyRoutes: []CoordinatorRoute{{Dst: "10.9.0.0/16", Gw: "172.110.0.1"}},
			PodMACPrefix: "0a:1b", TunePodRoutes: false, PodDefaultRouteNIC: "net1", HostRuleTable: 600, PodRPFilter: -1,
			TxQueueLen: 2000, VethLinkAddress: "169.254.100.1", VethMTU: 9000,
		},
	}, {
		name:  "the pod's default-route-nic annotation",
		coord: &spv2.SpiderCoordinator{Spec: spv2.CoordinatorSpec{PodDefaultRouteNIC: ptr.To("net1")}},
		pod:   &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnoDefaultRouteNIC: "net2"}}},
		want: func() CoordinatorConfig {
			c := defaults
			c.PodDefaultRouteNIC = "net2"
			return c
		}(),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := ConfigFor(tc.coord, tc.pod)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{`"mode":`, `"overlayPodCIDR":[`, `"serviceCIDR":[`, `"tunePodRoutes":`} {
				if !strings.Contains(string(b), key) {
					t.Errorf("%s lacks %s, which the coordinator requires", b, key)
				}
			}
		})
	}
}
