package cli

import (
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeFlags are kubectl's connection flags (--kubeconfig, --context,
// --as, --server, --token, …) from client-go's clientcmd, which
// cli-runtime wraps too. cli-runtime itself would double the binary and
// the resident memory of the agent and of every tool container's init,
// which are the same binary.
type KubeFlags struct {
	Kubeconfig string
	Overrides  clientcmd.ConfigOverrides
}

// AddFlags registers the flags; -n stays attach's own.
func (k *KubeFlags) AddFlags(flags *pflag.FlagSet) {
	flags.StringVar(&k.Kubeconfig, clientcmd.RecommendedConfigPathFlag, "",
		"path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	names := clientcmd.RecommendedConfigOverrideFlags("")
	names.ContextOverrideFlags.Namespace.LongName = ""
	clientcmd.BindOverrideFlags(&k.Overrides, flags, names)
}

func (k *KubeFlags) config() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.Kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &k.Overrides)
}

// RESTConfig is the client config the flags and the kubeconfig select.
func (k *KubeFlags) RESTConfig() (*rest.Config, error) {
	return k.config().ClientConfig()
}

// Namespace is the namespace of the selected kubeconfig context.
func (k *KubeFlags) Namespace() (string, error) {
	ns, _, err := k.config().Namespace()
	return ns, err
}
