// Package plugin is the CNI logic of underlink-ipam: it reads the "ipam" object of the network config
// (api/cniconf.IPAM), asks underlink-agent, and prints the result in the config's CNI version (1.1.0 and
// older, through the cni library's result conversion). It holds no state: the agent decides, the pool
// status in the apiserver records.
//
// It runs in two places. cmd/underlink-ipam-full is the plugin process of every call (Main), asking the
// agent over its unix socket. For the ADD and DEL that need no probe from the pod's namespace, the relay
// cmd/underlink-ipam (a C program, so that the exec costs no Go runtime start) hands the call to the
// agent, which runs the same logic in its own process (Serve) and returns what the plugin would have
// printed. See cni/IPAM.md.
package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/underlink/underlink/api/cniconf"
	"github.com/underlink/underlink/cni/agent/client"
	"github.com/underlink/underlink/cni/ipam/protocol"
)

// Conf is the part of the network config the plugin reads.
type Conf struct {
	types.NetConf
	// IPAM shadows NetConf.IPAM with underlink's fields.
	IPAM cniconf.IPAM `json:"ipam"`
}

// LoadConf parses and checks the network config before anything is done. Every error names the field.
func LoadConf(stdin []byte) (*Conf, error) {
	var conf Conf
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "underlink-ipam: the network config is not valid JSON", jsonDetail(err))
	}
	var raw struct {
		IPAM json.RawMessage `json:"ipam"`
	}
	_ = json.Unmarshal(stdin, &raw)
	if len(raw.IPAM) == 0 || string(raw.IPAM) == "null" {
		return nil, invalid("ipam", "is missing; the plugin reads its pools and socket from it")
	}
	// Strict on the ipam object only: a misspelt key ("ipv4pools") must not silently fall back to the
	// default pools. The rest of the config belongs to the main plugin.
	dec := json.NewDecoder(bytes.NewReader(raw.IPAM))
	dec.DisallowUnknownFields()
	var strict cniconf.IPAM
	if err := dec.Decode(&strict); err != nil {
		return nil, invalid("ipam", jsonDetail(err))
	}
	c := &conf.IPAM
	if c.Type != cniconf.IPAMType {
		return nil, invalid("ipam.type", fmt.Sprintf("is %q; this plugin is %q", c.Type, cniconf.IPAMType))
	}
	if c.Socket == "" {
		c.Socket = cniconf.DefaultAgentSocket
	}
	if !filepath.IsAbs(c.Socket) {
		return nil, invalid("ipam.socket", fmt.Sprintf("%q is not an absolute path such as %s", c.Socket, cniconf.DefaultAgentSocket))
	}
	if c.TimeoutSeconds < 0 {
		return nil, invalid("ipam.timeoutSeconds", fmt.Sprintf("is %d; give a positive number of seconds or omit it for %d", c.TimeoutSeconds, cniconf.DefaultIPAMTimeoutSeconds))
	}
	if c.TimeoutSeconds == 0 {
		c.TimeoutSeconds = cniconf.DefaultIPAMTimeoutSeconds
	}
	if n := c.DefaultRouteNIC; n != "" && (len(n) > 15 || strings.ContainsAny(n, "/: \t\n")) {
		return nil, invalid("ipam.defaultRouteNIC", fmt.Sprintf("%q is not an interface name (at most 15 characters, no '/', ':' or space)", n))
	}
	if c.MatchMasterSubnet && c.Master == "" {
		return nil, invalid("ipam.master", "is empty and ipam.matchMasterSubnet is true: name the host NIC whose subnet the pools must match (the macvlan plugin's master)")
	}
	for field, pools := range map[string][]string{"ipam.ipv4Pools": c.IPv4Pools, "ipam.ipv6Pools": c.IPv6Pools} {
		for i, p := range pools {
			if msg := poolNameProblem(p); msg != "" {
				return nil, invalid(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("%q %s", p, msg))
			}
		}
	}
	return &conf, nil
}

// poolNameProblem checks a SpiderIPPool name as the apiserver would (a DNS-1123 subdomain).
func poolNameProblem(name string) string {
	if name == "" {
		return "is empty"
	}
	if len(name) > 253 {
		return "is longer than 253 characters"
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.'
		if !ok || (i == 0 || i == len(name)-1) && (r == '-' || r == '.') {
			return "is not a SpiderIPPool name (lower case letters, digits, '-' and '.', starting and ending with a letter or digit)"
		}
	}
	return ""
}

func invalid(field, msg string) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("underlink-ipam: %s %s", field, msg), "")
}

func jsonDetail(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q: %s is not a %s", te.Field, te.Value, te.Type)
	}
	return err.Error()
}

// k8sArgs are the CNI_ARGS a Kubernetes runtime passes.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_UID                types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive // CNI_ARGS key
}

func request(args *skel.CmdArgs, conf *Conf) (protocol.Request, error) {
	var ka k8sArgs
	if err := types.LoadArgs(args.Args, &ka); err != nil {
		return protocol.Request{}, types.NewError(types.ErrInvalidEnvironmentVariables, "underlink-ipam: CNI_ARGS cannot be parsed", err.Error())
	}
	return protocol.Request{
		ContainerID: args.ContainerID,
		IfName:      args.IfName,
		Netns:       args.Netns,
		Pod:         protocol.Pod{Namespace: string(ka.K8S_POD_NAMESPACE), Name: string(ka.K8S_POD_NAME), UID: string(ka.K8S_POD_UID)},
		IPv4Pools:   conf.IPAM.IPv4Pools,
		IPv6Pools:   conf.IPAM.IPv6Pools,
		MatchMaster: matchMaster(conf),
	}, nil
}

// matchMaster is the NIC whose subnet the pools must match, or "" without ipam.matchMasterSubnet.
func matchMaster(conf *Conf) string {
	if !conf.IPAM.MatchMasterSubnet {
		return ""
	}
	return conf.IPAM.Master
}

func needPod(req protocol.Request) error {
	if req.Pod.Namespace == "" || req.Pod.Name == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "underlink-ipam: CNI_ARGS lacks K8S_POD_NAMESPACE or K8S_POD_NAME; the plugin allocates per pod and is run by a Kubernetes runtime (or Multus)", "")
	}
	return nil
}

// Agent is what the plugin asks: underlink-agent over its socket (*client.Client), or, inside the
// agent, its own service (Serve).
type Agent interface {
	Allocate(ctx context.Context, req protocol.Request) (*protocol.Allocation, error)
	Release(ctx context.Context, req protocol.Request) (*protocol.Released, error)
	Conflict(ctx context.Context, req protocol.ConflictRequest) (*protocol.SetAside, error)
	Check(ctx context.Context, req protocol.CheckRequest) error
	Health(ctx context.Context) error
}

func agent(conf *Conf) *client.Client {
	return client.New(conf.IPAM.Socket, time.Duration(conf.IPAM.TimeoutSeconds)*time.Second)
}

// cniError turns an agent answer into the CNI error the runtime sees.
func cniError(err error) error {
	var pe *protocol.Error
	var ue *client.UnreachableError
	switch {
	case errors.As(err, &pe):
		return types.NewError(pe.Code, pe.Msg, pe.Details)
	case errors.As(err, &ue):
		return types.NewError(types.ErrTryAgainLater, ue.Error(), "")
	default:
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
}

// Add serves CNI ADD.
func Add(args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	return add(context.Background(), args, conf, agent(conf), os.Stdout)
}

// add allocates through a and prints the result to out.
func add(ctx context.Context, args *skel.CmdArgs, conf *Conf, a Agent, out io.Writer) error {
	req, err := request(args, conf)
	if err != nil {
		return err
	}
	if err := needPod(req); err != nil {
		return err
	}
	alloc, err := a.Allocate(ctx, req)
	if err != nil {
		return cniError(err)
	}
	if needsProbe(conf) {
		if err := detect(args, conf, a, req, alloc); err != nil {
			return err
		}
	}
	res, err := Result(alloc)
	if err != nil {
		return err
	}
	if nic := conf.IPAM.DefaultRouteNIC; nic != "" && nic != args.IfName {
		res.Routes = withoutDefault(res.Routes)
	}
	versioned, err := res.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return err
	}
	return versioned.PrintTo(out)
}

// needsProbe says whether an ADD probes the segment from the pod's namespace (detect), which only the
// plugin process does.
func needsProbe(conf *Conf) bool {
	return conf.IPAM.DetectIPConflict || conf.IPAM.DetectGateway
}

// withoutDefault drops the default routes: an interface other than the pod's default-route NIC keeps
// its gateway in the result, and underlink-coordinator routes it in a table of its own.
func withoutDefault(rs []*types.Route) []*types.Route {
	out := rs[:0]
	for _, r := range rs {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			continue
		}
		out = append(out, r)
	}
	return out
}

// Result renders the agent's answer as a CNI result of the current version.
func Result(alloc *protocol.Allocation) (*current.Result, error) {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	for _, ip := range alloc.IPs {
		addr, pfx, err := net.ParseCIDR(ip.Address)
		if err != nil {
			return nil, types.NewError(types.ErrInternal, fmt.Sprintf("underlink-agent answered address %q", ip.Address), err.Error())
		}
		pfx.IP = addr
		ipc := &current.IPConfig{Address: *pfx}
		if ip.Gateway != "" {
			ipc.Gateway = net.ParseIP(ip.Gateway)
		}
		res.IPs = append(res.IPs, ipc)
	}
	for _, r := range alloc.Routes {
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			return nil, types.NewError(types.ErrInternal, fmt.Sprintf("underlink-agent answered route %q", r.Dst), err.Error())
		}
		rt := &types.Route{Dst: *dst}
		if r.Gw != "" {
			rt.GW = net.ParseIP(r.Gw)
		}
		res.Routes = append(res.Routes, rt)
	}
	return res, nil
}

// Del serves CNI DEL. It is idempotent. When the agent cannot be reached, the release is recorded
// beside the agent's socket (protocol.RecordRelease) and the agent frees it when it serves again, so
// the DEL succeeds without a pod stuck Terminating and without an address that stays allocated with no
// one to free it; only when the release cannot even be recorded does the DEL fail (code 11), and the
// runtime retries it.
func Del(args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	req, err := request(args, conf)
	if err != nil {
		return err
	}
	if _, err := agent(conf).Release(context.Background(), req); err != nil {
		var ue *client.UnreachableError
		if errors.As(err, &ue) {
			dir := protocol.JournalDir(conf.IPAM.Socket)
			if rerr := protocol.RecordRelease(dir, req); rerr != nil {
				return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("underlink-ipam: DEL of container %s: %v, and the release cannot be recorded for it", args.ContainerID, err), rerr.Error())
			}
			fmt.Fprintf(os.Stderr, "underlink-ipam: DEL of container %s: %v; the release is recorded in %s and underlink-agent frees the address when it serves again\n", args.ContainerID, err, dir)
			return nil
		}
		return cniError(err)
	}
	return nil
}

// Check serves CNI CHECK: the addresses of prevResult must still be the pod interface's.
func Check(args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	req, err := request(args, conf)
	if err != nil {
		return err
	}
	if err := needPod(req); err != nil {
		return err
	}
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "underlink-ipam: prevResult cannot be parsed", err.Error())
	}
	if conf.PrevResult == nil {
		return invalid("prevResult", "is missing; CHECK compares it with the pool")
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "underlink-ipam: prevResult cannot be converted", err.Error())
	}
	creq := protocol.CheckRequest{Request: req}
	for _, ip := range prev.IPs {
		creq.Addresses = append(creq.Addresses, ip.Address.String())
	}
	if err := agent(conf).Check(context.Background(), creq); err != nil {
		return cniError(err)
	}
	return nil
}

// Status serves CNI STATUS: ready when the agent answers.
func Status(args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := agent(conf).Health(context.Background()); err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return types.NewError(types.ErrPluginNotAvailable, pe.Msg, pe.Details)
		}
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	return nil
}

// Main runs the plugin (cmd/underlink-ipam). CNI GC is left to the agent, which frees the addresses of
// pods that are gone; the runtime's GC is a successful no-op for this plugin.
func Main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: Add, Del: Del, Check: Check, Status: Status}, version.All, "underlink-ipam: cluster-wide IPAM for SpiderIPPools through underlink-agent")
}
