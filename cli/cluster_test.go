package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAttachURL(t *testing.T) {
	tests := []struct {
		name string
		o    AttachOptions
		want string
	}{
		{
			name: "command with container",
			o:    AttachOptions{Namespace: "shop", Pod: "web", Container: "app", Command: []string{"sh", "-c", "exit 5"}},
			want: "https://api:6443/apis/nodedebug.io/v1alpha1/namespaces/shop/pods/web/attach?" +
				"command=sh&command=-c&command=exit+5&container=app&stderr=true&stdin=false&stdout=true&tty=false",
		},
		{
			name: "terminal merges stderr",
			o:    AttachOptions{Namespace: "shop", Pod: "web", Stdin: true, TTY: true},
			want: "https://api:6443/apis/nodedebug.io/v1alpha1/namespaces/shop/pods/web/attach?" +
				"stderr=false&stdin=true&stdout=true&tty=true",
		},
		{
			name: "share only net, exited attempt, image",
			o: AttachOptions{Namespace: "shop", Pod: "web", ShareSet: true, Share: []string{"net"},
				Exited: true, Attempt: 2, Image: "netshoot:1", Reason: "INC-7"},
			want: "https://api:6443/apis/nodedebug.io/v1alpha1/namespaces/shop/pods/web/attach?" +
				"attempt=2&exited=true&image=netshoot%3A1&reason=INC-7&share=&share=net&stderr=true&stdin=false&stdout=true&tty=false",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.o.attachURL("https://api:6443")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.String()); diff != "" {
				t.Errorf("attach URL (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusMessage(t *testing.T) {
	apiServer := &metav1.StatusDetails{Group: "nodedebug.io", Kind: "pods", Name: "web"}
	gateway := &metav1.StatusDetails{Kind: "pods"}
	tests := []struct {
		name   string
		status metav1.Status
		want   string
	}{
		{name: "API server forbids", status: metav1.Status{Reason: metav1.StatusReasonForbidden, Message: "no", Details: apiServer},
			want: "no (nodedebug attach needs a binding to the ClusterRole nodedebug-user, and create on pods/exec)"},
		{name: "gateway forbids", status: metav1.Status{Reason: metav1.StatusReasonForbidden, Message: "no exec", Details: gateway},
			want: "no exec"},
		{name: "group not installed", status: metav1.Status{Reason: metav1.StatusReasonNotFound, Message: "not found"},
			want: "not found (is nodedebug installed in the cluster? see the README's cluster install)"},
		{name: "gateway: pod not found", status: metav1.Status{Reason: metav1.StatusReasonNotFound, Message: "pod shop/x not found", Details: gateway},
			want: "pod shop/x not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusMessage(tt.status); got != tt.want {
				t.Errorf("statusMessage = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestClusterModeRefusesNodeOnlyFlags(t *testing.T) {
	tests := []struct {
		name string
		o    AttachOptions
		ok   bool
	}{
		{name: "cluster, plain", o: AttachOptions{Kube: &KubeFlags{}}, ok: true},
		{name: "cluster, detach", o: AttachOptions{Kube: &KubeFlags{}, Detach: true}},
		{name: "cluster, session", o: AttachOptions{Kube: &KubeFlags{}, Session: "abc"}},
		{name: "cluster, custom", o: AttachOptions{Kube: &KubeFlags{}, CustomFile: "x.json"}},
		{name: "node, detach", o: AttachOptions{Kube: &KubeFlags{}, AgentSet: true, Detach: true}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.validateCluster()
			if tt.ok != (err == nil) {
				t.Fatalf("validateCluster = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
