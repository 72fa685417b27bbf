package localenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the set of files one local cluster's control plane needs. Everything is generated in Go (no
// openssl, no cfssl) and kept under .local/<cluster>/pki so a restart reuses it.
type pki struct {
	dir string
}

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

// files named by the flags that use them.
const (
	caCert        = "ca.crt"
	caKey         = "ca.key"
	apiserverCert = "apiserver.crt"
	apiserverKey  = "apiserver.key"
	adminCert     = "admin.crt"
	adminKey      = "admin.key"
	kcmCert       = "kube-controller-manager.crt"
	kcmKey        = "kube-controller-manager.key"
	// kubeletClient is the apiserver's client certificate towards kubelets (exec, logs).
	kubeletClientCert = "apiserver-kubelet-client.crt"
	kubeletClientKey  = "apiserver-kubelet-client.key"
	saKey             = "sa.key"
	saPub             = "sa.pub"
)

// ensure creates whatever is missing. A CA that exists is reused, so kubeconfigs handed out earlier keep
// working across `make down`/`make up` only while .local/<cluster>/pki survives (down removes it).
func (p pki) ensure(serviceIP net.IP) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	if exists(p.path(caCert)) && exists(p.path(apiserverCert)) && exists(p.path(adminCert)) &&
		exists(p.path(kcmCert)) && exists(p.path(kubeletClientCert)) && exists(p.path(saKey)) {
		return nil
	}
	now := time.Now()
	caPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "underlink-local-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caPriv.Public(), caPriv)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writeCertKey(p.path(caCert), p.path(caKey), caDER, caPriv); err != nil {
		return err
	}
	leaf := func(certFile, keyFile string, subj pkix.Name, usage x509.ExtKeyUsage, dns []string, ips []net.IP) error {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      subj,
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.AddDate(1, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     dns,
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, priv.Public(), caPriv)
		if err != nil {
			return err
		}
		return writeCertKey(certFile, keyFile, der, priv)
	}
	if err := leaf(p.path(apiserverCert), p.path(apiserverKey), pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.IPv4(127, 0, 0, 1), serviceIP}); err != nil {
		return err
	}
	if err := leaf(p.path(adminCert), p.path(adminKey), pkix.Name{CommonName: "underlink-admin", Organization: []string{"system:masters"}},
		x509.ExtKeyUsageClientAuth, nil, nil); err != nil {
		return err
	}
	if err := leaf(p.path(kcmCert), p.path(kcmKey), pkix.Name{CommonName: "system:kube-controller-manager"},
		x509.ExtKeyUsageClientAuth, nil, nil); err != nil {
		return err
	}
	if err := leaf(p.path(kubeletClientCert), p.path(kubeletClientKey), pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		x509.ExtKeyUsageClientAuth, nil, nil); err != nil {
		return err
	}
	// Service account tokens are signed with this key; the apiserver verifies with its public half.
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(p.path(saKey), sa); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(sa.Public())
	if err != nil {
		return err
	}
	return os.WriteFile(p.path(saPub), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the kernel's RNG failing is not recoverable here
	}
	return n
}

func writeCertKey(certFile, keyFile string, der []byte, key crypto.Signer) error {
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeKey(keyFile, key)
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
