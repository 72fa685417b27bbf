package plugin

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/020"

	"github.com/underlink/underlink/api/cniconf"
	"github.com/underlink/underlink/cni/ipam/protocol"
)

// seedIPAM is the ipam object the controller writes for the seed's cluster-a config.
const seedIPAM = `{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","type":"macvlan","master":"ens224","mode":"bridge",
 "ipam":{"type":"underlink-ipam","ipv4Pools":["cluster-a"]}}`

func TestLoadConfDefaults(t *testing.T) {
	c, err := LoadConf([]byte(seedIPAM))
	if err != nil {
		t.Fatal(err)
	}
	if c.IPAM.Socket != cniconf.DefaultAgentSocket || c.IPAM.TimeoutSeconds != cniconf.DefaultIPAMTimeoutSeconds || c.IPAM.IPv4Pools[0] != "cluster-a" || c.CNIVersion != "1.1.0" {
		t.Fatalf("conf %+v", c.IPAM)
	}
}

func TestLoadConfNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		code       uint
		msg        string
	}{
		{"not JSON", `{"ipam":`, types.ErrDecodingFailure, "not valid JSON"},
		{"wrong type", `{"ipam":{"type":"underlink-ipam","timeoutSeconds":"20"}}`, types.ErrDecodingFailure, `field "ipam.timeoutSeconds"`},
		{"no ipam", `{"type":"macvlan"}`, types.ErrInvalidNetworkConfig, "ipam is missing"},
		{"unknown key", `{"ipam":{"type":"underlink-ipam","ipv4Pool":["a"]}}`, types.ErrInvalidNetworkConfig, `unknown field "ipv4Pool"`},
		{"other type", `{"ipam":{"type":"host-local"}}`, types.ErrInvalidNetworkConfig, `ipam.type is "host-local"; this plugin is "underlink-ipam"`},
		{"relative socket", `{"ipam":{"type":"underlink-ipam","socket":"run/agent.sock"}}`, types.ErrInvalidNetworkConfig, `ipam.socket "run/agent.sock" is not an absolute path`},
		{"negative timeout", `{"ipam":{"type":"underlink-ipam","timeoutSeconds":-1}}`, types.ErrInvalidNetworkConfig, "ipam.timeoutSeconds is -1"},
		{"empty pool", `{"ipam":{"type":"underlink-ipam","ipv4Pools":["a",""]}}`, types.ErrInvalidNetworkConfig, `ipam.ipv4Pools[1] "" is empty`},
		{"bad pool name", `{"ipam":{"type":"underlink-ipam","ipv6Pools":["-v6"]}}`, types.ErrInvalidNetworkConfig, `ipam.ipv6Pools[0] "-v6" is not a SpiderIPPool name`},
		{"upper case pool", `{"ipam":{"type":"underlink-ipam","ipv4Pools":["Cluster-A"]}}`, types.ErrInvalidNetworkConfig, `ipam.ipv4Pools[0] "Cluster-A" is not a SpiderIPPool name`},
		{"detection flag of the wrong type", `{"ipam":{"type":"underlink-ipam","detectIPConflict":"yes"}}`, types.ErrDecodingFailure, `field "ipam.detectIPConflict"`},
		{"matchMasterSubnet without master", `{"ipam":{"type":"underlink-ipam","matchMasterSubnet":true}}`, types.ErrInvalidNetworkConfig, "ipam.master is empty and ipam.matchMasterSubnet is true"},
		{"bad default-route NIC", `{"ipam":{"type":"underlink-ipam","defaultRouteNIC":"eth0:1"}}`, types.ErrInvalidNetworkConfig, `ipam.defaultRouteNIC "eth0:1" is not an interface name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConf([]byte(tc.conf))
			var e *types.Error
			if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Msg+" "+e.Details, tc.msg) {
				t.Fatalf("LoadConf error = %v, want code %d saying %q", err, tc.code, tc.msg)
			}
		})
	}
}

func TestResultConvertsToEveryVersion(t *testing.T) {
	res, err := Result(&protocol.Allocation{
		IPs:    []protocol.IP{{Address: "172.110.2.7/16", Gateway: "172.110.0.1", Pool: "wide"}, {Address: "fd00::7/64", Pool: "v6"}},
		Routes: []protocol.Route{{Dst: "0.0.0.0/0", Gw: "172.110.0.1"}, {Dst: "10.6.0.0/16", Gw: "172.110.0.254"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.IPs[0].Address.String(); got != "172.110.2.7/16" {
		t.Fatalf("address %s", got)
	}
	for _, v := range []string{"1.1.0", "1.0.0", "0.4.0", "0.3.1", "0.3.0"} {
		conv, err := res.GetAsVersion(v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		b, _ := json.Marshal(conv)
		for _, want := range []string{`"cniVersion":"` + v + `"`, `"172.110.2.7/16"`, `"gateway":"172.110.0.1"`, `"fd00::7/64"`, `"dst":"10.6.0.0/16","gw":"172.110.0.254"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s result %s lacks %s", v, b, want)
			}
		}
	}
	// 0.2.0 holds one address per family.
	conv, err := res.GetAsVersion("0.2.0")
	if err != nil {
		t.Fatal(err)
	}
	old := conv.(*types020.Result)
	if old.IP4 == nil || old.IP4.IP.String() != "172.110.2.7/16" || old.IP6 == nil {
		t.Fatalf("0.2.0 result %+v", old)
	}
}

func TestResultRejectsGarbageFromTheAgent(t *testing.T) {
	for _, a := range []*protocol.Allocation{
		{IPs: []protocol.IP{{Address: "172.110.2.7"}}},
		{IPs: []protocol.IP{{Address: "172.110.2.7/24"}}, Routes: []protocol.Route{{Dst: "default"}}},
	} {
		if _, err := Result(a); err == nil {
			t.Errorf("Result(%+v) accepted", a)
		}
	}
}

func TestPoolNames(t *testing.T) {
	for name, ok := range map[string]bool{"cluster-a": true, "a": true, "pool.v4-1": true, "": false, "A": false, "a_b": false, "-a": false, "a.": false, strings.Repeat("a", 254): false} {
		if got := poolNameProblem(name) == ""; got != ok {
			t.Errorf("poolNameProblem(%q) ok=%v, want %v", name, got, ok)
		}
	}
}

// On an interface other than the default-route NIC the result keeps the gateway but not the default
// route, which the coordinator puts in that interface's own table; other routes stay.
func TestDefaultRouteOnlyOnTheDefaultRouteNIC(t *testing.T) {
	res, err := Result(&protocol.Allocation{
		IPs:    []protocol.IP{{Address: "192.168.56.10/24", Gateway: "192.168.56.1", Pool: "storage"}},
		Routes: []protocol.Route{{Dst: "0.0.0.0/0", Gw: "192.168.56.1"}, {Dst: "10.20.0.0/16", Gw: "192.168.56.254"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	res.Routes = withoutDefault(res.Routes)
	if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "10.20.0.0/16" || res.IPs[0].Gateway.String() != "192.168.56.1" {
		t.Errorf("routes %v, gateway %v", res.Routes, res.IPs[0].Gateway)
	}
}
