package cli

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCopyOptionsComplete(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		want  CopyOptions
		usage bool
	}{
		{name: "out", args: []string{"web:/etc/app.conf", "./app.conf"},
			want: CopyOptions{Namespace: "default", Pod: "web", RemotePath: "/etc/app.conf", LocalPath: "./app.conf", Attempt: -1}},
		{name: "in with namespace", args: []string{"-", "prod/web:/tmp"},
			want: CopyOptions{Namespace: "prod", Pod: "web", RemotePath: "/tmp", LocalPath: "-", ToTarget: true, Attempt: -1}},
		{name: "local path with colon", args: []string{"./a:b", "web:/tmp"},
			want: CopyOptions{Namespace: "default", Pod: "web", RemotePath: "/tmp", LocalPath: "./a:b", ToTarget: true, Attempt: -1}},
		{name: "two pods", args: []string{"a:/x", "b:/y"}, usage: true},
		{name: "no pod", args: []string{"a", "b"}, usage: true},
		{name: "relative remote", args: []string{"web:etc", "x"}, usage: true},
		{name: "one arg", args: []string{"web:/etc"}, usage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := CopyOptions{Namespace: "default", Attempt: -1}
			err := o.Complete(tt.args)
			if err == nil {
				err = o.Validate()
			}

			var usage *UsageError
			if tt.usage {
				if !errors.As(err, &usage) {
					t.Fatalf("want a usage error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, o, cmp.AllowUnexported(CopyOptions{})); diff != "" {
				t.Fatalf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCopyInToExitedIsAUsageError(t *testing.T) {
	o := CopyOptions{Namespace: "default", Exited: true, Attempt: -1}
	if err := o.Complete([]string{"x", "web:/tmp"}); err != nil {
		t.Fatal(err)
	}
	var usage *UsageError
	if err := o.Validate(); !errors.As(err, &usage) {
		t.Fatalf("want a usage error, got %v", err)
	}
}

func TestEditValidateSignal(t *testing.T) {
	for sig, ok := range map[string]bool{"HUP": true, "sigusr1": true, "15": true, "NOPE": false, "99": false} {
		o := EditOptions{Namespace: "default", Editor: "vi"}
		if err := o.Complete([]string{"web:/etc/app.conf"}); err != nil {
			t.Fatal(err)
		}
		o.Signal = sig
		if err := o.Validate(); (err == nil) != ok {
			t.Errorf("--signal %s: got %v", sig, err)
		}
	}
}
