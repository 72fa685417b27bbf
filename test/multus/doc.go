// Package multus is the test bed's stand-in for Multus, which cannot be installed here: a delegating CNI
// plugin that does for the user's scenario exactly what Multus does for it, and nothing more. For a pod
// it reads the pod's v1.multus-cni.io/default-network annotation (through the apiserver, with the
// K8S_POD_NAMESPACE and K8S_POD_NAME arguments kubelet passes), fetches that
// NetworkAttachmentDefinition, runs its chain with libcni as the pod's eth0, and hands the chain's result
// back to the runtime. It keeps the chain it ran per attachment, so DEL and CHECK work after the pod or
// the NAD are gone, as Multus's own cache does.
//
// No extra networks (k8s.v1.cni.cncf.io/networks), no clusterNetwork delegation beyond one configured
// fallback NAD, no device plugins: underlink never depends on this package; in a real cluster Multus
// runs the same NADs.
package multus
