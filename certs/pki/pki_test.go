package pki

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestServingCertificateVerifiesForEveryHostAgainstItsCA(t *testing.T) {
	ca, err := NewCA("test-ca", t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"underlink-webhook.underlink-system.svc", "underlink-webhook.underlink-system.svc.cluster.local", "127.0.0.1"}
	kp, err := ca.IssueServing(hosts, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, h := range hosts {
		if _, err := kp.Cert.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, CurrentTime: t0.Add(time.Minute)}); err != nil {
			t.Errorf("verify for %s: %v", h, err)
		}
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{DNSName: "other.svc", Roots: roots, CurrentTime: t0}); err == nil {
		t.Error("certificate verified for a host it was not issued for")
	}
	if !SameHosts(kp.Cert, []string{"127.0.0.1", hosts[1], hosts[0]}) || SameHosts(kp.Cert, hosts[:2]) {
		t.Error("SameHosts does not compare the SAN sets")
	}
	if kp.Cert.IsCA || len(kp.Cert.ExtKeyUsage) != 1 || kp.Cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("serving certificate must be a non-CA serverAuth leaf: IsCA=%v EKU=%v", kp.Cert.IsCA, kp.Cert.ExtKeyUsage)
	}
	// Round trip through the PEM the Secret stores.
	back, err := ParseKeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil || !back.Cert.Equal(kp.Cert) {
		t.Fatalf("ParseKeyPair round trip: %v", err)
	}
	caBack, err := ParseCA(ca.CertPEM, ca.KeyPEM)
	if err != nil || !caBack.Cert.Equal(ca.Cert) {
		t.Fatalf("ParseCA round trip: %v", err)
	}
}

func TestServingCertificateNeverOutlivesItsCA(t *testing.T) {
	ca, err := NewCA("test-ca", t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueServing([]string{"a.svc"}, t0.Add(50*time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !kp.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("serving NotAfter %v, want the CA's %v", kp.Cert.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := ca.IssueServing([]string{"a.svc"}, t0.Add(time.Hour), time.Hour); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("issuing from an expired CA: got %v, want an expiry error", err)
	}
}

func TestRenewalTimeIsTwoThirdsOfValidity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		policy   time.Duration
		want     time.Duration // after NotBefore
	}{
		{"two minutes", 2 * time.Minute, 2 * time.Minute, (2*time.Minute + Backdate(2*time.Minute)) * 2 / 3},
		{"ninety days", 90 * 24 * time.Hour, 90 * 24 * time.Hour, (90*24*time.Hour + MaxBackdate) * 2 / 3},
		{"policy shortened below the certificate's validity", 90 * 24 * time.Hour, 3 * time.Minute, (3*time.Minute + Backdate(3*time.Minute)) * 2 / 3},
		{"policy lengthened: the certificate's own validity counts", 3 * time.Minute, 90 * 24 * time.Hour, (3*time.Minute + Backdate(3*time.Minute)) * 2 / 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, err := NewCA("ca", t0, tc.lifetime)
			if err != nil {
				t.Fatal(err)
			}
			if got := RenewalTime(ca.Cert, tc.policy).Sub(ca.Cert.NotBefore); got != tc.want {
				t.Errorf("renewal %v after NotBefore, want %v", got, tc.want)
			}
		})
	}
}

func TestCorruptInputIsAnErrorNamingWhatIsWrong(t *testing.T) {
	ca, _ := NewCA("ca", t0, time.Hour)
	other, _ := NewCA("other", t0, time.Hour)
	kp, _ := ca.IssueServing([]string{"a.svc"}, t0, time.Hour)
	for _, tc := range []struct {
		name    string
		parse   func() error
		wantErr string
	}{
		{"garbage certificate", func() error { _, err := ParseKeyPair([]byte("garbage"), kp.KeyPEM); return err }, "not PEM"},
		{"truncated bundle", func() error {
			_, err := ParseCertificates(append(ca.CertPEM, []byte("-----BEGIN CERT")...))
			return err
		}, "not PEM"},
		{"empty bundle", func() error { _, err := ParseCertificates(nil); return err }, "no certificate"},
		{"key in the certificate slot", func() error { _, err := ParseCertificates(kp.KeyPEM); return err }, `unexpected PEM block "PRIVATE KEY"`},
		{"serving key of another pair", func() error { _, err := ParseKeyPair(kp.CertPEM, other.KeyPEM); return err }, "does not match"},
		{"leaf as CA", func() error { _, err := ParseCA(kp.CertPEM, kp.KeyPEM); return err }, "is not a CA"},
		{"CA with another CA's key", func() error { _, err := ParseCA(ca.CertPEM, other.KeyPEM); return err }, "does not match"},
		{"garbage key", func() error {
			_, err := ParseCA(ca.CertPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
			return err
		}, "parse PRIVATE KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if SignedBy(kp.Cert, other.Cert) || !SignedBy(kp.Cert, ca.Cert) {
		t.Error("SignedBy does not check the issuer's signature")
	}
}
