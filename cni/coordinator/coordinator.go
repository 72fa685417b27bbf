// Package coordinator is underlink-coordinator's netlink side: the CNI plugin chained after macvlan that
// gives each underlay interface of a pod a veth pair to its node (veth0 for eth0, veth-<ifname> for the
// others in the pod, "ul…" on the node) and applies the route plan of package routes, so the pod
// reaches remote clusters, services and its node through the node while its own segments and default
// route stay on the underlay NICs, and each interface's replies leave by it.
//
// ADD runs as a sequence of named steps; each registers its undo the moment its change exists, and a
// failure at any step rolls everything back. DEL is idempotent, CHECK compares the previous result and
// the plan with the namespaces, GC removes host veths of attachments the runtime no longer knows.
package coordinator

import (
	"errors"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"
	"github.com/vishvananda/netns"

	"github.com/underlink/underlink/cni/routes"
)

// SupportedVersions are the CNI versions the coordinator speaks: 1.1.0 (GC, STATUS) and older.
var SupportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Plugin is the coordinator. The zero value is ready for production use.
type Plugin struct {
	// Log receives one line per decision; the zero value discards.
	Log logr.Logger
	// Hook, when set, runs after every ADD step (see StepHook); tests use it to fail ADD at each step.
	Hook StepHook
	// HostNS is the node's namespace; nil means the namespace the plugin runs in, as a runtime starts it.
	HostNS ns.NetNS
}

// conf is a parsed and validated invocation config with its previous result.
type conf struct {
	*routes.Config
	prev *current.Result
}

// loadConf parses stdin, validates it before anything is touched and converts prevResult. Errors are
// CNI errors: 6 (decoding) or 7 (invalid network config), naming the field.
func loadConf(stdin []byte) (*conf, error) {
	c, err := routes.ParseConfig(stdin)
	if err != nil {
		return nil, cniError(err)
	}
	out := &conf{Config: c}
	if err := version.ParsePrevResult(&c.Raw.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "underlink-coordinator config: prevResult: "+err.Error(), "")
	}
	if c.Raw.PrevResult != nil {
		if out.prev, err = current.NewResultFromResult(c.Raw.PrevResult); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "underlink-coordinator config: prevResult: "+err.Error(), "")
		}
	}
	return out, nil
}

// cniError maps the coordinator's errors to CNI error codes.
func cniError(err error) error {
	var te *types.Error
	var ce *routes.ConfigError
	var de *routes.DecodeError
	var pe *routes.PlanError
	var nsErr ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		return te
	case errors.As(err, &ce), errors.As(err, &pe):
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	case errors.As(err, &de):
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	case errors.As(err, &nsErr), errors.As(err, &notNS):
		return types.NewError(types.ErrInvalidNetNS, err.Error(), "")
	default:
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
}

// hostHandle opens a netlink handle in the node's namespace.
func (p *Plugin) hostHandle() (netlinksafe.Handle, error) {
	if p.HostNS != nil {
		return netlinksafe.NewHandleAt(netns.NsHandle(int(p.HostNS.Fd())))
	}
	return netlinksafe.NewHandle()
}

func podHandle(pod ns.NetNS) (netlinksafe.Handle, error) {
	return netlinksafe.NewHandleAt(netns.NsHandle(int(pod.Fd())))
}

// planInput extracts the addresses, gateways and previous routes of pod interface ifName from
// prevResult.
func planInput(prev *current.Result, ifName string) routes.Input {
	in := routes.Input{IfName: ifName}
	ifIndex := -1
	for i, intf := range prev.Interfaces {
		if intf.Name == ifName && intf.Sandbox != "" {
			ifIndex = i
		}
	}
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && ifIndex >= 0 && *ipc.Interface != ifIndex {
			continue
		}
		a := toAddr(ipc.Address.IP)
		ones, _ := ipc.Address.Mask.Size()
		in.PodAddrs = append(in.PodAddrs, netip.PrefixFrom(a, ones))
		if gw := toAddr(ipc.Gateway); gw.IsValid() {
			in.Gateways = append(in.Gateways, gw)
		}
	}
	for _, r := range prev.Routes {
		a := toAddr(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		via := toAddr(r.GW)
		if via.IsUnspecified() {
			via = netip.Addr{}
		}
		in.PrevRoutes = append(in.PrevRoutes, routes.Route{Dst: netip.PrefixFrom(a, ones), Via: via, Dev: ifName})
	}
	return in
}

// Status reports whether the plugin can serve ADD: its configuration is valid and it can talk netlink
// in the node's namespace.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	if _, err := loadConf(args.StdinData); err != nil {
		return err
	}
	h, err := p.hostHandle()
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "underlink-coordinator: netlink in the node namespace: "+err.Error(), "")
	}
	h.Close()
	return nil
}

// printable converts a result to the invocation's CNI version.
func printable(r *current.Result, cniVersion string) (types.Result, error) {
	return r.GetAsVersion(cniVersion)
}
