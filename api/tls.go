package api

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// LoadMutualTLS reads what either end of the gateway–agent connection
// needs: its own key pair, and the CA that signed the other end.
func LoadMutualTLS(certFile, keyFile, caFile string) (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load certificate %s: %w", certFile, err)
	}

	pem, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("read CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("CA %s holds no PEM certificate", caFile)
	}
	return cert, pool, nil
}
