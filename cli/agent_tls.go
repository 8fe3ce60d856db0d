package cli

import (
	"github.com/spf13/pflag"

	"github.com/nodedebug/nodedebug/agent"
)

// DefaultGatewayName is the common name of the gateway's certificate.
const DefaultGatewayName = "nodedebug-gateway"

func addAgentTLSFlags(flags *pflag.FlagSet, t *agent.TLSListen) {
	flags.StringVar(&t.Address, "listen-tls", "",
		"also serve the gateway over mutual TLS on this address, e.g. $(POD_IP):9443 (default: off)")
	flags.StringVar(&t.CertFile, "tls-cert", "/etc/nodedebug/tls/tls.crt", "the agent's certificate for --listen-tls")
	flags.StringVar(&t.KeyFile, "tls-key", "/etc/nodedebug/tls/tls.key", "the agent's key for --listen-tls")
	flags.StringVar(&t.ClientCAFile, "tls-client-ca", "/etc/nodedebug/tls/ca.crt",
		"CA that signed the gateway's client certificate")
	flags.StringVar(&t.ClientName, "tls-client-name", DefaultGatewayName,
		"the only client certificate common name accepted on --listen-tls")
}

// tlsListen is nil when --listen-tls is not set.
func (o *AgentOptions) tlsListen() *agent.TLSListen {
	if o.TLS.Address == "" {
		return nil
	}
	return &o.TLS
}
