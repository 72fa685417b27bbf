package e2e

import (
	"strings"
	"testing"

	"github.com/underlink/underlink/test"
)

func TestCorrectionsApplyToTheSeed(t *testing.T) {
	pool, err := test.SeedManifest("cluster-a-ippool.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := Correct(pool, PoolCorrection("172.110.1.0/24", "172.110.0.0/16"))
	if err != nil || !strings.Contains(string(fixed), "subnet: 172.110.0.0/16") || strings.Contains(string(fixed), "172.110.1.0/24") {
		t.Errorf("pool correction: %v\n%s", err, fixed)
	}
	dep, err := test.SeedManifest("deployment-and-service.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fixed, err = Correct(dep, DeploymentCorrections("ghcr.io/underlink/underlink-testapp:0.1.0")...)
	if err != nil || !strings.Contains(string(fixed), "default-network: kube-system/macvlan-conf\n") || !strings.Contains(string(fixed), "image: ghcr.io/underlink/underlink-testapp:0.1.0") {
		t.Errorf("deployment correction: %v\n%s", err, fixed)
	}
	if _, err := Correct(pool, Correction{Old: "subnet: 10.0.0.0/8"}); err == nil {
		t.Error("a correction of a line the seed lacks succeeded")
	}
	d := Diff(DeploymentCorrections("img")...)
	if !strings.Contains(d, "-kube-system/macvlan-confg\n+kube-system/macvlan-conf\n") {
		t.Errorf("diff:\n%s", d)
	}
}

func TestHijackShape(t *testing.T) {
	// The seed's own `ip route` (busybox format), plus the pool's default route.
	seed := `default via 172.110.0.1 dev eth0
10.7.168.73 dev veth0  src 172.110.168.131
10.233.0.0/18 via 10.7.168.73 dev veth0  src 172.110.168.131
10.243.0.0/18 via 10.7.168.73 dev veth0  src 172.110.168.131
172.110.1.0/24 dev eth0  src 172.110.168.131
172.111.0.0/16 via 10.7.168.73 dev veth0  src 172.110.168.131
`
	hijacked := []string{"10.243.0.0/18", "172.111.0.0/16", "10.233.0.0/18"}
	if p := HijackProblems(ParseRoutes(seed), hijacked); len(p) != 0 {
		t.Errorf("the seed's routes: %v", p)
	}
	broken := strings.Replace(seed, "172.111.0.0/16 via 10.7.168.73 dev veth0", "172.111.0.0/16 via 172.110.0.1 dev eth0", 1)
	broken = strings.Replace(broken, "default via 172.110.0.1 dev eth0\n", "", 1)
	p := HijackProblems(ParseRoutes(broken), hijacked)
	if strings.Join(p, "; ") != "172.111.0.0/16 goes out eth0, not veth0; no default route on eth0 (the pool's gateway)" {
		t.Errorf("problems: %v", p)
	}
	if p := HijackProblems(nil, []string{"10.243.0.0/18"}); len(p) != 2 || p[0] != "no route to 10.243.0.0/18" {
		t.Errorf("no routes: %v", p)
	}
}

func TestHTTPStatusAndRange(t *testing.T) {
	if s := HTTPStatus("HTTP/1.1 200 OK\r\nServer: underlink-testapp\r\n\r\n"); s != "HTTP/1.1 200 OK" {
		t.Errorf("status %q", s)
	}
	if HTTPStatus("curl: connection refused") != "" {
		t.Error("status from an error")
	}
	for ip, want := range map[string]bool{"172.110.1.1": true, "172.110.1.200": true, "172.110.1.201": false, "172.110.0.1": false, "x": false} {
		if InRange(ip, "172.110.1.1-172.110.1.200") != want {
			t.Errorf("InRange(%s) != %v", ip, want)
		}
	}
}
