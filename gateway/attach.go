package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/nodedebug/nodedebug/api"
)

// attachRequest is one attach, read from the path and the query.
type attachRequest struct {
	user  user.Info
	start *api.Start
	// stdout and stderr are the streams the client asked for.
	stdout, stderr bool
}

// serveAttach checks the request, then upgrades it to the remote-command
// websocket and bridges it to the agent on the pod's node.
func (g *Gateway) serveAttach(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, err := g.authn.user(r)
	if u == nil {
		g.log.WarnContext(ctx, "unauthenticated attach", "error", err)
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized,
			"the gateway answers only requests proxied by the Kubernetes API server")
		return
	}

	req, err := parseAttach(r, u)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	target := req.start.Target
	log := g.log.With("user", u.GetName(), "pod", target.Namespace+"/"+target.Pod,
		"container", target.Container)

	if code, reason, msg := g.authorize(ctx, r.Method, req); code != 0 {
		log.InfoContext(ctx, "attach refused", "reason", msg)
		writeStatus(w, code, reason, msg)
		return
	}
	if !wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest,
			"attach needs the websocket protocol v5.channel.k8s.io (client-go 1.30 or newer)")
		return
	}

	node, code, reason, msg := g.nodeOf(ctx, target)
	if code != 0 {
		writeStatus(w, code, reason, msg)
		return
	}
	client, closeConn, err := g.agents.dial(ctx, node)
	if err != nil {
		writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, err.Error())
		return
	}
	defer closeConn()

	log.InfoContext(ctx, "attach", "node", node, "command", req.start.Command)
	g.bridge(w, r, req, client, log)
}

func parseAttach(r *http.Request, u user.Info) (*attachRequest, error) {
	q := r.URL.Query()
	req := &attachRequest{
		user:   u,
		stdout: flag(q, "stdout"),
		stderr: flag(q, "stderr"),
		start: &api.Start{
			Target: &api.Target{
				Namespace: r.PathValue("namespace"),
				Pod:       r.PathValue("pod"),
				Container: q.Get("container"),
				Exited:    flag(q, api.ParamExited),
				Attempt:   -1,
			},
			Command:  q["command"],
			Image:    q.Get(api.ParamImage),
			Profile:  q.Get(api.ParamProfile),
			Reason:   q.Get(api.ParamReason),
			Share:    nonEmpty(q[api.ParamShare]),
			ShareSet: q.Has(api.ParamShare),
			Stdin:    flag(q, "stdin"),
			Tty:      flag(q, "tty"),
		},
	}

	if s := q.Get(api.ParamAttempt); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("query parameter attempt=%q is not a number", s)
		}
		req.start.Target.Attempt = int32(n)
	}
	if !req.stdout && !req.stderr && !req.start.Stdin {
		return nil, fmt.Errorf("ask for at least one of stdin, stdout, stderr")
	}
	return req, nil
}

func flag(q url.Values, name string) bool {
	v := q.Get(name)
	return v == "1" || v == "true"
}

func nonEmpty(values []string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// authorize returns a non-zero HTTP code when the user may not attach.
func (g *Gateway) authorize(ctx context.Context, method string,
	req *attachRequest) (int, metav1.StatusReason, string) {
	t := req.start.Target
	own := attachAccess
	if method == http.MethodGet {
		own.verb = "get"
	}

	for _, a := range []access{own, execAccess} {
		ok, reason, err := allowed(ctx, g.client, req.user, a, t.Namespace, t.Pod)
		if err != nil {
			g.log.ErrorContext(ctx, "subject access review failed", "error", err)
			return http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error()
		}
		if !ok {
			return http.StatusForbidden, metav1.StatusReasonForbidden, refusal(req.user, a, t, reason)
		}
	}
	return 0, "", ""
}

func refusal(u user.Info, a access, t *api.Target, reason string) string {
	msg := fmt.Sprintf("user %q may not %s on pod %s/%s", u.GetName(), a, t.Namespace, t.Pod)
	if a == execAccess {
		msg += "; nodedebug attach needs the same permission as kubectl exec:" +
			" ask for a Role that allows create on pods/exec there"
	}
	if reason != "" {
		msg += " (" + reason + ")"
	}
	return msg
}

// nodeOf finds the node the target pod runs on.
func (g *Gateway) nodeOf(ctx context.Context, t *api.Target) (string, int, metav1.StatusReason, string) {
	pod, err := g.client.CoreV1().Pods(t.Namespace).Get(ctx, t.Pod, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("pod %s/%s not found (check the namespace with -n, or the context with --context)",
				t.Namespace, t.Pod)
	}
	if err != nil {
		return "", http.StatusInternalServerError, metav1.StatusReasonInternalError,
			fmt.Sprintf("look up pod %s/%s: %v", t.Namespace, t.Pod, err)
	}
	if pod.Spec.NodeName == "" {
		return "", http.StatusConflict, metav1.StatusReasonConflict,
			fmt.Sprintf("pod %s/%s is not scheduled to a node yet", t.Namespace, t.Pod)
	}
	return pod.Spec.NodeName, 0, "", ""
}
