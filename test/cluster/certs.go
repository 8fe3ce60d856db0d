package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
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

// certLifetime is long enough for any test run and short enough that a
// leaked key is worthless soon.
const certLifetime = 24 * time.Hour

// CA is a certificate authority whose files live in one folder.
type CA struct {
	// CertFile is the CA certificate in PEM.
	CertFile string

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

// CertSpec describes one certificate to issue.
type CertSpec struct {
	// Name is the file stem: NAME.crt and NAME.key.
	Name         string
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Server       bool
	Client       bool
}

// KeyPair names the PEM files of an issued certificate.
type KeyPair struct {
	CertFile string
	KeyFile  string
}

// NewCA creates a CA named name in dir.
func NewCA(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key of CA %s: %w", name, err)
	}

	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign CA %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA %s: %w", name, err)
	}

	ca := &CA{cert: cert, key: key, dir: dir, CertFile: filepath.Join(dir, name+".crt")}
	if err := writePEM(ca.CertFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issue signs a certificate for spec and writes it with its key.
func (ca *CA) Issue(spec CertSpec) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate key of %s: %w", spec.Name, err)
	}

	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  extKeyUsage(spec),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("sign certificate %s: %w", spec.Name, err)
	}

	return writeKeyPair(filepath.Join(ca.dir, spec.Name), der, key)
}

func extKeyUsage(spec CertSpec) []x509.ExtKeyUsage {
	var usage []x509.ExtKeyUsage
	if spec.Server {
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	if spec.Client {
		usage = append(usage, x509.ExtKeyUsageClientAuth)
	}
	return usage
}

func writeKeyPair(stem string, der []byte, key *ecdsa.PrivateKey) (KeyPair, error) {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode key %s: %w", stem, err)
	}

	pair := KeyPair{CertFile: stem + ".crt", KeyFile: stem + ".key"}
	if err := writePEM(pair.CertFile, "CERTIFICATE", der); err != nil {
		return KeyPair{}, err
	}
	if err := writePEM(pair.KeyFile, "EC PRIVATE KEY", keyDER); err != nil {
		return KeyPair{}, err
	}
	return pair, nil
}

// WriteKey writes a fresh private key, for the service account signer.
func WriteKey(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key %s: %w", path, err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", path, err)
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}

func writePEM(path, kind string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// LoadCA reads a CA from PEM files, to issue more certificates from it
// (deploy/certs.sh writes its key as PKCS#8).
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", certFile, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load CA %s: key is %T, want ECDSA", certFile, pair.PrivateKey)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse CA %s: %w", certFile, err)
	}
	return &CA{CertFile: certFile, cert: cert, key: key, dir: filepath.Dir(keyFile)}, nil
}
