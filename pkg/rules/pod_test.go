package rules

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

func podWorld() *World {
	restricted := pool("team-only", "172.110.2.0/24", "172.110.2.254", []string{"172.110.2.1-172.110.2.100"}, func(p *spiderv2beta1.SpiderIPPool) {
		p.Spec.NamespaceName = []string{"team"}
	})
	byLabel := pool("labelled", "172.110.3.0/24", "172.110.3.254", []string{"172.110.3.1"}, func(p *spiderv2beta1.SpiderIPPool) {
		p.Spec.NamespaceAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"underlay": "yes"}}
	})
	byPod := pool("for-db", "172.110.4.0/24", "172.110.4.254", []string{"172.110.4.1"}, func(p *spiderv2beta1.SpiderIPPool) {
		p.Spec.PodAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	})
	byNet := pool("net-bound", "172.110.5.0/24", "172.110.5.254", []string{"172.110.5.1"}, func(p *spiderv2beta1.SpiderIPPool) {
		p.Spec.MultusName = []string{"kube-system/other-net"}
	})
	byBareNet := pool("bare-net-bound", "172.110.7.0/24", "172.110.7.254", []string{"172.110.7.1"}, func(p *spiderv2beta1.SpiderIPPool) {
		p.Spec.MultusName = []string{"other-net"} // in Multus' namespace
	})
	byIPAMNet := pool("ipam-net-bound", "172.110.8.0/24", "172.110.8.254", []string{"172.110.8.1"}, func(p *spiderv2beta1.SpiderIPPool) {
		p.Spec.MultusName = []string{"kube-system/ipam-net"}
	})
	off := pool("off", "172.110.6.0/24", "172.110.6.254", []string{"172.110.6.1"}, func(p *spiderv2beta1.SpiderIPPool) { p.Spec.Disable = ptr(true) })
	v6 := pool("v6", "fd00:110::/64", "", []string{"fd00:110::10"})
	return NewWorld(Input{
		Clusters: []submarinerv1.Cluster{clusterA, clusterB}, LocalCluster: "cluster-a",
		Pools:         []spiderv2beta1.SpiderIPPool{fixedPool(), restricted, byLabel, byPod, byNet, byBareNet, byIPAMNet, off, v6},
		MultusConfigs: []spiderv2beta1.SpiderMultusConfig{seedConfig(), config("team", "team-net", []string{"cluster-a"}, "10.243.0.0/18", "172.111.0.0/16")},
		NADs: []nadv1.NetworkAttachmentDefinition{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "plain-nad"}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "other-net"}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "other-net"}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "ipam-net"},
				Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.0.0","plugins":[{"type":"macvlan","master":"ens256","ipam":{"type":"underlink-ipam"}}]}`}},
		},
		Namespaces: []corev1.Namespace{
			{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "team", Labels: map[string]string{"underlay": "yes"}}},
		},
	})
}

const (
	defNet   = "metadata.annotations[v1.multus-cni.io/default-network]"
	nets     = "metadata.annotations[k8s.v1.cni.cncf.io/networks]"
	poolAnno = "metadata.annotations[ipam.spidernet.io/ippool]"
	poolsAn  = "metadata.annotations[ipam.spidernet.io/ippools]"
)

func TestCheckPod(t *testing.T) {
	tests := []struct {
		name     string
		ns       string
		annos    map[string]string
		labels   map[string]string
		host     bool
		want     []string
		contains []string
	}{
		{name: "no annotations", ns: "default"},
		{name: "the seed's network", ns: "default", annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"}},
		{name: "a bare default-network name resolves in the Multus namespace", ns: "default", annos: map[string]string{nadv1.DefaultNetworkAnnotation: "macvlan-conf"}},
		{
			name: "the seed's typo gets the did-you-mean", ns: "default", annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"},
			want:     []string{"Deny pod-network-exists " + defNet},
			contains: []string{`metadata.annotations[v1.multus-cni.io/default-network]: Not found: "kube-system/macvlan-confg": network kube-system/macvlan-confg does not exist (no SpiderMultusConfig or NetworkAttachmentDefinition of that name); did you mean kube-system/macvlan-conf?`},
		},
		{
			name: "a name far from any network lists the existing ones", ns: "default", annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/sriov-net-x"},
			want: []string{"Deny pod-network-exists " + defNet}, contains: []string{"or name an existing network: default/other-net, default/plain-nad, kube-system/ipam-net, kube-system/macvlan-conf, kube-system/other-net, …"},
		},
		{
			name: "two default networks", ns: "default", annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf,kube-system/other-net"},
			want: []string{"Deny pod-network-exists " + defNet}, contains: []string{"names 2 networks; the default network is exactly one"},
		},
		{
			name: "networks: a comma list with interfaces, bare names in the pod's namespace", ns: "team",
			annos: map[string]string{nets: "team-net@net1, kube-system/other-net@net2"},
		},
		{
			// Multus would fail the sandbox: two networks on one interface, named from the pod's own values.
			name: "two networks claim one interface", ns: "team",
			annos:    map[string]string{nets: "team-net@storage0, kube-system/other-net@storage0"},
			want:     []string{"Deny pod-network-exists " + nets},
			contains: []string{"team/team-net and kube-system/other-net both claim the pod's interface storage0", "give kube-system/other-net an interface of its own (kube-system/other-net@<interface>)"},
		},
		{
			name: "a secondary network on the default network's interface", ns: "default",
			annos:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", nadv1.NetworksAnnotation: "kube-system/other-net@eth0"},
			want:     []string{"Deny pod-network-exists " + nets},
			contains: []string{"kube-system/macvlan-conf and kube-system/other-net both claim the pod's interface eth0"},
		},
		{
			// The position gives net2 to the second entry, which another entry named explicitly.
			name: "an explicit interface equal to a positional one", ns: "team",
			annos:    map[string]string{nets: "team-net@net2, kube-system/other-net"},
			want:     []string{"Deny pod-network-exists " + nets},
			contains: []string{"team/team-net and kube-system/other-net both claim the pod's interface net2"},
		},
		{
			name: "networks: a JSON list", ns: "default",
			annos: map[string]string{nets: `[{"name":"macvlan-conf","namespace":"kube-system","interface":"net1"},{"name":"plain-nad"}]`},
		},
		{
			name: "networks: a JSON list with a typo", ns: "default",
			annos: map[string]string{nets: `[{"name":"plain-nda"}]`},
			want:  []string{"Deny pod-network-exists " + nets}, contains: []string{"did you mean default/plain-nad?"},
		},
		{
			name: "networks: malformed JSON", ns: "default", annos: map[string]string{nets: `[{"name":`},
			want: []string{"Deny pod-network-exists " + nets}, contains: []string{"is not a JSON list"},
		},
		{
			name: "networks: a stray comma, too many slashes, a bad interface", ns: "default",
			annos: map[string]string{nets: "a/b/c"},
			want:  []string{"Deny pod-network-exists " + nets}, contains: []string{`"a/b/c": write namespace/name`},
		},
		{
			name: "networks: an empty entry", ns: "default", annos: map[string]string{nets: "plain-nad,,other"},
			want: []string{"Deny pod-network-exists " + nets}, contains: []string{"stray comma"},
		},
		{
			name: "networks: an interface name too long", ns: "default", annos: map[string]string{nets: "plain-nad@averyveryverylongname"},
			want: []string{"Deny pod-network-exists " + nets}, contains: []string{"at most 15"},
		},
		{
			name: "an invalid object name", ns: "default", annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/Macvlan_Conf"},
			want: []string{"Deny pod-network-exists " + defNet}, contains: []string{"is not a valid object name"},
		},
		{
			name: "hostNetwork pods ignore network annotations", ns: "default", host: true,
			annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			want:  []string{"Warn pod-network-exists spec.hostNetwork"}, contains: []string{"spec.hostNetwork: Invalid value: true: Multus ignores"},
		},
		{name: "a pool the namespace may use", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["cluster-a"]}`}},
		{
			name: "a pool that does not exist", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["cluster-aa"]}`},
			want: []string{"Deny pod-pools-allowed " + poolAnno}, contains: []string{"SpiderIPPool cluster-aa does not exist; did you mean cluster-a?"},
		},
		{
			name: "a pool limited to other namespaces", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["team-only"]}`},
			want: []string{"Deny pod-pools-allowed " + poolAnno}, contains: []string{`no IPv4 pool from pod annotation ipam.spidernet.io/ippool serves this pod on eth0: SpiderIPPool team-only: spec.namespaceName [team] does not include namespace "default"`},
		},
		{name: "a pool limited to this namespace", ns: "team", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["team-only"]}`}},
		{name: "namespaceAffinity matches", ns: "team", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["labelled"]}`}},
		{
			name: "namespaceAffinity does not match", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["labelled"]}`},
			want: []string{"Deny pod-pools-allowed " + poolAnno}, contains: []string{`SpiderIPPool labelled: spec.namespaceAffinity (underlay=yes) does not match the labels of namespace "default"`},
		},
		{
			name: "namespace labels unknown", ns: "elsewhere", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["labelled"]}`},
			want: []string{"Warn pod-pools-allowed " + poolAnno}, contains: []string{"the labels of namespace elsewhere are unknown"},
		},
		{name: "podAffinity matches", ns: "default", labels: map[string]string{"app": "db"}, annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["for-db"]}`}},
		{
			name: "podAffinity does not match", ns: "default", labels: map[string]string{"app": "web"}, annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["for-db"]}`},
			want: []string{"Deny pod-pools-allowed " + poolAnno}, contains: []string{`SpiderIPPool for-db: spec.podAffinity (app=db) does not match the labels of pod "default/p"`},
		},
		{
			name: "multusName does not list the pod's network", ns: "default",
			annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", spiderv2beta1.AnnoPodIPPool: `{"ipv4":["net-bound"]}`},
			want:  []string{"Deny pod-pools-allowed " + poolAnno}, contains: []string{"SpiderIPPool net-bound: spec.multusName [kube-system/other-net] does not include network kube-system/macvlan-conf of interface eth0"},
		},
		{
			name: "multusName lists the pod's network", ns: "default",
			annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/other-net", spiderv2beta1.AnnoPodIPPool: `{"ipv4":["net-bound"]}`},
		},
		{
			name: "an ippools item's pool must serve the network on its interface", ns: "default",
			annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", nadv1.NetworksAnnotation: "kube-system/other-net",
				spiderv2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["net-bound"]}]`},
			want:     []string{"Deny pod-pools-allowed " + poolsAn},
			contains: []string{"SpiderIPPool net-bound: spec.multusName [kube-system/other-net] does not include network kube-system/macvlan-conf of interface eth0"},
		},
		{
			name: "an ippools item on the interface of the pool's network", ns: "default",
			annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", nadv1.NetworksAnnotation: "kube-system/ipam-net",
				spiderv2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["cluster-a"]},{"interface":"net1","ipv4":["ipam-net-bound"]}]`},
		},
		{
			// As in Spiderpool: under ipam.spidernet.io/ippools an underlay interface without an item fails
			// its ADD ("interface net1 must be specified"), so admission refuses the pod.
			name: "ippools leaves out an interface that takes pool addresses", ns: "default",
			annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", nadv1.NetworksAnnotation: "kube-system/ipam-net",
				spiderv2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["cluster-a"]}]`},
			want: []string{"Deny pod-pools-allowed " + poolsAn}, contains: []string{"names no pools for interface net1", `add an item {"interface":"net1","ipv4":["<pool>"]}`},
		},
		{
			name: "ippools need no item for an interface whose network takes no pool", ns: "default",
			annos: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", nadv1.NetworksAnnotation: "kube-system/other-net",
				spiderv2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["cluster-a"]}]`},
		},
		{
			name: "a bare multusName is in Multus' namespace, as is a bare default network", ns: "default",
			annos: map[string]string{nadv1.DefaultNetworkAnnotation: "other-net", spiderv2beta1.AnnoPodIPPool: `{"ipv4":["bare-net-bound"]}`},
		},
		{
			name: "a bare multusName is not the pod namespace's network", ns: "default",
			annos: map[string]string{nadv1.NetworksAnnotation: "other-net", spiderv2beta1.AnnoPodIPPool: `{"ipv4":["bare-net-bound"]}`},
			want:  []string{"Deny pod-pools-allowed " + poolAnno}, contains: []string{"SpiderIPPool bare-net-bound: spec.multusName [other-net] limits it to those networks, and the pod's annotations attach no network on eth0"},
		},
		{
			name: "a disabled pool", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["off"]}`},
			want: []string{"Warn pod-pools-allowed " + poolAnno},
		},
		{
			name: "an IPv6 pool listed as IPv4", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["v6"]}`},
			want: []string{"Deny pod-pools-allowed " + poolAnno}, contains: []string{"ipv4[0]: SpiderIPPool v6: SpiderIPPool is IPv6, listed as IPv4; move it to the IPv6 list"},
		},
		{
			name: "pool annotation not JSON", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `cluster-a`},
			want: []string{"Deny pod-pools-allowed " + poolAnno}, contains: []string{`is not a JSON object: invalid character 'c' looking for beginning of value; write it like {"ipv4":["<pool>"],"ipv6":["<pool>"]}`},
		},
		{
			name: "pool annotation with a misspelt key names no pool", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4s":["cluster-a"]}`},
			want: []string{"Deny pod-pools-allowed " + poolAnno, "Warn pod-pools-allowed " + poolAnno}, contains: []string{"keys Spiderpool ignores", "names no ipv4 or ipv6 pools"},
		},
		{
			name: "pool annotation with an unknown key beside a pool", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["cluster-a"],"ipv6s":["v6"]}`},
			want: []string{"Warn pod-pools-allowed " + poolAnno}, contains: []string{"keys Spiderpool ignores"},
		},
		{
			name: "a named pool passed over for another of the list", ns: "default", annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["team-only","cluster-a"]}`},
			want: []string{"Warn pod-pools-allowed " + poolAnno}, contains: []string{"SpiderIPPool team-only is passed over for eth0", "takes its IPv4 address from cluster-a instead"},
		},
		{
			name: "ippools per interface", ns: "default",
			annos: map[string]string{spiderv2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["cluster-a"]},{"interface":"net1","ipv4":["team-only"],"cleangateway":true}]`},
			want:  []string{"Deny pod-pools-allowed " + poolsAn},
		},
		{
			name: "ippools: an interface listed twice", ns: "default",
			annos: map[string]string{spiderv2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["cluster-a"]},{"interface":"eth0","ipv4":["cluster-a"]}]`},
			want:  []string{"Deny pod-pools-allowed " + poolsAn}, contains: []string{`[1].interface is listed twice; list each interface once`},
		},
		{
			name: "both pool annotations: ippools wins", ns: "default",
			annos: map[string]string{spiderv2beta1.AnnoPodIPPool: `{"ipv4":["cluster-a"]}`, spiderv2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["cluster-a"]}]`},
			want:  []string{"Warn pod-pools-allowed " + poolAnno},
		},
	}
	w := podWorld()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := &metav1.ObjectMeta{Name: "p", Namespace: tt.ns, Annotations: tt.annos, Labels: tt.labels}
			// The networks annotation's key is a constant; the table's short key stands for it.
			if v, ok := meta.Annotations[nets]; ok {
				meta.Annotations = map[string]string{nadv1.NetworksAnnotation: v}
			}
			spec := &corev1.PodSpec{HostNetwork: tt.host}
			expectViolations(t, CheckPod(w, tt.ns, meta, spec, nil), tt.want, tt.contains...)
		})
	}
}

// Every workload kind is checked through its pod template, with the template's field path, and the
// violations name the workload.
func TestCheckWorkloadTemplates(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"}}}
	om := metav1.ObjectMeta{Name: "test-app", Namespace: "default"}
	objs := []struct {
		obj     runtime.Object
		subject string
		path    string
	}{
		{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "test-app", Namespace: "default", Annotations: tmpl.Annotations}}, "Pod/default/test-app", defNet},
		{&appsv1.Deployment{ObjectMeta: om, Spec: appsv1.DeploymentSpec{Template: tmpl}}, "Deployment/default/test-app", "spec.template." + defNet},
		{&appsv1.ReplicaSet{ObjectMeta: om, Spec: appsv1.ReplicaSetSpec{Template: tmpl}}, "ReplicaSet/default/test-app", "spec.template." + defNet},
		{&appsv1.StatefulSet{ObjectMeta: om, Spec: appsv1.StatefulSetSpec{Template: tmpl}}, "StatefulSet/default/test-app", "spec.template." + defNet},
		{&appsv1.DaemonSet{ObjectMeta: om, Spec: appsv1.DaemonSetSpec{Template: tmpl}}, "DaemonSet/default/test-app", "spec.template." + defNet},
		{&batchv1.Job{ObjectMeta: om, Spec: batchv1.JobSpec{Template: tmpl}}, "Job/default/test-app", "spec.template." + defNet},
		{&batchv1.CronJob{ObjectMeta: om, Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}},
			"CronJob/default/test-app", "spec.jobTemplate.spec.template." + defNet},
		{&corev1.ReplicationController{ObjectMeta: om, Spec: corev1.ReplicationControllerSpec{Template: &tmpl}}, "ReplicationController/default/test-app", "spec.template." + defNet},
		{&corev1.PodTemplate{ObjectMeta: om, Template: tmpl}, "PodTemplate/default/test-app", "template." + defNet},
	}
	w := podWorld()
	for _, o := range objs {
		vs, handled := Check(w, o.obj, nil)
		if !handled || len(vs) != 1 {
			t.Fatalf("%s: handled=%v violations=%v", o.subject, handled, vs)
		}
		if vs[0].Subject != o.subject || vs[0].Field.String() != o.path || !strings.Contains(vs[0].String(), "did you mean kube-system/macvlan-conf?") {
			t.Errorf("%s: got subject %q field %q: %s", o.subject, vs[0].Subject, vs[0].Field, vs[0])
		}
	}
	if _, handled := Check(w, &corev1.Service{}, nil); handled {
		t.Error("a Service is not checked")
	}
	if _, ok := PodTemplateOf(&corev1.ReplicationController{}); ok {
		t.Error("a ReplicationController without a template has no pod")
	}
	// A template path prefixes the pod's own field paths.
	vs := CheckPod(w, "default", &tmpl.ObjectMeta, &tmpl.Spec, field.NewPath("spec", "template"))
	if len(vs) != 1 || vs[0].Field.String() != "spec.template."+defNet {
		t.Errorf("CheckPod with a path: %v", vs)
	}
}
