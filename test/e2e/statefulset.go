package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// The StatefulSet step's objects on cluster-a: a StatefulSet of three test-app pods with eth0 on the
// cluster's default network (injected) and net1 on a network of its own pool.
const (
	stsName = "e2e-web"
	stsNet  = "sts-net"
	stsPool = "sts-a"
)

var stsRange = []string{"172.110.214.10-172.110.214.19"}

// cleanStatefulSet deletes what an earlier run's StatefulSet step left on c.
func (r *runner) cleanStatefulSet(c TargetCluster) error {
	return r.deleteLeftovers(c, [][]string{
		{"delete", "statefulset", stsName, "-n", appNamespace, "--ignore-not-found", "--wait=true", "--timeout=60s"},
		{"delete", "pod", "-n", appNamespace, "-l", "underlink-e2e=" + stsName, "--ignore-not-found", "--wait=true", "--timeout=60s", "--grace-period=1"},
		{"delete", "spidermultusconfig", stsNet, "-n", configNS, "--ignore-not-found"},
		{"delete", "spiderippool", stsPool, "--ignore-not-found", "--timeout=60s"},
	})
}

func (r *runner) stsManifest(replicas int) []byte {
	return fmt.Appendf(nil, `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  replicas: %[6]d
  podManagementPolicy: Parallel
  serviceName: %[1]s
  selector:
    matchLabels:
      underlink-e2e: %[1]s
  template:
    metadata:
      labels:
        underlink-e2e: %[1]s
      annotations:
        %[3]s: %[4]s/%[7]s@net1
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: test-app
        image: %[5]s
        imagePullPolicy: Never
`, stsName, appNamespace, nadv1.NetworksAnnotation, configNS, r.testApp, replicas, stsNet)
}

// stsAddresses are the addresses each pod of the StatefulSet holds, by pod name: "pool=ip" of each of
// its pool records (eth0's and net1's), read from the pools' status.
func (r *runner) stsAddresses(c TargetCluster) (map[string][]string, error) {
	out := map[string][]string{}
	for _, pool := range []string{c.Name, stsPool} {
		allocs, err := r.poolAllocations(c, pool)
		if err != nil {
			return nil, err
		}
		for ip, a := range allocs {
			if name, ok := strings.CutPrefix(a.NamespacedName, appNamespace+"/"+stsName+"-"); ok {
				out[stsName+"-"+name] = append(out[stsName+"-"+name], pool+"="+ip+"("+a.NIC+")")
			}
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out, nil
}

// stsPods are the StatefulSet's pods: name → UID, and name → the addresses in the pod's own network
// namespace as its runtime reported them (status.podIPs, eth0), for those Running.
func (r *runner) stsPods(c TargetCluster) (uids, podIPs map[string]string, err error) {
	out, err := r.kubectlQuiet(c, nil, "get", "pods", "-n", appNamespace, "-l", "underlink-e2e="+stsName, "-o", "json")
	if err != nil {
		return nil, nil, fmt.Errorf("%v: %s", err, out)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name, UID         string
				DeletionTimestamp *string
			}
			Status struct{ Phase, PodIP string }
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, nil, err
	}
	uids, podIPs = map[string]string{}, map[string]string{}
	for _, p := range list.Items {
		if p.Metadata.DeletionTimestamp != nil || p.Status.Phase != "Running" {
			continue
		}
		uids[p.Metadata.Name], podIPs[p.Metadata.Name] = p.Metadata.UID, p.Status.PodIP
	}
	return uids, podIPs, nil
}

// statefulSet is a StatefulSet on cluster-a's real nodes, each pod with two underlay interfaces. It is
// rolled twice and one pod is force-deleted: every pod keeps both its addresses, as the pools record
// them and as its runtime reports them. Scaled to 1, the two ordinals no longer wanted release theirs;
// deleted, the StatefulSet releases them all, and its SpiderEndpoints go.
func (r *runner) statefulSet() error {
	c := r.a
	gw := netip.MustParsePrefix(c.ClusterCIDR).Addr().Next()
	out, err := r.showManifest(c, "apply", []byte(poolManifest(stsPool, c.ClusterCIDR, gw.String(), stsRange...)))
	if err := r.check(err == nil, "SpiderIPPool "+stsPool+" admitted", firstLine(out, "spiderippool")); err != nil {
		return err
	}
	if err := r.applyNetwork(c, stsNet, r.coordinatedNetwork(stsNet, netbed.UnderlayNIC, stsPool, ""), "net1 of the StatefulSet"); err != nil {
		return err
	}
	if out, err := r.showManifest(c, "apply", r.stsManifest(3)); err != nil {
		return r.check(false, "StatefulSet "+stsName+" admitted", out)
	}
	// ready waits until the StatefulSet's rollout is done with n pods Running, and returns what they hold.
	ready := func(what string, n int, prevUIDs map[string]string) (map[string][]string, map[string]string, error) {
		var addrs map[string][]string
		var uids, podIPs map[string]string
		err := poll.Wait(r.ctx, 4*time.Minute, pollInterval, what, func() (bool, string, error) {
			var err error
			if uids, podIPs, err = r.stsPods(c); err != nil {
				return false, err.Error(), nil
			}
			if addrs, err = r.stsAddresses(c); err != nil {
				return false, err.Error(), nil
			}
			if len(uids) != n {
				return false, fmt.Sprintf("%d Running", len(uids)), nil
			}
			for name, uid := range uids {
				if prevUIDs[name] == uid {
					return false, name + " not replaced yet", nil
				}
			}
			out, err := r.kubectlQuiet(c, nil, "rollout", "status", "statefulset/"+stsName, "-n", appNamespace, "--timeout=1s")
			return err == nil, lastLines(out, 1), nil
		})
		return addrs, podIPs, err
	}
	addrs, podIPs, err := ready("StatefulSet "+stsName+" Running with 3 pods", 3, nil)
	if err := r.check(err == nil && len(addrs) == 3, "StatefulSet "+stsName+": 3 pods, each with an address on eth0 and on net1",
		fmt.Sprintf("%v %v", sortedLists(addrs), err)); err != nil {
		return err
	}
	for name, list := range addrs {
		if err := r.check(len(list) == 2 && slices.ContainsFunc(list, func(s string) bool { return strings.HasPrefix(s, c.Name+"="+podIPs[name]+"(") }),
			name+" holds two addresses, eth0's the one its runtime reports", fmt.Sprintf("%v, status.podIP %s", list, podIPs[name])); err != nil {
			return err
		}
	}
	if out, err := r.kubectl(c, nil, "get", "spiderendpoints", "-n", appNamespace, "-o", "wide"); err != nil || strings.Count(out, stsName+"-") != 3 {
		return r.check(false, "a SpiderEndpoint records each pod's addresses", out)
	}
	uids, _, _ := r.stsPods(c)
	// Rolled twice, then one pod force-deleted (no grace, its container still stopping on its node).
	for i, act := range [][]string{
		{"rollout", "restart", "statefulset/" + stsName, "-n", appNamespace},
		{"rollout", "restart", "statefulset/" + stsName, "-n", appNamespace},
		{"delete", "pod", stsName + "-1", "-n", appNamespace, "--force", "--grace-period=0"},
	} {
		start := time.Now()
		if out, err := r.kubectl(c, nil, act...); err != nil {
			return r.check(false, strings.Join(act[:2], " "), out)
		}
		prev := uids
		if act[0] == "delete" {
			prev = map[string]string{stsName + "-1": uids[stsName+"-1"]}
		}
		what := fmt.Sprintf("rollout %d", i+1)
		if act[0] == "delete" {
			what = stsName + "-1 force-deleted"
		}
		after, afterIPs, err := ready(what+": the pods replaced and Running", 3, prev)
		if err := r.check(err == nil && maps.EqualFunc(addrs, after, slices.Equal) && maps.Equal(podIPs, afterIPs),
			what+": every pod keeps both its addresses", fmt.Sprintf("%.1fs; before %v, after %v (status.podIP %v)", time.Since(start).Seconds(),
				sortedLists(addrs), sortedLists(after), afterIPs)); err != nil {
			return err
		}
		uids, _, _ = r.stsPods(c)
	}

	// Scaled to 1: e2e-web-1 and e2e-web-2's addresses are released.
	start := time.Now()
	if out, err := r.kubectl(c, nil, "scale", "statefulset/"+stsName, "-n", appNamespace, "--replicas=1"); err != nil {
		return r.check(false, "scale to 1", out)
	}
	var left map[string][]string
	err = poll.Wait(r.ctx, 2*time.Minute, pollInterval, "the addresses of ordinals 1 and 2 released", func() (bool, string, error) {
		left, err = r.stsAddresses(c)
		if err != nil {
			return false, err.Error(), nil
		}
		return len(left) == 1 && slices.Equal(left[stsName+"-0"], addrs[stsName+"-0"]), fmt.Sprint(sortedLists(left)), nil
	})
	if err := r.check(err == nil, "scaled to 1: the 4 addresses of "+stsName+"-1 and -2 released, "+stsName+"-0 keeps its own",
		fmt.Sprintf("%.1fs after the scale; left %v", time.Since(start).Seconds(), sortedLists(left))); err != nil {
		return err
	}
	// Deleted: all released, and no SpiderEndpoint is left.
	start = time.Now()
	if out, err := r.kubectl(c, nil, "delete", "statefulset", stsName, "-n", appNamespace, "--wait=false"); err != nil {
		return r.check(false, "StatefulSet deleted", out)
	}
	var eps string
	err = poll.Wait(r.ctx, 2*time.Minute, pollInterval, "every address released and every endpoint deleted", func() (bool, string, error) {
		left, err = r.stsAddresses(c)
		if err != nil {
			return false, err.Error(), nil
		}
		eps, _ = r.kubectlQuiet(c, nil, "get", "spiderendpoints", "-n", appNamespace, "-o", "name")
		return len(left) == 0 && !strings.Contains(eps, stsName), fmt.Sprintf("%v; %s", sortedLists(left), eps), nil
	})
	if err := r.check(err == nil, "StatefulSet deleted: every address released, its SpiderEndpoints gone",
		fmt.Sprintf("%.1fs after the delete; left %v %s", time.Since(start).Seconds(), sortedLists(left), strings.TrimSpace(eps))); err != nil {
		return err
	}
	return r.cleanStatefulSet(c)
}

func sortedLists(m map[string][]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+":"+strings.Join(v, ","))
	}
	slices.Sort(out)
	return out
}
