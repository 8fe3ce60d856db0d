package gateway

import (
	"encoding/json"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodedebug/nodedebug/api"
)

var groupVersion = api.Group + "/" + api.Version

// attachPath is the subresource the API server proxies to us.
const attachPath = "/apis/" + api.Group + "/" + api.Version +
	"/namespaces/{namespace}/pods/{pod}/" + api.AttachSubresource

func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	for _, path := range []string{"/healthz", "/readyz", "/livez"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte("ok"))
		})
	}

	mux.Handle("GET /apis", g.authenticated(serveJSON(apiGroupList())))
	mux.Handle("GET /apis/"+api.Group, g.authenticated(serveJSON(apiGroup())))
	mux.Handle("GET /apis/"+groupVersion, g.authenticated(serveJSON(apiResources())))
	mux.HandleFunc(attachPath, g.serveAttach)
	return mux
}

// authenticated lets only requests the API server proxied through.
func (g *Gateway) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := g.authn.user(r)
		if u == nil {
			g.log.WarnContext(r.Context(), "unauthenticated request", "path", r.URL.Path, "error", err)
			writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized,
				"the gateway answers only requests proxied by the Kubernetes API server")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func apiGroup() *metav1.APIGroup {
	version := metav1.GroupVersionForDiscovery{GroupVersion: groupVersion, Version: api.Version}
	return &metav1.APIGroup{
		TypeMeta:         metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name:             api.Group,
		Versions:         []metav1.GroupVersionForDiscovery{version},
		PreferredVersion: version,
	}
}

func apiGroupList() *metav1.APIGroupList {
	return &metav1.APIGroupList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
		Groups:   []metav1.APIGroup{*apiGroup()},
	}
}

func apiResources() *metav1.APIResourceList {
	return &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: groupVersion,
		APIResources: []metav1.APIResource{{
			Name:       "pods/" + api.AttachSubresource,
			Namespaced: true,
			Kind:       "PodAttachOptions",
			Verbs:      []string{"create", "get"},
		}},
	}
}

func serveJSON(body any) http.Handler {
	data, _ := json.Marshal(body)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	})
}

// writeStatus answers with a Kubernetes Status, which clients (client-go,
// kubectl) show as the error's message. Its details name the pod, without
// a group: the CLI tells the gateway's refusals from the API server's so.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, message string) {
	status := &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Code:     int32(code),
		Reason:   reason,
		Message:  message,
		Details:  &metav1.StatusDetails{Kind: "pods"},
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(status)
}
