package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
)

// completeTimeout keeps a slow API server from hanging the shell.
const completeTimeout = 5 * time.Second

// podList is the part of a core/v1 PodList that completion reads; decoding
// it by hand keeps client-go's typed clients out of the binary.
type podList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Containers []struct {
				Name string `json:"name"`
			} `json:"containers"`
		} `json:"spec"`
	} `json:"items"`
}

// completeTargets completes POD and POD/CONTAINER from the cluster.
func (o *AttachOptions) completeTargets(cmd *cobra.Command, args []string,
	toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 || o.Local() {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	pods, err := o.listPods(cmd.Context())
	if err != nil {
		cobra.CompDebugln(err.Error(), true)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}

	pod, _, withContainer := strings.Cut(toComplete, "/")
	var out []string
	for _, p := range pods.Items {
		switch {
		case withContainer && p.Metadata.Name == pod:
			for _, c := range p.Spec.Containers {
				out = append(out, pod+"/"+c.Name)
			}
		case !withContainer && strings.HasPrefix(p.Metadata.Name, toComplete):
			out = append(out, p.Metadata.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// listPods reads the pods of the namespace as the user.
func (o *AttachOptions) listPods(ctx context.Context) (*podList, error) {
	if err := o.completeNamespace(); err != nil {
		return nil, err
	}
	config, err := o.Kube.RESTConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	client, err := rest.HTTPClientFor(config)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", config.Host, err)
	}

	u, err := url.Parse(config.Host)
	if err != nil {
		return nil, fmt.Errorf("API server address %q: %w", config.Host, err)
	}
	u.Path = path.Join(u.Path, "api/v1/namespaces", o.Namespace, "pods")
	return getPods(ctx, client, u.String())
}

func getPods(ctx context.Context, client *http.Client, address string) (*podList, error) {
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, address, nil)
	if err != nil {
		return nil, err
	}

	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list pods: %s", resp.Status)
	}

	var pods podList
	if err := json.NewDecoder(resp.Body).Decode(&pods); err != nil {
		return nil, fmt.Errorf("decode pod list: %w", err)
	}
	return &pods, nil
}
