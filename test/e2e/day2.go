package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/test/submariner"
)

// The day-2 step's objects on cluster-a.
const (
	day2Net    = "day2-net"
	day2Pool   = "day2-a"
	day2App    = "day2-app"
	day2Late   = "day2-late"
	day2Joiner = "cluster-c"
)

// cleanDay2 deletes what an earlier run's day-2 step left on c.
func (r *runner) cleanDay2(c TargetCluster) error {
	return r.deleteLeftovers(c, [][]string{
		{"delete", "deployment", day2App, day2Late, "-n", appNamespace, "--ignore-not-found", "--wait=true", "--timeout=90s"},
		{"wait", "--for=delete", "pod", "-n", appNamespace, "-l", "app=" + day2App, "--timeout=90s"},
		{"delete", "clusters.submariner.io", day2Joiner, "-n", submariner.Namespace, "--ignore-not-found"},
		{"delete", "spidermultusconfig", day2Net, "-n", configNS, "--ignore-not-found"},
		{"delete", "spiderippool", day2Pool, "--ignore-not-found", "--timeout=60s"},
	})
}

// day2Deployment is a Deployment of the test app with net1 on network (beside the injected eth0).
func (r *runner) day2Deployment(name, network string, replicas int) []byte {
	return r.appDeployment(name, replicas, nadv1.NetworksAnnotation, configNS+"/"+network+"@net1")
}

// appDeployment is a Deployment of the test app in the app namespace whose pods carry the annotation
// key: value (a network selection).
func (r *runner) appDeployment(name string, replicas int, key, value string) []byte {
	return r.scheduledDeployment(name, replicas, key, value, "")
}

// scheduledDeployment is appDeployment whose pods name scheduler (empty: the cluster's default).
func (r *runner) scheduledDeployment(name string, replicas int, key, value, scheduler string) []byte {
	if scheduler != "" {
		scheduler = "\n      schedulerName: " + scheduler
	}
	return fmt.Appendf(nil, `apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  replicas: %[3]d
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
      annotations:
        %[4]s: %[5]s
    spec:%[7]s
      terminationGracePeriodSeconds: 1
      containers:
      - name: test-app
        image: %[6]s
        imagePullPolicy: Never
`, name, appNamespace, replicas, key, value, r.testApp, scheduler)
}

// day2 is a cluster's life after the install, on cluster-a's real nodes: a Deployment runs on a second
// network with a pool of its own. Deleting that pool is refused while its pods hold addresses, with the
// pods named. A third Submariner cluster joins whose pod CIDR overlaps the pool: labelling the pool,
// removing its finalizer and resizing the Deployment are each admitted, with a warning that names the
// conflict. The network is deleted under the Deployment: a label of the Deployment is admitted, it
// scales to 0 and its pods are gone within 30 s, and a new Deployment naming the deleted network is
// still denied. Then the pool, whose addresses are all released, is deleted.
func (r *runner) day2() error {
	c := r.a
	gw := netip.MustParsePrefix(c.ClusterCIDR).Addr().Next()
	out, err := r.showManifest(c, "apply", []byte(poolManifest(day2Pool, c.ClusterCIDR, gw.String(), "172.110.210.10-172.110.210.20")))
	if err := r.check(err == nil, "SpiderIPPool "+day2Pool+" admitted", firstLine(out, "spiderippool")); err != nil {
		return err
	}
	if err := r.applyNetwork(c, day2Net, r.coordinatedNetwork(day2Net, netbed.UnderlayNIC, day2Pool, ""), "a second network"); err != nil {
		return err
	}
	if out, err := r.showManifest(c, "apply", r.day2Deployment(day2App, day2Net, 2)); err != nil {
		return r.check(false, "Deployment "+day2App+" admitted", out)
	}
	out, err = r.kubectl(c, nil, "rollout", "status", "deployment/"+day2App, "-n", appNamespace, "--timeout=120s")
	if err := r.check(err == nil, "Deployment "+day2App+" on "+day2Net+" rolled out", lastLines(out, 1)); err != nil {
		return err
	}
	pods, _ := r.kubectlQuiet(c, nil, "get", "pods", "-n", appNamespace, "-l", "app="+day2App, "-o", "jsonpath={.items[*].metadata.name}")
	names := strings.Fields(pods)

	// A pool in use cannot be deleted; the denial names the pods that hold its addresses.
	out, err = r.kubectl(c, nil, "delete", "spiderippool", day2Pool, "--wait=false")
	named := len(names) > 0
	for _, n := range names {
		named = named && strings.Contains(out, n)
	}
	if err := r.check(err != nil && named, "deleting SpiderIPPool "+day2Pool+" while its pods run is refused, naming them", firstLine(out, "denied")); err != nil {
		return err
	}

	// A third cluster joins whose pod CIDR overlaps the pool: the world changed under the pool and the
	// Deployment, and nothing that leaves what the rules read as it was is denied.
	joiner := fmt.Sprintf("apiVersion: submariner.io/v1\nkind: Cluster\nmetadata:\n  name: %[1]s\n  namespace: %[2]s\nspec:\n  cluster_id: %[1]s\n  cluster_cidr:\n  - 172.110.210.0/24\n  service_cidr:\n  - 10.250.0.0/18\n", day2Joiner, submariner.Namespace)
	if out, err := r.showManifest(c, "create", []byte(joiner)); err != nil {
		return r.check(false, "Submariner Cluster "+day2Joiner+" joins", out)
	}
	// The warning names the cluster or its CIDR.
	warned := func(out string) bool {
		return strings.Contains(out, "Warning:") && (strings.Contains(out, day2Joiner) || strings.Contains(out, "172.110.210.0/24"))
	}
	// The webhook's cache sees the new cluster within a moment: until it warns of it, the label is
	// written again (--overwrite).
	label := []string{"label", "--overwrite", "spiderippool", day2Pool, "day2=labelled"}
	var lout string
	var lerr error
	werr := poll.Wait(r.ctx, 20*time.Second, pollInterval, "a warning of "+day2Joiner+" on a label of the pool", func() (bool, string, error) {
		lout, lerr = r.kubectlQuiet(c, nil, label...)
		return lerr != nil || warned(lout), lout, nil
	})
	fmt.Fprintf(r.out, "[%s]$ kubectl %s\n%s\n", c.Name, strings.Join(label, " "), indent(strings.TrimRight(lout, "\n")))
	if err := r.check(lerr == nil && werr == nil, "labelling the pool after "+day2Joiner+" joined is admitted, with a warning naming the conflict", firstLine(lout, "Warning")); err != nil {
		return err
	}
	for _, op := range []struct {
		what string
		args []string
	}{
		{"removing the pool's finalizer", []string{"patch", "spiderippool", day2Pool, "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`}},
		{"resizing the Deployment", []string{"patch", "deployment", day2App, "-n", appNamespace, "-p", `{"spec":{"replicas":3}}`}},
	} {
		out, err := r.kubectl(c, nil, op.args...)
		if err := r.check(err == nil && warned(out), op.what+" after "+day2Joiner+" joined is admitted, with a warning naming the conflict", firstLine(out, "Warning")); err != nil {
			return err
		}
	}
	if _, err := r.kubectl(c, nil, "delete", "clusters.submariner.io", day2Joiner, "-n", submariner.Namespace); err != nil {
		return err
	}

	// The network is deleted under the running Deployment.
	if _, err := r.kubectl(c, nil, "delete", "spidermultusconfig", day2Net, "-n", configNS); err != nil {
		return err
	}
	out, err = r.kubectl(c, nil, "label", "deployment", day2App, "-n", appNamespace, "day2=network-deleted")
	if err := r.check(err == nil, "a label of "+day2App+" after its network was deleted is admitted", strings.TrimSpace(out)); err != nil {
		return err
	}
	start := time.Now()
	if _, err := r.kubectl(c, nil, "scale", "deployment", day2App, "-n", appNamespace, "--replicas=0"); err != nil {
		return r.check(false, "scaling "+day2App+" to 0", err.Error())
	}
	werr = poll.Wait(r.ctx, 30*time.Second, pollInterval, day2App+" at 0 replicas, its pods gone", func() (bool, string, error) {
		rs, _ := r.kubectlQuiet(c, nil, "get", "replicasets", "-n", appNamespace, "-l", "app="+day2App, "-o", "jsonpath={.items[*].status.replicas}")
		left, _ := r.kubectlQuiet(c, nil, "get", "pods", "-n", appNamespace, "-l", "app="+day2App, "-o", "name")
		zero := true
		for _, n := range strings.Fields(rs) {
			zero = zero && n == "0"
		}
		return zero && strings.TrimSpace(left) == "", "replicas " + rs + ", pods " + strings.Join(strings.Fields(left), " "), nil
	})
	detail := fmt.Sprintf("ReplicaSet at 0 and pods gone %s after the scale", time.Since(start).Round(100*time.Millisecond))
	if werr != nil {
		detail = werr.Error()
	}
	if err := r.check(werr == nil, day2App+" scales to 0 after its network was deleted, within 30s", detail); err != nil {
		return err
	}
	out, err = r.showManifest(c, "create", r.day2Deployment(day2Late, day2Net, 1))
	if err := r.check(err != nil && strings.Contains(out, day2Net), "a new Deployment naming the deleted network is denied", firstLine(out, "denied")); err != nil {
		return err
	}

	// Every address released: the pool goes.
	// Addresses whose release is still on its way (a DEL after the network's NAD went) are freed by
	// garbage collection within its grace period; the pool's finalizer holds the pool until then.
	out, err = r.kubectl(c, nil, "delete", "spiderippool", day2Pool, "--timeout=150s")
	if err := r.check(err == nil, "SpiderIPPool "+day2Pool+" is deleted once its pods are gone", strings.TrimSpace(out)); err != nil {
		return err
	}
	_, err = r.kubectl(c, nil, "delete", "deployment", day2App, "-n", appNamespace)
	return err
}
