package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseNSpid(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    int
		wantErr bool
	}{
		{name: "nested pid namespace", status: "Name:\tapp\nNSpid:\t4242\t7\nNSsid:\t1\n", want: 7},
		{name: "host pid namespace", status: "Name:\tinit\nNSpid:\t1\n", want: 1},
		{name: "no NSpid line", status: "Name:\tapp\n", wantErr: true},
		{name: "empty NSpid", status: "NSpid:\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNSpid(tt.status, 4242)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseNSpid = %d, %v; want %d (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// fakeRootfs lays out a tiny image: an executable, a data file, a symlinked
// applet and a link that points out of the rootfs.
func fakeRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mustMkdir(t, filepath.Join(root, "bin"))
	mustWrite(t, filepath.Join(root, "bin/busybox"), 0o755)
	mustWrite(t, filepath.Join(root, "bin/notes"), 0o644)
	must(t, os.Symlink("busybox", filepath.Join(root, "bin/sh")))
	must(t, os.Symlink("/bin/busybox", filepath.Join(root, "bin/abs")))

	// On the host this link would reach a real binary; inside the rootfs
	// it must resolve to a missing file.
	must(t, os.Symlink("../../../../../../usr/bin/env", filepath.Join(root, "bin/escape")))
	return root
}

func TestLookPath(t *testing.T) {
	root := fakeRootfs(t)
	env := []string{"PATH=/usr/bin:/bin"}

	tests := []struct {
		command  string
		wantCode int32
	}{
		{command: "sh"},
		{command: "abs"},
		{command: "/bin/busybox"},
		{command: "nosuch", wantCode: ExitNotFound},
		{command: "/bin/nosuch", wantCode: ExitNotFound},
		{command: "notes", wantCode: ExitCannotRun},
		{command: "/bin", wantCode: ExitCannotRun},
		{command: "escape", wantCode: ExitNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			err := lookPath(root, tt.command, env)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("lookPath: %v", err)
				}
				return
			}

			var cmdErr *CommandError
			if !errors.As(err, &cmdErr) || cmdErr.Code != tt.wantCode {
				t.Fatalf("lookPath error = %v, want exit code %d", err, tt.wantCode)
			}
		})
	}
}

func TestLinkTargetReplacesWhatTheImageHas(t *testing.T) {
	root := t.TempDir()
	mustMkdir(t, filepath.Join(root, "target", "sub"))

	if err := linkTarget(root, 13); err != nil {
		t.Fatal(err)
	}

	dest, err := os.Readlink(filepath.Join(root, "target"))
	if err != nil || dest != "/proc/13/root" {
		t.Fatalf("/target -> %q, %v", dest, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	must(t, os.MkdirAll(path, 0o755))
}

func mustWrite(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	must(t, os.WriteFile(path, []byte("x"), mode))
}

func TestLookPathLeavesTargetPathsToTheInit(t *testing.T) {
	root := fakeRootfs(t)
	for _, command := range []string{"/target/app", "/target", "/proc/1/root/app", "/target/../target/x"} {
		if err := lookPath(root, command, nil); err != nil {
			t.Errorf("lookPath(%q) = %v; the image cannot tell, the init must", command, err)
		}
	}
}
