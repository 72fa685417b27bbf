// Package rotation decides, from what the webhook's certificate Secret holds and the time, what the leader
// does next: create a CA and serving certificate, introduce a new CA into the trust bundle, reissue the
// serving certificate from it once the webhooks trust it, prune expired CAs, or wait. It is pure: the
// Secret's data comes in as bytes and goes out as bytes, and the clock is an argument.
//
// A rotation has two steps so no admission request ever meets a certificate its caller does not trust:
// first the new CA joins the bundle (caBundle = new CA + old CA) while the old serving certificate keeps
// serving; only when every webhook configuration carries the new CA, and Policy.Propagation has passed
// for apiservers to see it, is the serving certificate reissued from the new CA. The old CA stays in the
// bundle until it expires.
package rotation

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/underlink/underlink/certs/pki"
)

// Keys of the Secret (type kubernetes.io/tls) and its annotations.
const (
	// KeyCABundle holds the CAs clients should trust, PEM, the signing CA first; it is the caBundle.
	KeyCABundle = "ca.crt"
	// KeyCAKey is the signing CA's private key.
	KeyCAKey = "ca.key"
	// KeyCert and KeyKey are the serving certificate and key.
	KeyCert = "tls.crt"
	KeyKey  = "tls.key"

	// AnnotationPublishedAt records when the signing CA entered the bundle (RFC 3339).
	AnnotationPublishedAt = "certs.underlink.io/ca-published-at"
	// AnnotationGeneration counts serving certificates issued into this Secret.
	AnnotationGeneration = "certs.underlink.io/serving-generation"
)

// Action is what the leader does to the Secret.
type Action string

// The actions, in the order Decide considers them.
const (
	// Create replaces a missing or unusable Secret with a fresh CA and serving certificate.
	Create Action = "create"
	// Reissue signs a new serving certificate with the signing CA.
	Reissue Action = "reissue"
	// IntroduceCA adds a new signing CA to the bundle; the serving certificate stays until it is trusted.
	IntroduceCA Action = "introduce-ca"
	// Prune drops expired CAs from the bundle.
	Prune Action = "prune"
	// Keep changes nothing until Decision.Next.
	Keep Action = "keep"
)

// Policy is what the certificates should look like.
type Policy struct {
	// Hosts are the serving certificate's SANs: the Service's DNS names (IP literals become IP SANs).
	Hosts []string
	// Lifetime of every CA and serving certificate; each is renewed after two thirds of it.
	Lifetime time.Duration
	// Propagation is how long a new CA sits in the webhook configurations before a certificate it signed
	// is served, so every apiserver's informer has seen the new caBundle.
	Propagation time.Duration
	// CommonName of the CAs; the issue time is appended so each CA is told apart in logs.
	CommonName string
}

// State is the Secret's content, parsed.
type State struct {
	// Bundle is the trusted CAs, Signer.Cert first.
	Bundle []*x509.Certificate
	// Signer signs new serving certificates.
	Signer *pki.CA
	// Serving is the certificate and key the webhook serves.
	Serving *pki.KeyPair
	// PublishedAt is when Signer entered the bundle.
	PublishedAt time.Time
	// Generation counts serving certificates issued.
	Generation int
	// Err says why the Secret is unusable (missing, corrupt); the other fields are then empty.
	Err error
}

// Decision is what to do now and when to look again.
type Decision struct {
	Action Action
	// Reason is a short explanation for the log.
	Reason string
	// Next is when the state next needs attention if nothing else changes (the zero time after Create,
	// Reissue, IntroduceCA and Prune, whose result is decided on afresh).
	Next time.Time
}

// Validate checks a policy; errors name the setting and the fix.
func (p Policy) Validate() error {
	if len(p.Hosts) == 0 {
		return errors.New("certificate policy: no hosts: set the webhook Service name and namespace")
	}
	if p.Lifetime <= 0 {
		return fmt.Errorf("certificate policy: lifetime %v must be positive", p.Lifetime)
	}
	if p.Propagation < 0 || p.Propagation*6 > p.Lifetime {
		return fmt.Errorf("certificate policy: propagation delay %v must be between 0 and a sixth of the lifetime %v, so a rotation finishes well before the old certificate expires", p.Propagation, p.Lifetime)
	}
	return nil
}

// Parse reads a Secret's data and annotations; data == nil means the Secret does not exist.
func Parse(data map[string][]byte, annotations map[string]string) State {
	if data == nil {
		return State{Err: errors.New("secret does not exist")}
	}
	bundle, err := pki.ParseCertificates(data[KeyCABundle])
	if err != nil {
		return State{Err: fmt.Errorf("%s: %w", KeyCABundle, err)}
	}
	signer, err := pki.ParseCA(pki.EncodeCertificates(bundle[0]), data[KeyCAKey])
	if err != nil {
		return State{Err: fmt.Errorf("%s/%s: %w", KeyCABundle, KeyCAKey, err)}
	}
	serving, err := pki.ParseKeyPair(data[KeyCert], data[KeyKey])
	if err != nil {
		return State{Err: fmt.Errorf("%s/%s: %w", KeyCert, KeyKey, err)}
	}
	trusted := false
	for _, ca := range bundle {
		if pki.SignedBy(serving.Cert, ca) {
			trusted = true
			break
		}
	}
	if !trusted {
		return State{Err: fmt.Errorf("%s %q is not signed by any CA in %s", KeyCert, serving.Cert.Subject.CommonName, KeyCABundle)}
	}
	s := State{Bundle: bundle, Signer: signer, Serving: serving}
	if v, ok := annotations[AnnotationPublishedAt]; ok {
		// A bad timestamp only costs a shorter wait: the zero time counts as long ago.
		s.PublishedAt, _ = time.Parse(time.RFC3339Nano, v)
	}
	if v, ok := annotations[AnnotationGeneration]; ok {
		s.Generation, _ = strconv.Atoi(v)
	}
	return s
}

// Decide picks the next action. trusted says whether every webhook configuration's caBundle already
// holds the signing CA (configurations that do not exist are not waited for).
func Decide(s State, trusted bool, now time.Time, p Policy) Decision {
	if s.Err != nil {
		return Decision{Action: Create, Reason: s.Err.Error()}
	}
	if !now.Before(s.Signer.Cert.NotAfter) {
		return Decision{Action: Create, Reason: fmt.Sprintf("signing CA expired at %s", s.Signer.Cert.NotAfter.Format(time.RFC3339))}
	}
	if !now.Before(s.Serving.Cert.NotAfter) {
		// Nothing valid is being served: waiting for propagation would only prolong the outage.
		return Decision{Action: Reissue, Reason: fmt.Sprintf("serving certificate expired at %s", s.Serving.Cert.NotAfter.Format(time.RFC3339))}
	}
	if !pki.SignedBy(s.Serving.Cert, s.Signer.Cert) {
		ready := s.PublishedAt.Add(p.Propagation)
		if trusted && !now.Before(ready) {
			return Decision{Action: Reissue, Reason: "new CA is in every webhook's caBundle"}
		}
		if !ready.After(now) {
			ready = now.Add(max(p.Propagation, time.Second))
		}
		return Decision{Action: Keep, Reason: "waiting for the new CA to reach every webhook's caBundle", Next: ready}
	}
	if !pki.SameHosts(s.Serving.Cert, p.Hosts) {
		return Decision{Action: Reissue, Reason: fmt.Sprintf("serving certificate is for %v, want %v", sans(s.Serving.Cert), p.Hosts)}
	}
	renew := earliest(pki.RenewalTime(s.Signer.Cert, p.Lifetime), pki.RenewalTime(s.Serving.Cert, p.Lifetime))
	if !now.Before(renew) {
		return Decision{Action: IntroduceCA, Reason: fmt.Sprintf("two thirds of the certificates' lifetime passed at %s", renew.Format(time.RFC3339))}
	}
	next := renew
	for _, ca := range s.Bundle[1:] {
		if !now.Before(ca.NotAfter) {
			return Decision{Action: Prune, Reason: fmt.Sprintf("old CA %q expired", ca.Subject.CommonName)}
		}
		next = earliest(next, ca.NotAfter)
	}
	return Decision{Action: Keep, Reason: "certificates are current", Next: next}
}

// Apply carries out a decision and returns the new state; Keep returns s unchanged.
func Apply(d Decision, s State, now time.Time, p Policy) (State, error) {
	switch d.Action {
	case Keep:
		return s, nil
	case Create:
		ca, err := pki.NewCA(caName(p, now), now, p.Lifetime)
		if err != nil {
			return s, err
		}
		serving, err := ca.IssueServing(p.Hosts, now, p.Lifetime)
		if err != nil {
			return s, err
		}
		return State{Bundle: []*x509.Certificate{ca.Cert}, Signer: ca, Serving: serving, PublishedAt: now, Generation: s.Generation + 1}, nil
	case IntroduceCA:
		ca, err := pki.NewCA(caName(p, now), now, p.Lifetime)
		if err != nil {
			return s, err
		}
		out := s
		out.Bundle = append([]*x509.Certificate{ca.Cert}, unexpired(s.Bundle, now)...)
		out.Signer = ca
		out.PublishedAt = now
		return out, nil
	case Reissue:
		serving, err := s.Signer.IssueServing(p.Hosts, now, p.Lifetime)
		if err != nil {
			return s, err
		}
		out := s
		out.Serving = serving
		out.Bundle = append([]*x509.Certificate{s.Signer.Cert}, unexpired(s.Bundle[1:], now)...)
		out.Generation++
		return out, nil
	case Prune:
		out := s
		out.Bundle = append([]*x509.Certificate{s.Signer.Cert}, unexpired(s.Bundle[1:], now)...)
		return out, nil
	}
	return s, fmt.Errorf("unknown action %q", d.Action)
}

// Encode is the Secret's data and annotations for s.
func (s State) Encode() (map[string][]byte, map[string]string) {
	data := map[string][]byte{
		KeyCABundle: s.CABundle(),
		KeyCAKey:    s.Signer.KeyPEM,
		KeyCert:     s.Serving.CertPEM,
		KeyKey:      s.Serving.KeyPEM,
	}
	ann := map[string]string{
		AnnotationPublishedAt: s.PublishedAt.UTC().Format(time.RFC3339Nano),
		AnnotationGeneration:  strconv.Itoa(s.Generation),
	}
	return data, ann
}

// CABundle is the PEM bundle webhook configurations carry as caBundle.
func (s State) CABundle() []byte { return pki.EncodeCertificates(s.Bundle...) }

func unexpired(cas []*x509.Certificate, now time.Time) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range cas {
		if now.Before(c.NotAfter) {
			out = append(out, c)
		}
	}
	return out
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func caName(p Policy, now time.Time) string {
	cn := p.CommonName
	if cn == "" {
		cn = "underlink-webhook-ca"
	}
	return fmt.Sprintf("%s@%d", cn, now.Unix())
}

func sans(c *x509.Certificate) []string {
	out := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}
