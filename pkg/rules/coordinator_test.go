package rules

import (
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func TestCheckCoordinator(t *testing.T) {
	coordinator := func(name string, mut func(*spiderv2beta1.CoordinatorSpec)) *spiderv2beta1.SpiderCoordinator {
		sc := &spiderv2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if mut != nil {
			mut(&sc.Spec)
		}
		return sc
	}
	for _, tc := range []struct {
		name     string
		in       *spiderv2beta1.SpiderCoordinator
		want     []string
		contains []string
	}{
		{name: "defaults underlink applies", in: coordinator("default", func(s *spiderv2beta1.CoordinatorSpec) {
			s.Mode, s.HijackCIDR, s.PodMACPrefix, s.TunePodRoutes = ptr("underlay"), []string{"10.243.0.0/18", "172.111.0.0/16"}, ptr("0a:1b"), ptr(true)
		})},
		{
			name: "podCIDRType is named, overlay and a bad MTU denied, a bad hijack CIDR denied",
			in: coordinator("default", func(s *spiderv2beta1.CoordinatorSpec) {
				s.PodCIDRType, s.Mode, s.VethMTU, s.HijackCIDR = ptr("calico"), ptr("overlay"), ptr(int64(70000)), []string{"10.243.0.1/18", "0.0.0.0/0"}
			}),
			want: []string{"Warn coordinator-spec-valid spec.podCIDRType", "Deny coordinator-spec-valid spec.mode", "Deny coordinator-spec-valid spec.vethMTU",
				"Deny hijack-cidr-valid spec.hijackCIDR[0]", "Deny hijack-cidr-valid spec.hijackCIDR[1]"},
			contains: []string{"remove spec.podCIDRType; list any other destination to route through the node in spec.hijackCIDR", "a /0 hijack route"},
		},
		{
			name: "another name changes nothing, and says so", in: coordinator("cluster-defaults", nil),
			want: []string{"Warn coordinator-spec-valid metadata.name"}, contains: []string{`underlink reads only the SpiderCoordinator named "default"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := CheckCoordinator(seedWorld(nil), tc.in)
			var got []string
			var text strings.Builder
			for _, v := range vs {
				got = append(got, sig(v))
				text.WriteString(v.String() + "\n")
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("violations %v, want %v\n%s", got, want, text.String())
			}
			for _, s := range tc.contains {
				if !strings.Contains(text.String(), s) {
					t.Errorf("no violation says %q:\n%s", s, text.String())
				}
			}
		})
	}
}
