// Package pki makes and reads the webhook's self-signed certificates: a CA, a serving certificate it signs,
// and the PEM encodings a Kubernetes TLS Secret and a webhook caBundle carry. It is pure (no client, no
// files); the clock is an argument so rotation can be tested without waiting.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// MaxBackdate bounds how far NotBefore is set before the issue time, to tolerate clocks that lag the
// issuer's (the apiserver may run on another node).
const MaxBackdate = 5 * time.Minute

// Backdate is how far before now a certificate of the given lifetime starts: 1/24 of it, at most
// MaxBackdate, so a two-minute certificate is not mostly spent in the past; whole seconds, as X.509
// times have no finer precision.
func Backdate(lifetime time.Duration) time.Duration {
	return min(lifetime/24, MaxBackdate).Truncate(time.Second)
}

// CA is a certificate authority the webhook signs its serving certificates with.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertPEM and KeyPEM are the encodings stored in the Secret.
	CertPEM, KeyPEM []byte
}

// KeyPair is a serving certificate and its private key.
type KeyPair struct {
	Cert            *x509.Certificate
	CertPEM, KeyPEM []byte
}

// NewCA creates a self-signed CA valid from now (backdated by Backdate) for lifetime.
func NewCA(commonName string, now time.Time, lifetime time.Duration) (*CA, error) {
	if lifetime <= 0 {
		return nil, fmt.Errorf("CA %q: lifetime %v must be positive", commonName, lifetime)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA %q: generate key: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	ski := subjectKeyID(&key.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-Backdate(lifetime)).UTC(),
		NotAfter:              now.Add(lifetime).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA %q: sign: %w", commonName, err)
	}
	return caFromDER(der, key)
}

// IssueServing signs a serving certificate for hosts (DNS names, or IP literals that become IP SANs),
// valid from now for lifetime but never beyond the CA's own expiry, so the chain is always valid as a whole.
func (ca *CA) IssueServing(hosts []string, now time.Time, lifetime time.Duration) (*KeyPair, error) {
	if len(hosts) == 0 {
		return nil, errors.New("serving certificate: no hosts (DNS names or IPs) to issue it for")
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("serving certificate for %v: lifetime %v must be positive", hosts, lifetime)
	}
	if !now.Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("serving certificate for %v: CA %q expired at %s", hosts, ca.Cert.Subject.CommonName, ca.Cert.NotAfter.Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serving certificate for %v: generate key: %w", hosts, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	notBefore := now.Add(-Backdate(lifetime))
	if notBefore.Before(ca.Cert.NotBefore) {
		notBefore = ca.Cert.NotBefore
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             notBefore.UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("serving certificate for %v: sign: %w", hosts, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, CertPEM: EncodeCertificates(cert), KeyPEM: keyPEM}, nil
}

// ParseCA reads a CA from its certificate and key PEM; it rejects a certificate that is not a CA or a key
// that does not belong to it.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("CA certificate: want exactly one certificate, found %d", len(certs))
	}
	if !certs[0].IsCA {
		return nil, fmt.Errorf("CA certificate %q is not a CA (basicConstraints CA:false)", certs[0].Subject.CommonName)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if err := matches(certs[0], key); err != nil {
		return nil, fmt.Errorf("CA %q: %w", certs[0].Subject.CommonName, err)
	}
	return &CA{Cert: certs[0], Key: key, CertPEM: EncodeCertificates(certs[0]), KeyPEM: keyPEM}, nil
}

// ParseKeyPair reads a serving certificate (the first certificate of certPEM) and its key, and checks that
// they belong together.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	if len(certs) == 0 {
		return nil, errors.New("serving certificate: no certificate in PEM")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("serving key: %w", err)
	}
	if err := matches(certs[0], key); err != nil {
		return nil, fmt.Errorf("serving certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return &KeyPair{Cert: certs[0], CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// ParseCertificates decodes every CERTIFICATE block of a PEM bundle; anything else in it is an error, so
// a truncated or mixed-up bundle is noticed rather than half-used.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("not PEM: trailing data that is not a PEM block")
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate in PEM")
	}
	return out, nil
}

// EncodeCertificates PEM-encodes certificates in order, the format of a caBundle and of tls.crt.
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// RenewalTime is when a certificate is due for renewal: after two thirds of its validity (NotBefore to
// NotAfter), or of the validity a certificate issued for lifetime would have if that is shorter, so
// shortening the configured lifetime takes effect without waiting out the old certificates.
func RenewalTime(c *x509.Certificate, lifetime time.Duration) time.Time {
	validity := c.NotAfter.Sub(c.NotBefore)
	if lifetime > 0 {
		validity = min(validity, lifetime+Backdate(lifetime))
	}
	return c.NotBefore.Add(validity * 2 / 3)
}

// SignedBy reports whether c carries a valid signature of ca.
func SignedBy(c, ca *x509.Certificate) bool {
	return c.CheckSignatureFrom(ca) == nil
}

// SameHosts reports whether c's SANs are exactly hosts (as DNS names and IPs), in any order.
func SameHosts(c *x509.Certificate, hosts []string) bool {
	var have []string
	have = append(have, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		have = append(have, ip.String())
	}
	want := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		want = append(want, h)
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(slices.Compact(have), slices.Compact(want))
}

func caFromDER(der []byte, key *ecdsa.PrivateKey) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: EncodeCertificates(cert), KeyPEM: keyPEM}, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func subjectKeyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseKey reads a PKCS#8, EC or PKCS#1 private key, the forms cert-manager and openssl write.
func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q, want a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T is not a signing key", key)
	}
	return s, nil
}

func matches(c *x509.Certificate, key crypto.Signer) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := c.PublicKey.(equaler)
	if !ok || !pub.Equal(key.Public()) {
		return errors.New("private key does not match the certificate's public key")
	}
	return nil
}
