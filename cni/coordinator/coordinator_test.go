package coordinator

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/underlink/underlink/cni/routes"
)

func TestHostVethName(t *testing.T) {
	a := HostVethName("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "eth0")
	if len(a) != 13 || !strings.HasPrefix(a, HostVethPrefix) {
		t.Errorf("name %q: want ul + 11 hex digits", a)
	}
	if a != HostVethName("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "eth0") {
		t.Error("name must be stable: DEL derives it again")
	}
	if a == HostVethName("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "net1") {
		t.Error("two interfaces of one pod must get two veths")
	}
}

func TestAliasRoundTrip(t *testing.T) {
	al := hostVethAlias("kube-system-macvlan-conf", "c0ffee", "eth0")
	if len(al) > 255 {
		t.Fatalf("alias too long: %d", len(al))
	}
	tag, cid, ifName, ok := parseAlias(al)
	if !ok || tag != networkTag("kube-system-macvlan-conf") || cid != "c0ffee" || ifName != "eth0" {
		t.Errorf("parseAlias(%q) = %q %q %q %v", al, tag, cid, ifName, ok)
	}
	for _, bad := range []string{"", "calico", "underlink/", "underlink/abc", "underlink/abc/cid", "underlink/abc/cid/"} {
		if _, _, _, ok := parseAlias(bad); ok {
			t.Errorf("parseAlias(%q) accepted", bad)
		}
	}
}

func TestPlanInputFromPrevResult(t *testing.T) {
	zero, one := 0, 1
	_, dst, _ := net.ParseCIDR("0.0.0.0/0")
	prev := &current.Result{
		Interfaces: []*current.Interface{{Name: "eth0", Sandbox: "/run/netns/p"}, {Name: "net1", Sandbox: "/run/netns/p"}},
		IPs: []*current.IPConfig{
			{Interface: &zero, Address: net.IPNet{IP: net.ParseIP("172.110.1.10"), Mask: net.CIDRMask(24, 32)}, Gateway: net.ParseIP("172.110.0.1")},
			{Interface: &one, Address: net.IPNet{IP: net.ParseIP("192.168.9.9"), Mask: net.CIDRMask(24, 32)}},
		},
		Routes: []*types.Route{{Dst: *dst, GW: net.ParseIP("172.110.0.1")}},
	}
	in := planInput(prev, "eth0")
	if want := []netip.Prefix{netip.MustParsePrefix("172.110.1.10/24")}; !slices.Equal(in.PodAddrs, want) || in.IfName != "eth0" {
		t.Errorf("pod addrs %v, want only eth0's %v", in.PodAddrs, want)
	}
	if want := []netip.Addr{netip.MustParseAddr("172.110.0.1")}; !slices.Equal(in.Gateways, want) {
		t.Errorf("gateways %v, want %v", in.Gateways, want)
	}
	if len(in.PrevRoutes) != 1 || in.PrevRoutes[0].Dst.Bits() != 0 || in.PrevRoutes[0].Dev != "eth0" {
		t.Errorf("prev routes %v", in.PrevRoutes)
	}
	// The second interface's own: its address, no gateway, and the result's routes on it.
	in = planInput(prev, "net1")
	if want := []netip.Prefix{netip.MustParsePrefix("192.168.9.9/24")}; !slices.Equal(in.PodAddrs, want) || len(in.Gateways) != 0 || in.PrevRoutes[0].Dev != "net1" {
		t.Errorf("net1: %+v", in)
	}
}

func TestCNIErrorCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		code uint
	}{
		{&routes.ConfigError{Field: "hijackCIDR[0]"}, types.ErrInvalidNetworkConfig},
		{fmt.Errorf("wrapped: %w", &routes.PlanError{Msg: "x"}), types.ErrInvalidNetworkConfig},
		{&routes.DecodeError{Err: errors.New("eof")}, types.ErrDecodingFailure},
		{fmt.Errorf("open: %w", ns.NSPathNotExistErr{}), types.ErrInvalidNetNS},
		{&StepError{Step: "veth", Err: errors.New("boom")}, types.ErrInternal},
		{types.NewError(types.ErrTryAgainLater, "busy", ""), types.ErrTryAgainLater},
	} {
		var te *types.Error
		if !errors.As(cniError(c.err), &te) || te.Code != c.code {
			t.Errorf("cniError(%v) = %v, want code %d", c.err, cniError(c.err), c.code)
		}
	}
}

// Bad configuration fails every command before anything is opened: the pod netns path does not exist
// and no netlink call is made, yet the error is about the field.
func TestBadConfigFailsFirst(t *testing.T) {
	p := &Plugin{}
	args := &skel.CmdArgs{ContainerID: "c1", Netns: "/nonexistent/netns", IfName: "eth0",
		StdinData: []byte(`{"cniVersion":"1.1.0","name":"n","type":"underlink-coordinator","hijackCIDR":["172.111.0.0/16","not-a-cidr"]}`)}
	for name, f := range map[string]func(*skel.CmdArgs) error{
		"ADD":    func(a *skel.CmdArgs) error { _, err := p.Add(a); return err },
		"DEL":    p.Del,
		"CHECK":  p.Check,
		"GC":     p.GC,
		"STATUS": p.Status,
	} {
		err := f(args)
		var te *types.Error
		if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, `hijackCIDR[1] "not-a-cidr"`) {
			t.Errorf("%s: %v, want code 7 naming hijackCIDR[1]", name, err)
		}
	}
	args.StdinData = []byte(`{"cniVersion":"1.1.0","name":"n","type":"underlink-coordinator","hijackCIDR":"172.111.0.0/16"}`)
	_, err := p.Add(args)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrDecodingFailure {
		t.Errorf("bad JSON: %v, want code 6", err)
	}
	args.StdinData = []byte(`{"cniVersion":"1.1.0","name":"n","type":"underlink-coordinator"}`)
	if _, err := p.Add(args); !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, "prevResult is missing") {
		t.Errorf("no prevResult: %v, want code 7 about prevResult", err)
	}
}

func TestTxnRollsBackNewestFirst(t *testing.T) {
	var undone []string
	tx := &txn{hook: func(step string) error {
		if step == "c" {
			return errors.New("injected")
		}
		return nil
	}}
	for _, s := range []string{"a", "b", "c", "d"} {
		err := tx.do(s, func() error {
			tx.onUndo(s, func() error { undone = append(undone, s); return nil })
			return nil
		})
		if err != nil {
			var se *StepError
			if !errors.As(err, &se) || se.Step != "c" {
				t.Fatalf("error %v, want a StepError at c", err)
			}
			break
		}
	}
	if err := tx.rollback(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(undone, []string{"c", "b", "a"}) {
		t.Errorf("undone %v, want c b a", undone)
	}
}

// Disabled mode passes the previous result through, in the invocation's version, touching nothing (the
// netns path does not even exist).
func TestDisabledPassesPrevResultThrough(t *testing.T) {
	p := &Plugin{}
	stdin := `{"cniVersion":"0.4.0","name":"n","type":"underlink-coordinator","mode":"disabled",
	 "prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"version":"4","interface":0,"address":"172.110.1.10/24","gateway":"172.110.0.1"}]}}`
	res, err := p.Add(&skel.CmdArgs{ContainerID: "c", Netns: "/nonexistent", IfName: "eth0", StdinData: []byte(stdin)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version() != "0.4.0" {
		t.Errorf("result version %s, want the invocation's 0.4.0", res.Version())
	}
	r, err := current.NewResultFromResult(res)
	if err != nil || len(r.IPs) != 1 || r.IPs[0].Address.String() != "172.110.1.10/24" || len(r.Interfaces) != 1 {
		t.Errorf("result %+v, %v: want prevResult unchanged", r, err)
	}
}
