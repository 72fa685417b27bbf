package reservedip

import (
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func TestSetUnionsOneFamily(t *testing.T) {
	v6 := int64(6)
	items := []spv2.SpiderReservedIP{
		{ObjectMeta: metav1.ObjectMeta{Name: "routers"}, Spec: spv2.ReservedIPSpec{IPs: []string{"172.110.1.1", "172.110.1.250-172.110.1.254"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "vips"}, Spec: spv2.ReservedIPSpec{IPs: []string{"172.110.1.2-172.110.1.3"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: spv2.ReservedIPSpec{IPVersion: &v6, IPs: []string{"fd00::1"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Spec: spv2.ReservedIPSpec{IPVersion: &v6, IPs: []string{"172.110.9.9"}}},
	}
	sets, errs := Sets(items)
	set := sets[4]
	var got []string
	for _, r := range set.Ranges() {
		got = append(got, r.String())
	}
	if strings.Join(got, " ") != "172.110.1.1-172.110.1.3 172.110.1.250-172.110.1.254" {
		t.Errorf("IPv4 set %v", got)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "SpiderReservedIP broken: spec.ips[0]") {
		t.Errorf("errors %v; want the broken object named", errs)
	}
	if set := sets[6]; !set.Contains(netip.MustParseAddr("fd00::1")) || set.Contains(netip.MustParseAddr("172.110.1.1")) {
		t.Errorf("IPv6 set %v", set.Ranges())
	}
}
