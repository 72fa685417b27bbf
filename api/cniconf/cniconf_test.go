package cniconf

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// TestCoordinatorRoundTripsThroughPointerAndValue pins that no marshalling path drops the coordinator's
// own fields (the embedded PluginConf's MarshalJSON used to be promoted for *Coordinator).
func TestCoordinatorRoundTripsThroughPointerAndValue(t *testing.T) {
	rp := 0
	want := Coordinator{
		PluginConf:  types.PluginConf{CNIVersion: CNIVersion, Name: "kube-system-macvlan-conf", Type: CoordinatorType},
		Mode:        "underlay",
		HijackCIDR:  []string{"10.243.0.0/18", "172.111.0.0/16"},
		ServiceCIDR: []string{"10.233.0.0/18"},
		PodRPFilter: &rp,
	}
	list := []Coordinator{want}
	for name, v := range map[string]any{"value": want, "pointer": &want, "slice element": list} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got Coordinator
		raw := b
		if name == "slice element" {
			var l []json.RawMessage
			if err := json.Unmarshal(b, &l); err != nil {
				t.Fatal(err)
			}
			raw = l[0]
		}
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: round trip lost fields:\n got %+v\nwant %+v\njson %s", name, got, want, b)
		}
		var keys map[string]any
		_ = json.Unmarshal(raw, &keys)
		if _, ok := keys["dns"]; ok {
			t.Errorf("%s: empty dns written: %s", name, raw)
		}
	}
}
