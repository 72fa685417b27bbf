package spidercompat

// The part of Spiderpool v1.2.2's agent API (api/v1/agent/openapi.yaml, basePath /v1) that its CNI
// plugins call on a DEL, and the ADD this package refuses. Field names and JSON keys are the spec's.

// DefaultSocket is where Spiderpool's agent serves its plugins: the default of the IPAM plugin's
// ipam.ipam_unix_socket_path, and the constant path the coordinator plugin always dials.
const DefaultSocket = "/var/run/spidernet/spiderpool.sock"

// Paths Spiderpool's plugins call.
const (
	PathHealthy           = "/v1/ipam/healthy"
	PathIP                = "/v1/ipam/ip"
	PathCoordinatorConfig = "/v1/coordinator/config"
)

// unimplemented are the other paths of Spiderpool's agent API: a caller gets 501 and is told why.
var unimplemented = []string{"/v1/ipam/ips", "/v1/workloadendpoint", "/v1/runtime/startup", "/v1/runtime/readiness", "/v1/runtime/liveness"}

// IpamDelArgs is the body of DELETE /v1/ipam/ip (the IPAM plugin's DEL). containerID, ifName,
// podNamespace, podName and podUID are required by the spec.
type IpamDelArgs struct {
	ContainerID  string `json:"containerID"`
	IfName       string `json:"ifName"`
	NetNamespace string `json:"netNamespace,omitempty"`
	PodNamespace string `json:"podNamespace"`
	PodName      string `json:"podName"`
	PodUID       string `json:"podUID"`
}

// IpamAddArgs is the part of the body of POST /v1/ipam/ip (the IPAM plugin's ADD) an error message names.
type IpamAddArgs struct {
	ContainerID  string `json:"containerID"`
	IfName       string `json:"ifName"`
	PodNamespace string `json:"podNamespace"`
	PodName      string `json:"podName"`
}

// GetCoordinatorArgs is the body of GET /v1/coordinator/config (the coordinator plugin sends one on a GET).
type GetCoordinatorArgs struct {
	PodName      string `json:"podName,omitempty"`
	PodNamespace string `json:"podNamespace,omitempty"`
}

// CoordinatorConfig is the answer of GET /v1/coordinator/config. mode, overlayPodCIDR, serviceCIDR
// and tunePodRoutes are required: the coordinator validates the answer and fails on a missing one (an
// empty list is present, a null one is not), so they have no omitempty.
type CoordinatorConfig struct {
	Mode               string             `json:"mode"`
	OverlayPodCIDR     []string           `json:"overlayPodCIDR"`
	ServiceCIDR        []string           `json:"serviceCIDR"`
	HijackCIDR         []string           `json:"hijackCIDR"`
	PolicyRoutes       []CoordinatorRoute `json:"policyRoutes,omitempty"`
	PodMACPrefix       string             `json:"podMACPrefix,omitempty"`
	TunePodRoutes      bool               `json:"tunePodRoutes"`
	PodDefaultRouteNIC string             `json:"podDefaultRouteNIC,omitempty"`
	HostRuleTable      int64              `json:"hostRuleTable,omitempty"`
	PodRPFilter        int64              `json:"podRPFilter,omitempty"`
	TxQueueLen         int64              `json:"txQueueLen,omitempty"`
	VethLinkAddress    string             `json:"vethLinkAddress,omitempty"`
	VethMTU            int64              `json:"vethMTU,omitempty"`
}

// CoordinatorRoute is one of CoordinatorConfig's policyRoutes.
type CoordinatorRoute struct {
	Dst string `json:"dst,omitempty"`
	Gw  string `json:"gw,omitempty"`
}

// The spec's Error model is a JSON string: a failure's body is the message, quoted.
