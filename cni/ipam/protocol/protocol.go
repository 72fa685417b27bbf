// Package protocol is the wire contract between the underlink-ipam CNI plugin and underlink-agent: JSON
// over HTTP/1.1 on the agent's unix socket (api/cniconf.DefaultAgentSocket, /run/underlink/agent.sock,
// unless the network config's ipam.socket names another; root only, mode 0600, directory 0700).
//
//	POST /v1/allocate  Request          → 200 Allocation | error
//	POST /v1/release   Request          → 200 Released   | error
//	POST /v1/check     CheckRequest     → 200 {}         | error
//	POST /v1/conflict  ConflictRequest  → 200 SetAside   | error
//	GET  /v1/health                     → 200 {}         (the agent serves; its caches are synced)
//	POST /v1/cni       the network config, the CNI_* variables in headers
//	                                    → 200 what the plugin prints, CNI-Exit 0 or 1 | no CNI-Exit: run the plugin
//
// An error is a non-2xx status (Status) with an Error body whose Code is a CNI error code, so the plugin
// passes it to the runtime unchanged. framing.go holds how a call travels: one exchange per connection,
// the request as the plugin writes it, the answers as the agent writes them and as the plugin reads them.
// Both sides import this package and nothing of each other: the agent serves with net/http
// (cni/agent/service), the plugin writes and reads by hand (cni/agent/client) so that it does not link
// net/http. The package is pure: types, constants and encodings, no I/O.
package protocol

import "fmt"

// Paths served on the agent socket.
const (
	PathAllocate = "/v1/allocate"
	PathRelease  = "/v1/release"
	PathCheck    = "/v1/check"
	PathConflict = "/v1/conflict"
	PathHealth   = "/v1/health"
	PathCNI      = "/v1/cni"
)

// The relay's call (CNI): the runtime's variables travel as these headers, the network config as the
// body, and the answer's HeaderExit is the exit status of the plugin whose stdout the body is. An answer
// without HeaderExit (an agent older than the call, a refused caller, a call the agent leaves to the
// plugin process) tells the relay to exec underlink-ipam-full with the same call.
const (
	HeaderCommand     = "CNI-Command"
	HeaderContainerID = "CNI-ContainerID"
	HeaderNetns       = "CNI-Netns"
	HeaderIfName      = "CNI-IfName"
	HeaderArgs        = "CNI-Args"
	HeaderPath        = "CNI-Path"
	HeaderExit        = "CNI-Exit"
)

// Call is one call of the protocol: the method and path of its request.
type Call struct {
	Method string
	Path   string
}

// Pattern is the call as a net/http ServeMux pattern, e.g. "POST /v1/allocate".
func (c Call) Pattern() string { return c.Method + " " + c.Path }

// The calls.
var (
	// Allocate (CNI ADD): a Request, answered with an Allocation.
	Allocate = Call{Method: "POST", Path: PathAllocate}
	// Release (CNI DEL): a Request, answered with Released.
	Release = Call{Method: "POST", Path: PathRelease}
	// Check (CNI CHECK): a CheckRequest, answered with Empty.
	Check = Call{Method: "POST", Path: PathCheck}
	// Health (CNI STATUS): no body, answered with Empty once the agent's caches are synced.
	Health = Call{Method: "GET", Path: PathHealth}
	// Conflict (a failed CNI ADD): the plugin found addresses it was given held by another host. A
	// ConflictRequest, answered with SetAside.
	Conflict = Call{Method: "POST", Path: PathConflict}
	// CNI (an ADD or a DEL through the relay, cmd/underlink-ipam): see HeaderCommand.
	CNI = Call{Method: "POST", Path: PathCNI}
)

// CNI error codes the agent returns. 1-99 are the CNI spec's; 100 and up are underlink's own.
const (
	// CodeContainerUnknown (CNI 3): the pod named in CNI_ARGS does not exist or has another UID.
	CodeContainerUnknown = 3
	// CodeInvalidEnvironment (CNI 4): CNI_ARGS lacks the pod's namespace or name, or CNI_IFNAME is empty.
	CodeInvalidEnvironment = 4
	// CodeIOFailure (CNI 5): the agent could not decode a request, or the plugin a 2xx answer.
	CodeIOFailure = 5
	// CodeInvalidConfig (CNI 7): the network config or a pod annotation names a pool badly.
	CodeInvalidConfig = 7
	// CodeTryAgainLater (CNI 11): the apiserver could not be reached or the request timed out. The
	// plugin returns it too when the agent cannot be reached or its answer is not HTTP/1.x within the
	// limits of framing.go.
	CodeTryAgainLater = 11
	// CodePluginNotAvailable (CNI 50): STATUS found the agent not serving.
	CodePluginNotAvailable = 50
	// CodePoolExhausted: every candidate pool is full.
	CodePoolExhausted = 100
	// CodePoolRefused: a pool's status is malformed or its spec unusable; the agent leaves it alone.
	CodePoolRefused = 101
	// CodeNoEligiblePool: no named or default pool may serve this pod on this node.
	CodeNoEligiblePool = 102
	// CodeNotAllocated: CHECK found an address of prevResult not held by the pod.
	CodeNotAllocated = 103
	// CodeIPConflict: ADD found an address it was given answered for by another host on the segment
	// (detectIPConflict); the address is set aside in its pool and the next ADD takes another one.
	CodeIPConflict = 104
	// CodeGatewayUnreachable: ADD found the pool's gateway silent (detectGateway); the address is given
	// back.
	CodeGatewayUnreachable = 105
	// CodeInternal: anything else.
	CodeInternal = 999
)

// Pod identifies the pod, from CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID).
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// UID is optional: the agent reads the pod when it is empty. When set it must match the pod.
	UID string `json:"uid,omitempty"`
}

// Request is one ADD or DEL of a pod interface.
type Request struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns,omitempty"`
	Pod         Pod    `json:"pod"`
	// IPv4Pools and IPv6Pools are the network config's ipam.ipv4Pools / ipam.ipv6Pools.
	IPv4Pools []string `json:"ipv4Pools,omitempty"`
	IPv6Pools []string `json:"ipv6Pools,omitempty"`
	// MatchMaster is the network config's ipam.master when ipam.matchMasterSubnet is true: only pools
	// whose subnet holds an address of that host NIC serve.
	MatchMaster string `json:"matchMaster,omitempty"`
}

// CheckRequest is a CHECK: the addresses of prevResult must be held by the pod interface.
type CheckRequest struct {
	Request
	// Addresses are prevResult's addresses in CIDR form, e.g. 172.110.1.5/24.
	Addresses []string `json:"addresses"`
}

// ConflictRequest reports the addresses of an ADD that another host answered for: the agent sets each
// aside in its pool (status.allocatedIPs keeps it, marked with the holder's MAC, for no pod), frees the
// pod interface's other addresses, and records an Event on the pod.
type ConflictRequest struct {
	Request
	Conflicts []AddressConflict `json:"conflicts"`
}

// AddressConflict is one address and the link-layer address of the host that answered for it.
type AddressConflict struct {
	// Address is the address without prefix length, e.g. 172.110.1.5.
	Address string `json:"address"`
	MAC     string `json:"mac"`
	// Probe is how it was found: "ARP" or "NDP".
	Probe string `json:"probe,omitempty"`
}

// SetAside is the answer to a conflict report.
type SetAside struct {
	// Addresses are the addresses set aside, and Freed the pod interface's others given back.
	Addresses []string `json:"addresses,omitempty"`
	Freed     []string `json:"freed,omitempty"`
	// Msg says, for the plugin's error, where the addresses are set aside and how an operator clears
	// them.
	Msg string `json:"msg,omitempty"`
}

// IP is one address given to a pod interface.
type IP struct {
	// Address is the address with the pool's subnet prefix length, e.g. 172.110.1.5/24.
	Address string `json:"address"`
	// Gateway is the pool's gateway; empty when the pool has none or the pod asked for cleangateway.
	Gateway string `json:"gateway,omitempty"`
	Pool    string `json:"pool"`
}

// Route is a route for the pod interface; Gw empty means via the address's gateway.
type Route struct {
	Dst string `json:"dst"`
	Gw  string `json:"gw,omitempty"`
}

// Allocation is the answer to an ADD: one address per family, and the routes of their pools (a default
// route via each pool's gateway when it lies inside the pool's subnet, then the pool's spec.routes).
type Allocation struct {
	IPs    []IP    `json:"ips"`
	Routes []Route `json:"routes,omitempty"`
}

// Released is the answer to a DEL: the addresses freed (none when nothing was held).
type Released struct {
	Addresses []string `json:"addresses,omitempty"`
}

// Empty is the answer to a CHECK that passed and to a health call of a ready agent: {}.
type Empty struct{}

// Error is the body of a non-2xx answer, whose status is Status(Code).
type Error struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
}

func (e *Error) Error() string {
	if e.Details == "" {
		return e.Msg
	}
	return fmt.Sprintf("%s: %s", e.Msg, e.Details)
}
