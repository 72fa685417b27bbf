package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MultusCNIConfigSpec is the desired state of a SpiderMultusConfig: which CNI attaches the pod to the
// underlay, on which host NIC, with which pools, and how the coordinator routes the pod's other traffic.
type MultusCNIConfigSpec struct {
	// CniType is the main CNI plugin of the generated network. underlink generates networks for macvlan
	// and custom; admission denies the others, which would get no NetworkAttachmentDefinition, and the
	// schema keeps them so Spiderpool objects round-trip.
	// +kubebuilder:validation:Enum=macvlan;ipvlan;vlan;sriov;ovs;ib-sriov;ipoib;custom
	// +kubebuilder:default=custom
	// +optional
	CniType *string `json:"cniType,omitempty"`

	// MacvlanConfig configures the macvlan interface (spec.cniType macvlan).
	// +optional
	MacvlanConfig *SpiderMacvlanCniConfig `json:"macvlan,omitempty"`

	// IPVlanConfig configures an ipvlan interface (spec.cniType ipvlan). Kept, not used: see CniType.
	// +optional
	IPVlanConfig *SpiderIPvlanCniConfig `json:"ipvlan,omitempty"`

	// VlanConfig configures a VLAN interface (spec.cniType vlan). Kept, not used: see CniType.
	// +optional
	VlanConfig *SpiderVlanCniConfig `json:"vlan,omitempty"`

	// SriovConfig configures an SR-IOV virtual function (spec.cniType sriov). Kept, not used.
	// +optional
	SriovConfig *SpiderSRIOVCniConfig `json:"sriov,omitempty"`

	// OvsConfig configures an Open vSwitch port (spec.cniType ovs). Kept, not used.
	// +optional
	OvsConfig *SpiderOvsCniConfig `json:"ovs,omitempty"`

	// IbSriovConfig configures an InfiniBand SR-IOV function (spec.cniType ib-sriov). Kept, not used.
	// +optional
	IbSriovConfig *SpiderIBSriovCniConfig `json:"ibsriov,omitempty"`

	// IpoibConfig configures an IP-over-InfiniBand interface (spec.cniType ipoib). Kept, not used.
	// +optional
	IpoibConfig *SpiderIpoibCniConfig `json:"ipoib,omitempty"`

	// EnableCoordinator chains the coordinator after the main plugin (veth to the host, hijack routes).
	// +kubebuilder:default=true
	// +optional
	EnableCoordinator *bool `json:"enableCoordinator,omitempty"`

	// DisableIPAM leaves the main plugin without IPAM (no pool address). Deprecated by Spiderpool in
	// favour of spec.ipam.enabled.
	// +kubebuilder:default=false
	// +optional
	DisableIPAM *bool `json:"disableIPAM,omitempty"`

	// CoordinatorConfig configures the coordinator plugin, chiefly spec.coordinator.hijackCIDR.
	// +optional
	CoordinatorConfig *CoordinatorSpec `json:"coordinator,omitempty"`

	// ChainCNIJsonData are extra CNI plugin configurations (JSON) appended to the chain.
	// +optional
	ChainCNIJsonData []string `json:"chainCNIJsonData,omitempty"`

	// CustomCNIConfig is the whole CNI configuration (JSON) for spec.cniType custom.
	// +optional
	CustomCNIConfig *string `json:"customCNI,omitempty"`
}

// SpiderMacvlanCniConfig configures a macvlan interface on a host NIC.
type SpiderMacvlanCniConfig struct {
	// Master are the host NICs macvlan interfaces are made on, e.g. [ens224]. One NIC, or several with
	// spec.macvlan.bond.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=15
	Master []string `json:"master"`

	// VlanID, when not 0, puts the macvlan on the VLAN sub-interface <master>.<vlanID>.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`

	// MTU of the pod's macvlan interface; 0 keeps the master's MTU.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	MTU *int32 `json:"mtu,omitempty"`

	// Bond bonds several master NICs into one before the macvlan is made.
	// +optional
	Bond *BondConfig `json:"bond,omitempty"`

	// RdmaResourceName is the RDMA device resource pods of this network request. Kept, not used:
	// underlink requests no device resources (admission warns).
	// +optional
	RdmaResourceName *string `json:"rdmaResourceName,omitempty"`

	// SpiderpoolConfigPools are the pools pods of this network take addresses from, unless a pod's
	// ipam.spidernet.io/ippool(s) annotation says otherwise.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderIPvlanCniConfig is the ipvlan counterpart of SpiderMacvlanCniConfig, field for field.
type SpiderIPvlanCniConfig struct {
	// +kubebuilder:validation:Required
	Master []string `json:"master"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`
	// +optional
	Bond *BondConfig `json:"bond,omitempty"`
	// +optional
	RdmaResourceName *string `json:"rdmaResourceName,omitempty"`
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderVlanCniConfig configures a VLAN interface made on a master NIC in the pod.
type SpiderVlanCniConfig struct {
	// +kubebuilder:validation:Required
	Master []string `json:"master"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`
	// VlanMode is manual (the VLAN ID given) or auto.
	// +kubebuilder:validation:Enum=manual;auto
	// +kubebuilder:default=manual
	// +optional
	VlanMode *string `json:"vlanMode,omitempty"`
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`
	// +optional
	Bond *BondConfig `json:"bond,omitempty"`
	// +optional
	RdmaResourceName *string `json:"rdmaResourceName,omitempty"`
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderSRIOVCniConfig configures an SR-IOV virtual function given to the pod.
type SpiderSRIOVCniConfig struct {
	// ResourceName is the device plugin resource of the virtual functions.
	// +optional
	ResourceName *string `json:"resourceName,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinTxRateMbps *int `json:"minTxRateMbps,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxTxRateMbps *int `json:"maxTxRateMbps,omitempty"`
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`
	// +kubebuilder:default=false
	// +optional
	EnableRdma *bool `json:"rdmaIsolation,omitempty"`
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderIBSriovCniConfig configures an InfiniBand SR-IOV function given to the pod.
type SpiderIBSriovCniConfig struct {
	// +optional
	ResourceName *string `json:"resourceName,omitempty"`
	// +optional
	Pkey *string `json:"pkey,omitempty"`
	// +kubebuilder:validation:Enum=auto;enable;disable
	// +kubebuilder:default=enable
	// +optional
	LinkState *string `json:"linkState,omitempty"`
	// +kubebuilder:default=true
	// +optional
	RdmaIsolation *bool `json:"rdmaIsolation,omitempty"`
	// +kubebuilder:default=false
	// +optional
	IbKubernetesEnabled *bool `json:"enableIbKubernetes,omitempty"`
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderIpoibCniConfig configures an IP-over-InfiniBand interface on a master NIC.
type SpiderIpoibCniConfig struct {
	// +optional
	Master *string `json:"master,omitempty"`
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderOvsCniConfig configures a port on an Open vSwitch bridge.
type SpiderOvsCniConfig struct {
	// +kubebuilder:validation:Required
	BrName string `json:"bridge"`
	// +optional
	VlanTag *int32 `json:"vlan,omitempty"`
	// +optional
	Trunk []OvsTrunk `json:"trunk,omitempty"`
	// DeviceID is the PCI address of a hardware-offloaded port.
	// +optional
	DeviceID string `json:"deviceID,omitempty"`
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// OvsTrunk is one VLAN ID, or a range of them, an OVS port carries.
type OvsTrunk struct {
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	MinID *uint `json:"minID,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	MaxID *uint `json:"maxID,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	ID *uint `json:"id,omitempty"`
}

// BondConfig describes a bond made of several master NICs.
type BondConfig struct {
	// Name of the bond interface.
	// +kubebuilder:validation:Required
	Name string `json:"name"`

	// Mode is the Linux bonding mode, 0 to 6.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=6
	Mode int32 `json:"mode"`

	// Options are extra bonding options, e.g. "primary=ens224".
	// +optional
	Options *string `json:"options,omitempty"`
}

// SpiderpoolPools names the default IPv4 and IPv6 pools of a network.
type SpiderpoolPools struct {
	// MatchMasterSubnet: on a node, only the pools whose subnet holds an address of the master NIC there
	// serve (in the IPAM and in the scheduler).
	// +kubebuilder:validation:Enum=true;false
	// +kubebuilder:default=false
	// +optional
	MatchMasterSubnet *bool `json:"matchMasterSubnet,omitempty"`

	// IPv4IPPool are SpiderIPPool names the pod's IPv4 address comes from, tried in order.
	// +optional
	IPv4IPPool []string `json:"ipv4,omitempty"`

	// IPv6IPPool are SpiderIPPool names the pod's IPv6 address comes from, tried in order.
	// +optional
	IPv6IPPool []string `json:"ipv6,omitempty"`
}

// CoordinatorSpec configures the coordinator, the chained plugin that gives an underlay pod a veth to
// its node and routes chosen traffic (services, remote clusters) through the node.
type CoordinatorSpec struct {
	// Mode is the coordinator's mode: underlay (the pod's default route stays on the underlay NIC and a
	// veth to the node carries hijacked traffic), overlay, auto or disabled.
	// +kubebuilder:validation:Enum=auto;underlay;overlay;disabled
	// +kubebuilder:default=auto
	// +optional
	Mode *string `json:"mode,omitempty"`

	// PodCIDRType says where the coordinator learns the cluster's pod CIDRs.
	// +kubebuilder:validation:Enum=auto;cluster;calico;cilium;none
	// +optional
	PodCIDRType *string `json:"podCIDRType,omitempty"`

	// HijackCIDR are destinations the pod reaches through its node over veth0 instead of the underlay:
	// with Submariner, every remote cluster's pod and service CIDR, e.g. [10.243.0.0/18, 172.111.0.0/16].
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="each entry must be a CIDR such as 172.111.0.0/16"
	// +optional
	HijackCIDR []string `json:"hijackCIDR,omitempty"`

	// PodMACPrefix fixes the first two bytes of pod MAC addresses, e.g. "0a:1b" (unicast: lowest bit of
	// the first byte 0).
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F][02468aceACE]:[0-9a-fA-F]{2}$`
	// +optional
	PodMACPrefix *string `json:"podMACPrefix,omitempty"`

	// TunePodRoutes tunes the routes of pods with several NICs so replies leave by the NIC requests came in.
	// +kubebuilder:default=true
	// +optional
	TunePodRoutes *bool `json:"tunePodRoutes,omitempty"`

	// PodDefaultRouteNIC is the pod NIC that carries the default route; empty keeps it on eth0.
	// +optional
	PodDefaultRouteNIC *string `json:"podDefaultRouteNIC,omitempty"`

	// HostRuleTable is the routing table number used for pod ↔ node traffic.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	HostRuleTable *int64 `json:"hostRuleTable,omitempty"`

	// PodRPFilter sets rp_filter in the pod: 0, 1 or 2; a negative value leaves it as it is.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Maximum=2
	// +optional
	PodRPFilter *int32 `json:"podRPFilter,omitempty"`

	// TxQueueLen sets the pod interfaces' transmit queue length; 0 leaves it as it is.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	TxQueueLen *int32 `json:"txQueueLen,omitempty"`

	// DetectIPConflict probes the segment (ARP for IPv4, NDP duplicate address detection for IPv6)
	// for each address given to a pod of the network before its interface is configured: a host that
	// answers fails the pod's ADD, naming the address and the holder's MAC, and the address is set
	// aside in its pool until an operator clears it.
	// +kubebuilder:default=false
	// +optional
	DetectIPConflict *bool `json:"detectIPConflict,omitempty"`

	// DetectGateway asks the pool's gateway (ARP, NDP) before a pod's interface is configured; a
	// gateway that does not answer fails the pod's ADD.
	// +kubebuilder:default=false
	// +optional
	DetectGateway *bool `json:"detectGateway,omitempty"`

	// VethMTU is the MTU of both ends of the pod's veth to its node; omitted keeps the kernel's
	// default (1500). Admission denies values outside 576 to 65535.
	// +kubebuilder:validation:Minimum=1
	// +optional
	VethMTU *int64 `json:"vethMTU,omitempty"`

	// PolicyRoutes are extra routes of the pod (destination via gateway). Kept, not used: admission warns
	// and points at hijackCIDR, which routes destinations through the node.
	// +optional
	PolicyRoutes []PolicyRoute `json:"policyRoutes,omitempty"`

	// VethLinkAddress is the link-local address given to the host side of the pod's veth.
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address such as 169.254.100.1"
	// +optional
	VethLinkAddress *string `json:"vethLinkAddress,omitempty"`
}

// PolicyRoute is a route of the pod: Dst via Gw.
type PolicyRoute struct {
	// +kubebuilder:validation:Required
	Dst string `json:"dst"`
	// +kubebuilder:validation:Required
	Gw string `json:"gw"`
}

// SpiderMultusConfigStatus is underlink's additive status of a SpiderMultusConfig.
type SpiderMultusConfigStatus struct {
	// Conditions are Aligned (pools and hijack routes agree with Submariner's cluster CIDRs) and Ready
	// (the NetworkAttachmentDefinition is in place).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SpiderMultusConfig describes an underlay network; underlink generates the Multus
// NetworkAttachmentDefinition of the same name from it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={spiderpool},path="spidermultusconfigs",scope="Namespaced",shortName={smc},singular="spidermultusconfig"
// +kubebuilder:printcolumn:JSONPath=".spec.cniType",name="CNI",type=string,description="Main CNI plugin"
// +kubebuilder:printcolumn:JSONPath=".spec.macvlan.master",name="MASTER",type=string,description="Host NICs"
// +kubebuilder:printcolumn:JSONPath=".status.conditions[?(@.type==\"Aligned\")].status",name="ALIGNED",type=string,description="Whether pools and hijack routes agree with Submariner"
// +kubebuilder:printcolumn:JSONPath=".metadata.creationTimestamp",name="AGE",type=date
type SpiderMultusConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired network.
	// +optional
	Spec MultusCNIConfigSpec `json:"spec,omitempty"`
	// Status is written by underlink's controller.
	// +optional
	Status SpiderMultusConfigStatus `json:"status,omitempty"`
}

// SpiderMultusConfigList is a list of SpiderMultusConfigs.
//
// +kubebuilder:object:root=true
type SpiderMultusConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderMultusConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SpiderMultusConfig{}, &SpiderMultusConfigList{})
}
