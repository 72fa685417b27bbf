package nodes

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// authority signs the certificates of a cluster's node processes with the cluster's own CA (the one
// test/localenv made), so the apiserver trusts kubelet, kube-proxy and the other node clients as it would
// in a kubeadm cluster, and kubelet trusts the apiserver's client certificate for exec and logs.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// CAFile is the CA certificate's path, for the kubeconfigs and kubelet's clientCAFile.
	CAFile string
}

// loadAuthority reads ca.crt and ca.key from a cluster's PKI directory.
func loadAuthority(pkiDir string) (*authority, error) {
	certFile, keyFile := filepath.Join(pkiDir, "ca.crt"), filepath.Join(pkiDir, "ca.key")
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA (is the control plane up? `make up`): %w", err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA key: %w", err)
	}
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	if cblk == nil || kblk == nil {
		return nil, fmt.Errorf("%s or %s is not PEM", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", certFile, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", keyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New(keyFile + " is not an ECDSA key")
	}
	return &authority{cert: cert, key: key, CAFile: certFile}, nil
}

// leaf describes one certificate to sign.
type leaf struct {
	CommonName   string
	Organization []string
	Server       bool // serving certificate (else client)
	DNSNames     []string
	IPs          []net.IP
}

// sign writes <base>.crt and <base>.key signed by the authority.
func (a *authority) sign(base string, l leaf) (certFile, keyFile string, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", "", err
	}
	usage := x509.ExtKeyUsageClientAuth
	if l.Server {
		usage = x509.ExtKeyUsageServerAuth
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: l.Organization},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     l.DNSNames,
		IPAddresses:  l.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, priv.Public(), a.key)
	if err != nil {
		return "", "", fmt.Errorf("sign %s: %w", l.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = base+".crt", base+".key"
	if err := os.MkdirAll(filepath.Dir(base), 0o700); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// kubeconfig signs a client certificate for user (CN) in groups (O) and writes a kubeconfig for server
// next to it. serverName is the name the apiserver's serving certificate must carry when the address the
// client dials (a relay's) is not in it.
func (a *authority) kubeconfig(path, server, serverName, user string, groups ...string) error {
	base := strings.TrimSuffix(path, filepath.Ext(path))
	certFile, keyFile, err := a.sign(base, leaf{CommonName: user, Organization: groups})
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: a.CAFile, TLSServerName: serverName}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user}
	cfg.CurrentContext = "local"
	return clientcmd.WriteToFile(*cfg, path)
}
