package cli

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestAttachComplete(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		dashAt        int
		flagContainer string
		wantPod       string
		wantContainer string
		wantCommand   []string
		wantErr       string
	}{
		{name: "pod only", args: []string{"web"}, dashAt: -1, wantPod: "web"},
		{name: "pod and container", args: []string{"web/app", "ps"}, dashAt: 1, wantPod: "web", wantContainer: "app", wantCommand: []string{"ps"}},
		{name: "kubectl resource prefix", args: []string{"pod/web/app"}, dashAt: -1, wantPod: "web", wantContainer: "app"},
		{name: "-c names the container", args: []string{"web"}, dashAt: -1, flagContainer: "app", wantPod: "web", wantContainer: "app"},
		{name: "-c agrees with POD/CONTAINER", args: []string{"web/app"}, dashAt: -1, flagContainer: "app", wantPod: "web", wantContainer: "app"},
		{name: "-c disagrees", args: []string{"web/app"}, dashAt: -1, flagContainer: "side", wantErr: "name it once"},
		{name: "no pod", args: nil, dashAt: -1, wantErr: "needs a pod"},
		{name: "command without --", args: []string{"web", "ps"}, dashAt: -1, wantErr: "after --"},
		{name: "two targets", args: []string{"web", "api", "ps"}, dashAt: 2, wantErr: "one POD"},
		{name: "too many slashes", args: []string{"a/b/c"}, dashAt: -1, wantErr: "POD/CONTAINER"},
		{name: "empty pod", args: []string{"/app"}, dashAt: -1, wantErr: "names no pod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &AttachOptions{Container: tt.flagContainer, Namespace: "default", Attempt: -1}
			err := o.Complete(tt.args, tt.dashAt)
			if tt.wantErr != "" {
				var usage *UsageError
				if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Pod != tt.wantPod || o.Container != tt.wantContainer || !slices.Equal(o.Command, tt.wantCommand) {
				t.Fatalf("got pod %q container %q command %q", o.Pod, o.Container, o.Command)
			}
		})
	}
}

func TestAttachWithoutCommandIsInteractive(t *testing.T) {
	o := &AttachOptions{Namespace: "default", Attempt: -1, Streams: Streams{In: strings.NewReader("")}}
	if err := o.Complete([]string{"web"}, -1); err != nil {
		t.Fatal(err)
	}
	if !o.Stdin || o.TTY {
		t.Fatalf("stdin %v tty %v: want stdin and no terminal for a non-terminal stdin", o.Stdin, o.TTY)
	}
}

func TestAttachDetachedShellGetsATerminal(t *testing.T) {
	o := &AttachOptions{Namespace: "default", Attempt: -1, Detach: true, Streams: Streams{In: strings.NewReader("")}}
	if err := o.Complete([]string{"web"}, -1); err != nil {
		t.Fatal(err)
	}
	if !o.Stdin || !o.TTY || o.terminal() != nil {
		t.Fatalf("stdin %v tty %v: a detached shell needs stdin and a remote terminal only", o.Stdin, o.TTY)
	}
}

func TestAttachReattachTakesNoTarget(t *testing.T) {
	o := &AttachOptions{Namespace: "default", Attempt: -1, Session: "a1", Streams: Streams{In: strings.NewReader("")}}
	if err := o.Complete([]string{"web"}, -1); err == nil {
		t.Fatal("--session with a pod was accepted")
	}
	if err := o.Complete(nil, -1); err != nil || !o.Stdin {
		t.Fatalf("--session alone: %v, stdin %v", err, o.Stdin)
	}
}

func TestAttachValidate(t *testing.T) {
	tests := []struct {
		name string
		o    AttachOptions
		ok   bool
	}{
		{name: "defaults", o: AttachOptions{Namespace: "default", Attempt: -1}, ok: true},
		{name: "attempt with exited", o: AttachOptions{Namespace: "default", Attempt: 2, Exited: true}, ok: true},
		{name: "attempt without exited", o: AttachOptions{Namespace: "default", Attempt: 2}},
		{name: "empty namespace", o: AttachOptions{Attempt: -1}},
		{name: "unknown namespace kind", o: AttachOptions{Namespace: "default", Attempt: -1, Share: []string{"mnt"}}},
		{name: "detach and reattach at once", o: AttachOptions{Namespace: "default", Attempt: -1, Detach: true, Session: "a1"}},
		{name: "custom spec with args", o: AttachOptions{Namespace: "default", Attempt: -1, Custom: []byte(`{"args":["sh"]}`)}},
		{name: "custom spec", o: AttachOptions{Namespace: "default", Attempt: -1, Custom: []byte("user: {uid: 1}\n")}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{name: "success", ctx: context.Background(), want: 0},
		{name: "remote status passes through", ctx: context.Background(), err: &ExitError{Code: 5}, want: 5},
		{name: "remote signal", ctx: context.Background(), err: &ExitError{Code: 137}, want: 137},
		{name: "command not found", ctx: context.Background(), err: &ExitError{Code: 127}, want: 127},
		{name: "usage", ctx: context.Background(), err: usageError("bad"), want: ExitUsage},
		{name: "nodedebug failure", ctx: context.Background(), err: errors.New("agent down"), want: ExitFailure},
		{name: "interrupted", ctx: canceled, err: context.Canceled, want: 130},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.ctx, tt.err); got != tt.want {
				t.Fatalf("ExitCode = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCommandStringCannotDriveTheTerminal(t *testing.T) {
	got := commandString([]string{"sh", "-c", "printf '\x1b]0;PWNED\x07\x1b[2J'"})
	if strings.ContainsAny(got, "\x1b\x07") {
		t.Fatalf("control characters reach the terminal: %q", got)
	}
	if plain := commandString([]string{"ps", "aux"}); plain != "ps aux" {
		t.Fatalf("plain words got quoted: %q", plain)
	}
}

func TestAttemptRange(t *testing.T) {
	for _, attempt := range []int{-2, 1 << 40} {
		o := AttachOptions{Namespace: "default", Exited: true, Attempt: attempt}
		var usage *UsageError
		if err := o.Validate(); !errors.As(err, &usage) {
			t.Errorf("--attempt %d: got %v, want a usage error", attempt, err)
		}
	}
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	var stderr strings.Builder
	code := Run(context.Background(), []string{"bogus"}, Streams{In: strings.NewReader(""), Out: io.Discard, ErrOut: &stderr})
	if code != ExitUsage || !strings.Contains(stderr.String(), `unknown command "bogus"`) {
		t.Fatalf("exit %d, stderr %q; want %d and the unknown command named", code, stderr.String(), ExitUsage)
	}
}

func TestVersionNamesTheBuild(t *testing.T) {
	var stdout strings.Builder
	code := Run(context.Background(), []string{"version"}, Streams{In: strings.NewReader(""), Out: &stdout, ErrOut: io.Discard})
	if code != 0 || !strings.HasPrefix(stdout.String(), "nodedebug ") {
		t.Fatalf("version: exit %d, %q", code, stdout.String())
	}
}
