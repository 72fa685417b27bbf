//go:build integration

package chart

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/certs/rotation"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/webhook/registration"
)

// chartBinaries builds the binaries whose flags the chart passes.
func chartBinaries(t *testing.T) string {
	t.Helper()
	return bed.Commands(t, "underlink-webhook", "underlink-agent", "underlink-cni-install")
}

// chartDefinedFlags runs a Go binary with -h and returns the flags its usage lists.
func chartDefinedFlags(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits 0 or 2 depending on the flag set's policy
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([A-Za-z0-9][-A-Za-z0-9_.]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 3 {
		t.Fatalf("%s -h lists no flags:\n%s", bin, out)
	}
	return flags
}

// TestChartPassesOnlyFlagsTheBinariesDefine renders every container of the webhook and the agent in both
// certificate modes and checks each flag against the binary's own usage, so a renamed flag fails here
// rather than as a CrashLoopBackOff.
func TestChartPassesOnlyFlagsTheBinariesDefine(t *testing.T) {
	bins := chartBinaries(t)
	defined := map[string]map[string]bool{}
	for _, b := range []string{"underlink-webhook", "underlink-agent", "underlink-cni-install"} {
		defined[b] = chartDefinedFlags(t, filepath.Join(bins, b))
	}
	for mode, flags := range chartCertModes {
		objs := chartObjects(t, renderChart(t, append(flags, "--set", "agent.nics={ens224}", "--set", "webhook.schedulerName=underlink-scheduler",
			"--set", "submariner.localCluster=cluster-a", "--set", "submariner.staticClusters[0].id=cluster-b",
			"--set", "submariner.staticClusters[0].clusterCIDR[0]=172.111.0.0/16")...))
		check := func(binary string, c corev1.Container) {
			for _, a := range c.Args {
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !defined[binary][name] {
					t.Errorf("%s: container %s passes --%s, which %s does not define", mode, c.Name, name, binary)
				}
			}
		}
		var webhook appsv1.Deployment
		chartDecodeStrict(t, chartFind(t, objs, "Deployment", "underlink-webhook"), &webhook)
		check("underlink-webhook", webhook.Spec.Template.Spec.Containers[0])
		var agent appsv1.DaemonSet
		chartDecodeStrict(t, chartFind(t, objs, "DaemonSet", "underlink-agent"), &agent)
		check("underlink-agent", agent.Spec.Template.Spec.Containers[0])
		check("underlink-cni-install", agent.Spec.Template.Spec.InitContainers[0])
	}
}

// TestChartWebhookAndAgentRunUnderTheChartRBAC runs the real underlink-webhook and underlink-agent with the
// arguments the chart renders, authenticated with tokens of the chart's ServiceAccounts (so they hold
// exactly the chart's RBAC), against a real apiserver that has the chart's webhook configurations. The
// webhook must become ready, create and serve its self-signed certificate for the chart's Service and put
// its CA into every webhook; the agent, with no capability at all as the chart runs it, must become ready,
// label its node and win its garbage collection Lease; neither may meet a forbidden request. Only listen addresses (loopback here) and the agent's socket (a temporary
// directory, not the host's /run/underlink) differ from the chart's.
func TestChartWebhookAndAgentRunUnderTheChartRBAC(t *testing.T) {
	bins := chartBinaries(t)
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	kc := env.Kubeconfig(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	chartMustTool(t, "kubectl", "--kubeconfig", kc, "create", "namespace", chartNamespace)
	rendered := chartObjects(t, renderChart(t, chartCertModes["self-signed"]...))
	chartApplyRBAC(t, kc, rendered)
	var webhookConfigs []*unstructured.Unstructured
	for _, o := range rendered {
		// The admission objects, the agent's ValidatingAdmissionPolicy on its node identity among them.
		if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") || strings.Contains(o.GetKind(), "AdmissionPolicy") {
			webhookConfigs = append(webhookConfigs, o)
		}
	}
	chartApplyObjects(t, kc, webhookConfigs)

	t.Run("webhook", func(t *testing.T) {
		// A network for the fast-path controller to list into the validating webhooks' condition.
		nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "chart-net"},
			Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.1.0","name":"chart-net","type":"macvlan","master":"ens224"}`}}
		if err := env.Client.Create(ctx, nad); err != nil {
			t.Fatal(err)
		}
		var dep appsv1.Deployment
		chartDecodeStrict(t, chartFind(t, rendered, "Deployment", "underlink-webhook"), &dep)
		port, metrics, probes := chartFreePort(t), chartFreePort(t), chartFreePort(t)
		args := append(dep.Spec.Template.Spec.Containers[0].Args,
			"--webhook-host=127.0.0.1", "--webhook-port="+strconv.Itoa(port),
			"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(metrics), "--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probes))
		logs := chartStartAs(t, env, cs, "underlink-webhook", filepath.Join(bins, "underlink-webhook"), args,
			"POD_NAMESPACE="+chartNamespace, "POD_NAME=underlink-webhook-0")
		chartWaitReady(t, probes, logs)

		s, err := cs.CoreV1().Secrets(chartNamespace).Get(ctx, "underlink-webhook-tls", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("certificate Secret: %v\n%s", err, logs)
		}
		bundle := s.Data[rotation.KeyCABundle]
		chartWaitFor(t, "the Secret's CA in every validating webhook, with the fast-path condition", logs, func() error {
			vw, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, registration.ConfigurationName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, w := range vw.Webhooks {
				if !bytes.Equal(w.ClientConfig.CABundle, bundle) {
					return fmt.Errorf("validating %s: caBundle not the Secret's", w.Name)
				}
				for _, mc := range w.MatchConditions {
					if mc.Name == registration.FastPathConditionName && !strings.Contains(mc.Expression, "'kube-system/chart-net'") {
						return fmt.Errorf("validating %s: fast-path condition %q does not list kube-system/chart-net", w.Name, mc.Expression)
					}
				}
			}
			return nil
		})
		// The apiserver calls https://underlink-webhook.underlink-system.svc:443 with that caBundle.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(bundle)
		conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			&tls.Config{RootCAs: pool, ServerName: "underlink-webhook." + chartNamespace + ".svc", MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("TLS as the apiserver would call the chart's Service: %v", err)
		}
		conn.Close()
		chartNoForbidden(t, logs)
		chartMetricsNeedTheReaderRole(t, cs, metrics)
	})

	t.Run("agent", func(t *testing.T) {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "chart-node-1"}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var ds appsv1.DaemonSet
		chartDecodeStrict(t, chartFind(t, rendered, "DaemonSet", "underlink-agent"), &ds)
		metrics, probes := chartFreePort(t), chartFreePort(t)
		var args []string
		for _, a := range ds.Spec.Template.Spec.Containers[0].Args {
			args = append(args, strings.ReplaceAll(a, "$(NODE_NAME)", node.Name)) // kubelet expands it in a pod
		}
		// The sockets in temporary directories: the host's Spiderpool socket is not the test's to take.
		args = append(args, "--nics=ens224", "--socket="+filepath.Join(t.TempDir(), "agent.sock"), "--spiderpool-socket="+filepath.Join(t.TempDir(), "spiderpool.sock"),
			"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(metrics), "--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probes))
		// As in the chart: uid 0 without a single capability (setpriv empties every capability set).
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Fatalf("setpriv (util-linux) is needed to run the agent without capabilities: %v", err)
		}
		args = append([]string{"--bounding-set", "-all", "--inh-caps", "-all", "--ambient-caps", "-all", "--no-new-privs", "--", filepath.Join(bins, "underlink-agent")}, args...)
		// With the token the kubelet mounts into the agent's pod on the node: the chart's policy, once in
		// force, lets the agent label only the node its token is bound to.
		chartWaitAgentPolicy(t, cs, env.Config, node.Name)
		token := chartToken(t, cs, "underlink-agent", chartAgentPodOn(t, cs, node.Name))
		logs := chartStartWithToken(t, env, "underlink-agent", token, setpriv, args,
			"NODE_NAME="+node.Name, "POD_NAMESPACE="+chartNamespace)
		chartWaitReady(t, probes, logs)
		chartWaitFor(t, "the node labelled and the garbage collection Lease held", logs, func() error {
			n, err := cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if _, ok := n.Labels["underlay.underlink.io/ens224"]; !ok {
				return fmt.Errorf("node labels %v lack underlay.underlink.io/ens224", n.Labels)
			}
			l, err := cs.CoordinationV1().Leases(chartNamespace).Get(ctx, "underlink-agent-gc", metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("garbage collection Lease: %w", err)
			}
			if l.Spec.HolderIdentity == nil || !strings.HasPrefix(*l.Spec.HolderIdentity, node.Name) {
				return fmt.Errorf("garbage collection Lease held by %v", l.Spec.HolderIdentity)
			}
			return nil
		})
		chartNoForbidden(t, logs)
	})
}

// chartLog collects a process's output.
type chartLog struct{ chartSyncBuffer }

// chartStartAs runs bin with args as the ServiceAccount sa of chartNamespace: a kubeconfig with a token from the
// TokenRequest API, nothing else. The process is stopped when the test ends.
func chartStartAs(t *testing.T, env *controlplane.Env, cs kubernetes.Interface, sa, bin string, args []string, envVars ...string) *chartLog {
	t.Helper()
	return chartStartWithToken(t, env, sa, chartToken(t, cs, sa, nil), bin, args, envVars...)
}

// chartToken returns a token of the ServiceAccount sa of chartNamespace from the TokenRequest API, bound to
// pod when pod is not nil, as the kubelet mounts it into a pod.
func chartToken(t *testing.T, cs kubernetes.Interface, sa string, pod *corev1.Pod) string {
	t.Helper()
	spec := authenticationv1.TokenRequestSpec{ExpirationSeconds: chartInt64(3600)}
	if pod != nil {
		spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tok, err := cs.CoreV1().ServiceAccounts(chartNamespace).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of %s: %v", sa, err)
	}
	return tok.Status.Token
}

// chartStartWithToken runs bin with args and a kubeconfig that holds token alone.
func chartStartWithToken(t *testing.T, env *controlplane.Env, sa, token, bin string, args []string, envVars ...string) *chartLog {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: sa}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+path), envVars...)
	logs := &chartLog{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), logs.String())
		}
	})
	return logs
}

// chartMetricsNeedTheReaderRole scrapes the webhook's metrics as Prometheus does, over HTTPS with a
// ServiceAccount token: without a token the scrape is refused, with the token of a ServiceAccount that is not
// bound to the chart's metrics-reader ClusterRole it is forbidden, and with one that is bound it is served,
// over HTTP/1.1 although the client offers HTTP/2.
func chartMetricsNeedTheReaderRole(t *testing.T, cs kubernetes.Interface, port int) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{"prometheus", "stranger"} {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: chartNamespace, Name: name}}
		if _, err := cs.CoreV1().ServiceAccounts(chartNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-underlink-metrics"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "underlink-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: chartNamespace, Name: "prometheus"}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		who, token string
		want       int
	}{{"no token", "", http.StatusUnauthorized}, {"an unbound ServiceAccount", chartToken(t, cs, "stranger", nil), http.StatusForbidden}} {
		if got, _ := chartScrape(t, port, tc.token); got != tc.want {
			t.Errorf("metrics scrape with %s: %d, want %d", tc.who, got, tc.want)
		}
	}
	// The webhook caches a denial for 30 s: a scrape that met the binding before the apiserver's RBAC
	// saw it is retried past that.
	token := chartToken(t, cs, "prometheus", nil)
	poll.UntilEvery(t, 45*time.Second, 500*time.Millisecond, "a scrape bound to the metrics-reader role", func() (bool, string) {
		code, proto := chartScrape(t, port, token)
		if code == http.StatusOK && proto != "HTTP/1.1" {
			t.Errorf("metrics served over %s; HTTP/2 must be off", proto)
		}
		return code == http.StatusOK, fmt.Sprintf("status %d", code)
	})
}

// chartScrape GETs /metrics from 127.0.0.1:port over TLS, offering HTTP/2, and returns the status and the
// protocol spoken. The certificate is controller-runtime's own, which Prometheus skips verifying too.
func chartScrape(t *testing.T, port int, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(port)+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true} //nolint:gosec // see above
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Proto
}

func chartWaitReady(t *testing.T, probePort int, logs *chartLog) {
	t.Helper()
	chartWaitFor(t, "/readyz", logs, func() error {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(probePort) + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
}

// chartWaitFor waits until f succeeds; a failure shows f's last error and the process's output.
func chartWaitFor(t *testing.T, what string, logs *chartLog, f func() error) {
	t.Helper()
	poll.UntilEvery(t, 60*time.Second, 250*time.Millisecond, what, func() (bool, string) {
		if err := f(); err != nil {
			return false, fmt.Sprintf("%v\noutput:\n%s", err, logs.String())
		}
		return true, ""
	})
}

func chartNoForbidden(t *testing.T, logs *chartLog) {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(strings.ToLower(line), "forbidden") {
			t.Errorf("a request was forbidden under the chart's RBAC: %s", line)
		}
	}
}

func chartFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func chartInt64(v int64) *int64 { return &v }
