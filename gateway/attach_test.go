package gateway

import (
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/nodedebug/nodedebug/api"
)

func TestParseAttach(t *testing.T) {
	const path = "/apis/nodedebug.io/v1alpha1/namespaces/shop/pods/web/attach"
	tests := []struct {
		name    string
		query   string
		want    *api.Start
		wantErr bool
	}{
		{
			name:  "kubectl exec parameters",
			query: "?command=sh&command=-c&command=exit+5&container=app&stdout=true&stderr=true",
			want: &api.Start{
				Target:  &api.Target{Namespace: "shop", Pod: "web", Container: "app", Attempt: -1},
				Command: []string{"sh", "-c", "exit 5"},
			},
		},
		{
			name:  "terminal, share none, exited attempt",
			query: "?stdin=1&stdout=1&tty=1&share=&exited=true&attempt=3&image=x:1&profile=general&reason=INC-7",
			want: &api.Start{
				Target: &api.Target{Namespace: "shop", Pod: "web", Exited: true, Attempt: 3},
				Stdin:  true, Tty: true, ShareSet: true, Image: "x:1", Profile: "general", Reason: "INC-7",
			},
		},
		{name: "no stream at all", query: "?command=true", wantErr: true},
		{name: "attempt not a number", query: "?stdout=1&attempt=x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", path+tt.query, nil)
			r.SetPathValue("namespace", "shop")
			r.SetPathValue("pod", "web")

			got, err := parseAttach(r, &user.DefaultInfo{Name: "alice"})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseAttach accepted %s", tt.query)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.start, protocmp.Transform()); diff != "" {
				t.Errorf("start (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRefusalNamesTheMissingPermission(t *testing.T) {
	target := &api.Target{Namespace: "shop", Pod: "web"}
	got := refusal(&user.DefaultInfo{Name: "carol"}, execAccess, target, "")
	want := `user "carol" may not create pods/exec on pod shop/web; nodedebug attach needs the same ` +
		`permission as kubectl exec: ask for a Role that allows create on pods/exec there`
	if got != want {
		t.Errorf("refusal:\n got %s\nwant %s", got, want)
	}
}
