package gateway

import (
	"context"
	"fmt"
	"net/http"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
)

// The API server publishes its front-proxy settings here.
const (
	authConfigNamespace = "kube-system"
	authConfigName      = "extension-apiserver-authentication"
)

// frontProxy authenticates requests the API server proxied: a client
// certificate from the front-proxy CA with an allowed name, and the user
// in the request headers the API server names.
type frontProxy struct {
	authenticator.Request
}

func newFrontProxy(ctx context.Context, client kubernetes.Interface) (*frontProxy, error) {
	ca, err := dynamiccertificates.NewDynamicCAFromConfigMapController("front-proxy-ca",
		authConfigNamespace, authConfigName, "requestheader-client-ca-file", client)
	if err != nil {
		return nil, fmt.Errorf("watch front-proxy CA in %s/%s: %w", authConfigNamespace, authConfigName, err)
	}
	headers := headerrequest.NewRequestHeaderAuthRequestController(authConfigName, authConfigNamespace,
		client, "requestheader-username-headers", "requestheader-uid-headers",
		"requestheader-group-headers", "requestheader-extra-headers-prefix",
		"requestheader-allowed-names")

	// Fail at start rather than refuse every request later.
	if err := ca.RunOnce(ctx); err != nil {
		return nil, fmt.Errorf("read front-proxy CA from %s/%s (is the aggregation layer on?): %w",
			authConfigNamespace, authConfigName, err)
	}
	if err := headers.RunOnce(ctx); err != nil {
		return nil, fmt.Errorf("read front-proxy headers from %s/%s: %w", authConfigNamespace, authConfigName, err)
	}
	go ca.Run(ctx, 1)
	go headers.Run(ctx, 1)

	return &frontProxy{Request: headerrequest.NewDynamicVerifyOptionsSecure(ca.VerifyOptions,
		headerrequest.StringSliceProviderFunc(headers.AllowedClientNames),
		headerrequest.StringSliceProviderFunc(headers.UsernameHeaders),
		headerrequest.StringSliceProviderFunc(headers.UIDHeaders),
		headerrequest.StringSliceProviderFunc(headers.GroupHeaders),
		headerrequest.StringSliceProviderFunc(headers.ExtraHeaderPrefixes),
	)}, nil
}

// user returns the authenticated user, or nil when the request did not
// come through the API server.
func (f *frontProxy) user(r *http.Request) (user.Info, error) {
	resp, ok, err := f.AuthenticateRequest(r)
	if err != nil || !ok {
		return nil, err
	}
	return resp.User, nil
}
