package rotation

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/underlink/underlink/certs/pki"
)

var (
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hosts  = []string{"underlink-webhook.underlink-system.svc", "underlink-webhook.underlink-system.svc.cluster.local"}
	policy = Policy{Hosts: hosts, Lifetime: 2 * time.Minute, Propagation: 5 * time.Second}
)

// publication is a caBundle the leader patched into the webhook configurations at a time.
type publication struct {
	at     time.Time
	bundle []*x509.Certificate
}

// TestRotationNeverServesACertificateTheApiserverDoesNotTrust drives the leader's loop second by second
// over ten lifetimes, with an apiserver that sees each caBundle patch only after the full propagation
// delay, and replicas that serve each new Secret at once. At every second after the first caBundle has
// propagated, the served certificate must verify against the bundle the apiserver holds.
func TestRotationNeverServesACertificateTheApiserverDoesNotTrust(t *testing.T) {
	var (
		s         = Parse(nil, nil)
		pubs      []publication
		reissues  int
		introduce int
		maxBundle int
	)
	trusted := func() bool {
		if len(pubs) == 0 {
			return false
		}
		for _, c := range pubs[len(pubs)-1].bundle {
			if c.Equal(s.Signer.Cert) {
				return true
			}
		}
		return false
	}
	apiserverView := func(now time.Time) []*x509.Certificate {
		var b []*x509.Certificate
		for _, p := range pubs {
			if !p.at.Add(policy.Propagation).After(now) {
				b = p.bundle
			}
		}
		return b
	}
	end := t0.Add(10 * policy.Lifetime)
	for now := t0; now.Before(end); now = now.Add(time.Second) {
		for steps := 0; ; steps++ {
			if steps > 3 {
				t.Fatalf("%v: the leader does not settle: still acting after %d steps", now.Sub(t0), steps)
			}
			d := Decide(s, s.Err == nil && trusted(), now, policy)
			if d.Action == Keep {
				if !d.Next.After(now) {
					t.Fatalf("%v: Keep with Next %v not in the future", now.Sub(t0), d.Next.Sub(t0))
				}
				break
			}
			next, err := Apply(d, s, now, policy)
			if err != nil {
				t.Fatal(err)
			}
			switch d.Action {
			case Reissue:
				reissues++
			case IntroduceCA:
				introduce++
			case Create:
				if now != t0 {
					t.Fatalf("%v: unexpected Create (%s) after the first", now.Sub(t0), d.Reason)
				}
			}
			// Round-trip through the Secret's bytes, as the manager does.
			data, ann := next.Encode()
			s = Parse(data, ann)
			if s.Err != nil {
				t.Fatalf("%v: state after %s does not parse: %v", now.Sub(t0), d.Action, s.Err)
			}
			pubs = append(pubs, publication{at: now, bundle: s.Bundle})
			maxBundle = max(maxBundle, len(s.Bundle))
		}
		if now.Before(t0.Add(policy.Propagation)) {
			continue // the first install has nothing trusted yet
		}
		roots := x509.NewCertPool()
		for _, c := range apiserverView(now) {
			roots.AddCert(c)
		}
		if _, err := s.Serving.Cert.Verify(x509.VerifyOptions{DNSName: hosts[0], Roots: roots, CurrentTime: now}); err != nil {
			t.Fatalf("%v: the apiserver would reject the served certificate (generation %d): %v", now.Sub(t0), s.Generation, err)
		}
	}
	// 1200 s at a renewal every ~80 s (+ propagation) gives 14 rotations.
	if reissues < 13 || introduce != reissues {
		t.Errorf("%d CAs introduced and %d serving certificates reissued over ten lifetimes, want about 14 of each", introduce, reissues)
	}
	if maxBundle > 2 {
		t.Errorf("bundle grew to %d CAs; expired CAs must be pruned", maxBundle)
	}
	if s.Generation != reissues+1 {
		t.Errorf("generation %d, want %d (create + reissues)", s.Generation, reissues+1)
	}
}

func TestDecide(t *testing.T) {
	fresh := mustApply(t, Decision{Action: Create}, Parse(nil, nil), t0)
	introduced := mustApply(t, Decision{Action: IntroduceCA}, fresh, t0.Add(80*time.Second))
	otherHosts := policy
	otherHosts.Hosts = []string{"renamed.underlink-system.svc"}

	for _, tc := range []struct {
		name       string
		s          State
		trusted    bool
		at         time.Duration
		p          Policy
		want       Action
		wantReason string
		wantNext   time.Duration
	}{
		{name: "missing secret", s: Parse(nil, nil), want: Create, wantReason: "does not exist"},
		{name: "fresh", s: fresh, trusted: true, at: time.Second, want: Keep, wantNext: pki.RenewalTime(fresh.Signer.Cert, policy.Lifetime).Sub(t0)},
		{name: "fresh, caBundle not yet patched: nothing to wait for", s: fresh, at: time.Second, want: Keep, wantNext: pki.RenewalTime(fresh.Signer.Cert, policy.Lifetime).Sub(t0)},
		{name: "at two thirds", s: fresh, trusted: true, at: 80 * time.Second, want: IntroduceCA, wantReason: "two thirds"},
		{name: "new CA not in every caBundle", s: introduced, trusted: false, at: 90 * time.Second, want: Keep, wantReason: "waiting", wantNext: 95 * time.Second},
		{name: "new CA trusted, propagation not over", s: introduced, trusted: true, at: 82 * time.Second, want: Keep, wantNext: 85 * time.Second},
		{name: "new CA trusted and propagated", s: introduced, trusted: true, at: 85 * time.Second, want: Reissue, wantReason: "every webhook"},
		{name: "serving certificate expired", s: fresh, trusted: true, at: 120 * time.Second, want: Create, wantReason: "signing CA expired"},
		{name: "hosts changed", s: fresh, trusted: true, at: time.Second, p: otherHosts, want: Reissue, wantReason: "want [renamed.underlink-system.svc]"},
		{name: "lifetime shortened", s: fresh, trusted: true, at: 30 * time.Second, p: Policy{Hosts: hosts, Lifetime: 30 * time.Second}, want: IntroduceCA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy
			if tc.p.Hosts != nil {
				p = tc.p
			}
			d := Decide(tc.s, tc.trusted, t0.Add(tc.at), p)
			if d.Action != tc.want || !strings.Contains(d.Reason, tc.wantReason) {
				t.Fatalf("got %s (%s), want %s (%q)", d.Action, d.Reason, tc.want, tc.wantReason)
			}
			if tc.wantNext != 0 && !d.Next.Equal(t0.Add(tc.wantNext)) {
				t.Errorf("next at %v, want %v", d.Next.Sub(t0), tc.wantNext)
			}
		})
	}
}

func TestExpiredServingCertificateIsReissuedWithoutWaiting(t *testing.T) {
	ca, _ := pki.NewCA("ca", t0, time.Hour)
	short, _ := ca.IssueServing(hosts, t0, time.Minute)
	s := State{Bundle: []*x509.Certificate{ca.Cert}, Signer: ca, Serving: short}
	if d := Decide(s, false, t0.Add(2*time.Minute), policy); d.Action != Reissue {
		t.Errorf("got %s (%s), want reissue", d.Action, d.Reason)
	}
}

func TestExpiredOldCAIsPruned(t *testing.T) {
	s := mustApply(t, Decision{Action: Create}, Parse(nil, nil), t0)
	s = mustApply(t, Decision{Action: IntroduceCA}, s, t0.Add(80*time.Second))
	s = mustApply(t, Decision{Action: Reissue}, s, t0.Add(85*time.Second))
	if len(s.Bundle) != 2 {
		t.Fatalf("bundle has %d CAs after a rotation, want the new and the old", len(s.Bundle))
	}
	d := Decide(s, true, t0.Add(90*time.Second), policy)
	if d.Action != Keep || !d.Next.Equal(s.Bundle[1].NotAfter) {
		t.Fatalf("got %s next %v, want keep until the old CA expires at %v", d.Action, d.Next, s.Bundle[1].NotAfter)
	}
	d = Decide(s, true, s.Bundle[1].NotAfter, policy)
	if d.Action != Prune {
		t.Fatalf("got %s, want prune", d.Action)
	}
	s = mustApply(t, d, s, s.Bundle[1].NotAfter)
	if len(s.Bundle) != 1 || !s.Bundle[0].Equal(s.Signer.Cert) {
		t.Errorf("after prune the bundle is %d CAs, want only the signer", len(s.Bundle))
	}
}

func TestCorruptSecretIsReplaced(t *testing.T) {
	good := mustApply(t, Decision{Action: Create}, Parse(nil, nil), t0)
	other := mustApply(t, Decision{Action: Create}, Parse(nil, nil), t0)
	data, ann := good.Encode()
	otherData, _ := other.Encode()
	// with returns the good data with key/value pairs replaced (a nil value deletes the key).
	with := func(kv ...any) map[string][]byte {
		d := map[string][]byte{}
		for k, v := range data {
			d[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			k, v := kv[i].(string), kv[i+1].([]byte)
			if v == nil {
				delete(d, k)
			} else {
				d[k] = v
			}
		}
		return d
	}
	for _, tc := range []struct {
		name, wantErr string
		data          map[string][]byte
	}{
		{"garbage ca.crt", "ca.crt: not PEM", with(KeyCABundle, []byte("garbage"))},
		{"missing ca.key", "ca.crt/ca.key", with(KeyCAKey, []byte(nil))},
		{"missing tls.crt", "tls.crt/tls.key", with(KeyCert, []byte(nil))},
		{"tls.key of another pair", "does not match", with(KeyKey, otherData[KeyKey])},
		{"serving certificate from a foreign CA", "not signed by any CA", with(KeyCert, otherData[KeyCert], KeyKey, otherData[KeyKey])},
		{"empty secret", "ca.crt", map[string][]byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Parse(tc.data, ann)
			if s.Err == nil || !strings.Contains(s.Err.Error(), tc.wantErr) {
				t.Fatalf("parse: got %v, want an error containing %q", s.Err, tc.wantErr)
			}
			d := Decide(s, true, t0.Add(time.Second), policy)
			if d.Action != Create {
				t.Fatalf("got %s, want create", d.Action)
			}
			if _, err := Apply(d, s, t0.Add(time.Second), policy); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPolicyValidation(t *testing.T) {
	for _, tc := range []struct {
		p       Policy
		wantErr string
	}{
		{Policy{Lifetime: time.Hour}, "no hosts"},
		{Policy{Hosts: hosts}, "lifetime 0s must be positive"},
		{Policy{Hosts: hosts, Lifetime: time.Minute, Propagation: 20 * time.Second}, "a sixth of the lifetime"},
		{policy, ""},
	} {
		err := tc.p.Validate()
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: got %v, want %q", tc.p, err, tc.wantErr)
		}
	}
}

func mustApply(t *testing.T, d Decision, s State, now time.Time) State {
	t.Helper()
	out, err := Apply(d, s, now, policy)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
