package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NetworkAttachmentDefinitionSpec holds the network's CNI configuration.
type NetworkAttachmentDefinitionSpec struct {
	// Config is the CNI configuration (a plugin or a plugin list) as a JSON string.
	// +optional
	Config string `json:"config,omitempty"`
}

// NetworkAttachmentDefinition is a network a pod can be attached to by a Multus-style meta plugin.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path="network-attachment-definitions",scope="Namespaced",singular="network-attachment-definition",shortName={net-attach-def}
type NetworkAttachmentDefinition struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec holds the network's CNI configuration.
	// +optional
	Spec NetworkAttachmentDefinitionSpec `json:"spec,omitempty"`
}

// NetworkAttachmentDefinitionList is a list of NetworkAttachmentDefinitions.
//
// +kubebuilder:object:root=true
type NetworkAttachmentDefinitionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []NetworkAttachmentDefinition `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NetworkAttachmentDefinition{}, &NetworkAttachmentDefinitionList{})
}
