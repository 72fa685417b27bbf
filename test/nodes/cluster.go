package nodes

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// startClusterServices makes the cluster usable by its nodes' pods: the kubernetes Service's endpoint
// (the apiserver relay), a kube-scheduler, and the egress proxy that lets the apiserver reach kubelets
// and Services. Multus is not part of them: it is installed into the cluster as its users install it
// (MultusManifest).
func (e *Env) startClusterServices(ctx context.Context, cn *ClusterNodes) error {
	if err := cn.publishAPIServerEndpoint(ctx); err != nil {
		return err
	}
	if err := e.startScheduler(ctx, cn); err != nil {
		return err
	}
	if cn.Spec.EgressSocket != "" {
		p, err := StartEgressProxy(cn.Spec.EgressSocket, cn.Nodes[0].Net.NS)
		if err != nil {
			return err
		}
		e.bed.OnTeardown(p.Close)
	}
	return nil
}

// publishAPIServerEndpoint points the kubernetes Service at the apiserver relay with the EndpointSlice the
// apiserver's own endpoint reconciler would write for an advertise address (it runs with --endpoint-reconciler-type=none
// because its real address is loopback). Pods with in-cluster config — the chart's webhook, scheduler
// and agent — reach the apiserver through it and kube-proxy.
func (cn *ClusterNodes) publishAPIServerEndpoint(ctx context.Context) error {
	host, portStr, err := net.SplitHostPort(cn.APIServerAddr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return err
	}
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
		Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "underlink-test-bed"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	disc := cn.Client.DiscoveryV1().EndpointSlices(slice.Namespace)
	if err := createOrUpdate(ctx, slice, disc.Create, disc.Get, disc.Update); err != nil {
		return fmt.Errorf("kubernetes Service endpoint slice: %w", err)
	}
	return nil
}

// createOrUpdate creates obj with a typed client's calls, or replaces the existing object's content.
func createOrUpdate[T interface {
	metav1.Object
	*O
}, O any](ctx context.Context, obj T,
	create func(context.Context, T, metav1.CreateOptions) (T, error),
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
) error {
	_, err := create(ctx, obj, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	_, err = update(ctx, obj, metav1.UpdateOptions{})
	return err
}

// startScheduler runs the stock kube-scheduler of the cluster (the default profile; underlink's own
// scheduler is installed like the rest of underlink) in the management namespace, beside the apiserver
// relay, without a serving port.
func (e *Env) startScheduler(ctx context.Context, cn *ClusterNodes) error {
	logs := filepath.Join(cn.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	kc := filepath.Join(cn.dir, "kube-scheduler.kubeconfig")
	if err := cn.auth.kubeconfig(kc, "https://"+cn.APIServerAddr, "kubernetes", "system:kube-scheduler"); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(logs, "kube-scheduler.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(e.opts.Binaries["kube-scheduler"], "--kubeconfig", kc, "--secure-port", "0", "--leader-elect=false", "--v", "1")
	cmd.Stdout, cmd.Stderr = f, f
	p, err := e.bed.Start(e.bed.Mgmt(), cn.Spec.Name+"-kube-scheduler", cmd)
	if err != nil {
		return err
	}
	// It fails fast on a bad flag or kubeconfig; give it that moment.
	select {
	case <-p.Done():
		return fmt.Errorf("kube-scheduler exited: %v\n%s", p.Wait(), tail(f.Name(), 15))
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}
