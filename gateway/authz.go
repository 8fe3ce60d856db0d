package gateway

import (
	"context"
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"

	"github.com/nodedebug/nodedebug/api"
)

// access is one permission to check with a SubjectAccessReview.
type access struct {
	verb, group, resource, subresource string
}

// execAccess is what kubectl exec needs; nodedebug attach never gives a
// user more than that.
var execAccess = access{verb: "create", resource: "pods", subresource: "exec"}

// attachAccess is the gateway's own subresource, which the API server has
// already checked; checking again keeps a request that reached the gateway
// some other way from going further.
var attachAccess = access{verb: "create", group: api.Group, resource: "pods", subresource: api.AttachSubresource}

// allowed asks the API server whether u may do a on pod ns/name.
func allowed(ctx context.Context, client kubernetes.Interface, u user.Info,
	a access, ns, name string) (bool, string, error) {
	review := &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   u.GetName(),
			UID:    u.GetUID(),
			Groups: u.GetGroups(),
			Extra:  extra(u.GetExtra()),
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Name: name, Verb: a.verb,
				Group: a.group, Resource: a.resource, Subresource: a.subresource,
			},
		},
	}

	got, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("review %s of %s/%s for %s: %w", a, ns, name, u.GetName(), err)
	}
	return got.Status.Allowed, got.Status.Reason, nil
}

func (a access) String() string {
	s := a.verb + " " + a.resource + "/" + a.subresource
	if a.group != "" {
		s += " in " + a.group
	}
	return s
}

func extra(in map[string][]string) map[string]authorizationv1.ExtraValue {
	out := make(map[string]authorizationv1.ExtraValue, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
