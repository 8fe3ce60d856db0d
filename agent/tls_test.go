package agent

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
)

func TestVerifyGatewayChecksTheName(t *testing.T) {
	cfg := &TLSListen{ClientName: "nodedebug-gateway"}
	peer := func(cn string) tls.ConnectionState {
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: cn}}}}
	}

	tests := []struct {
		name  string
		state tls.ConnectionState
		ok    bool
	}{
		{name: "gateway", state: peer("nodedebug-gateway"), ok: true},
		{name: "other name", state: peer("nodedebug-agent")},
		{name: "no certificate", state: tls.ConnectionState{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cfg.verifyGateway(tt.state)
			if tt.ok != (err == nil) {
				t.Fatalf("verifyGateway = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrNotGateway) {
				t.Errorf("error %v is not ErrNotGateway", err)
			}
		})
	}
}
