package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterSpec describes one cluster joined to the Submariner broker.
type ClusterSpec struct {
	// ClusterID is the cluster's name in Submariner, as given to `subctl join --clusterid`.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinLength=1
	ClusterID string `json:"cluster_id"`

	// ColorCodes are Submariner's (deprecated) cluster color codes.
	// +optional
	ColorCodes []string `json:"color_codes,omitempty"`

	// ServiceCIDR are the cluster's Service CIDRs, e.g. [10.233.0.0/18].
	// +optional
	ServiceCIDR []string `json:"service_cidr,omitempty"`

	// ClusterCIDR are the cluster's pod CIDRs, as given to `subctl join --clustercidr`, e.g. [172.110.0.0/16].
	// +optional
	ClusterCIDR []string `json:"cluster_cidr,omitempty"`

	// GlobalCIDR are the cluster's Globalnet CIDRs; non-empty when Globalnet is on.
	// +optional
	GlobalCIDR []string `json:"global_cidr,omitempty"`
}

// Cluster is a cluster joined to the Submariner broker, synced into every joined cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path="clusters",scope="Namespaced",singular="cluster"
// +kubebuilder:printcolumn:JSONPath=".spec.cluster_id",name="CLUSTER-ID",type=string
// +kubebuilder:printcolumn:JSONPath=".spec.cluster_cidr",name="CLUSTER-CIDR",type=string
// +kubebuilder:printcolumn:JSONPath=".spec.service_cidr",name="SERVICE-CIDR",type=string
// +kubebuilder:printcolumn:JSONPath=".spec.global_cidr",name="GLOBAL-CIDR",type=string,priority=10
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the cluster.
	Spec ClusterSpec `json:"spec"`
}

// ClusterList is a list of Clusters.
//
// +kubebuilder:object:root=true
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Cluster `json:"items"`
}

// EndpointSpec describes a Submariner gateway of a cluster.
type EndpointSpec struct {
	// ClusterID is the cluster the gateway belongs to.
	// +kubebuilder:validation:Required
	ClusterID string `json:"cluster_id"`
	// CableName names the gateway's cable (tunnel end).
	// +optional
	CableName string `json:"cable_name,omitempty"`
	// HealthCheckIP is the address the gateway answers health checks on.
	// +optional
	HealthCheckIP string `json:"healthCheckIP,omitempty"`
	// Hostname is the gateway node's name.
	// +optional
	Hostname string `json:"hostname,omitempty"`
	// Subnets are the CIDRs reached through this gateway (the cluster's pod and service CIDRs).
	// +optional
	Subnets []string `json:"subnets,omitempty"`
	// PrivateIP is the gateway's address on the inter-cluster network.
	// +optional
	PrivateIP string `json:"private_ip,omitempty"`
	// PublicIP is the gateway's public address, when it is behind NAT.
	// +optional
	PublicIP string `json:"public_ip,omitempty"`
	// NATEnabled says whether the gateway is behind NAT.
	// +optional
	NATEnabled bool `json:"nat_enabled,omitempty"`
	// Backend is the cable driver: libreswan, wireguard or vxlan.
	// +optional
	Backend string `json:"backend,omitempty"`
	// BackendConfig are the cable driver's settings.
	// +optional
	BackendConfig map[string]string `json:"backend_config,omitempty"`
}

// Endpoint is a Submariner gateway of a joined cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path="endpoints",scope="Namespaced",singular="endpoint"
// +kubebuilder:printcolumn:JSONPath=".spec.cluster_id",name="CLUSTER-ID",type=string
// +kubebuilder:printcolumn:JSONPath=".spec.hostname",name="HOSTNAME",type=string
// +kubebuilder:printcolumn:JSONPath=".spec.private_ip",name="PRIVATE-IP",type=string
// +kubebuilder:printcolumn:JSONPath=".spec.backend",name="BACKEND",type=string
type Endpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the gateway.
	Spec EndpointSpec `json:"spec"`
}

// EndpointList is a list of Endpoints.
//
// +kubebuilder:object:root=true
type EndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Endpoint `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Cluster{}, &ClusterList{}, &Endpoint{}, &EndpointList{})
}
