package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodedebug/nodedebug/test/harness"
	"github.com/nodedebug/nodedebug/test/images"
)

// cp runs `nodedebug cp` against the suite's agent.
func (s *suite) cp(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	return s.run(t, stdin, append([]string{"cp", "--agent", s.agentEndpoint(), "-n", podNamespace}, args...)...)
}

// edit runs `nodedebug edit` with a scripted editor.
func (s *suite) edit(t *testing.T, script string, args ...string) result {
	t.Helper()
	return s.editWith(t, s.agentEndpoint(), script, args...)
}

// editWith runs `nodedebug edit` against the agent at endpoint.
func (s *suite) editWith(t *testing.T, endpoint, script string, args ...string) result {
	t.Helper()
	editor := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nset -e\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, s.binary, append([]string{"edit", "--agent", endpoint,
		"-n", podNamespace}, args...)...)
	// A private TMPDIR: a refused edit keeps the user's copy there.
	cmd.Env = append(os.Environ(), "EDITOR="+editor, "TMPDIR="+t.TempDir())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	return result{stdout: stdout.Bytes(), stderr: stderr.Bytes(), code: cmd.ProcessState.ExitCode()}
}

// sh runs a toolbox shell command next to the target, failing the test
// unless it exits 0.
func (s *suite) sh(t *testing.T, target, script string) string {
	t.Helper()
	r := s.attach(t, nil, target, "--", "sh", "-c", script)
	requireCode(t, r, 0)
	return string(r.stdout)
}

func TestAttachExitedReadsWhatTheCrashLeft(t *testing.T) {
	s := env(t)
	pod := s.crashedPod(t)
	before := s.podState(t, pod)

	r := s.attach(t, nil, "--exited", pod.Spec.Name, "--", "cat", "/target"+images.TargetErrorFile)
	requireCode(t, r, 0)
	if string(r.stdout) != images.TargetCrashMessage {
		t.Fatalf("cat %s in the exited container = %q", images.TargetErrorFile, r.stdout)
	}

	r = s.attach(t, nil, "--exited", "--attempt", "0", pod.Spec.Name, "--",
		"sh", "-c", "echo x > /target/tmp/new || touch /target/app")
	if r.code == 0 || !bytes.Contains(r.stderr, []byte("Read-only file system")) {
		t.Fatalf("want writes under /target to fail read-only, got %s", r)
	}

	if after := s.podState(t, pod); after != before {
		t.Fatalf("attach --exited changed the pod: before %s, after %s", before, after)
	}
	s.requireNoToolContainers(t, 10*time.Second)
}

func TestCopyOutOfExitedContainer(t *testing.T) {
	s := env(t)
	pod := s.crashedPod(t)
	local := filepath.Join(t.TempDir(), "last-error")

	r := s.cp(t, nil, "--exited", pod.Spec.Name+":"+images.TargetErrorFile, local)
	requireCode(t, r, 0)
	if data, err := os.ReadFile(local); err != nil || string(data) != images.TargetCrashMessage {
		t.Fatalf("copied crash file = %q, %v", data, err)
	}
}

func TestCopyOutKeepsSymlinksAsLinksAndNoNodeFile(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	s.sh(t, pod.Spec.Name, `cd /target/tmp && mkdir d && printf hi > d/f && chmod 640 d/f &&
		ln -s /etc/shadow d/shadow && ln -s ../../.. d/up && chown -R 65532:65532 d`)

	local := filepath.Join(t.TempDir(), "out")
	r := s.cp(t, nil, pod.Spec.Name+":/tmp/d", local)
	requireCode(t, r, 0)
	if len(r.stdout)+len(r.stderr) != 0 {
		t.Fatalf("a piped copy must print nothing, got %s", r)
	}

	requireLink(t, filepath.Join(local, "shadow"), "/etc/shadow")
	requireLink(t, filepath.Join(local, "up"), "../../..")
	requireFile(t, filepath.Join(local, "f"), "hi", 0o640, 65532)

	entries, _ := os.ReadDir(local)
	if len(entries) != 3 {
		t.Fatalf("the copy holds %d entries, want f, shadow and up: %v", len(entries), entries)
	}
}

func TestCopyOutToStdoutIsATar(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := s.cp(t, nil, pod.Spec.Name+":/etc", "-")
	requireCode(t, r, 0)

	cmd := exec.Command("tar", "-tf", "-")
	cmd.Stdin = bytes.NewReader(r.stdout)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "etc/app.conf") {
		t.Fatalf("tar -t of the stream: %q, %v", out, err)
	}
}

func TestCopyInThroughSymlinkToRootStaysInTarget(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	s.sh(t, pod.Spec.Name, "ln -s / /target/tmp/root")

	name := uniqueName("nodedebug-escape")
	src := filepath.Join(t.TempDir(), "in")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "x"), []byte("copied in\n"), 0o604); err != nil {
		t.Fatal(err)
	}

	r := s.cp(t, nil, src, pod.Spec.Name+":/tmp/root/tmp/"+name)
	requireCode(t, r, 0)

	if _, err := os.Lstat("/tmp/" + name); err == nil {
		os.RemoveAll("/tmp/" + name)
		t.Fatalf("the copy reached the node's /tmp/%s", name)
	}
	got := s.sh(t, pod.Spec.Name, "cat /target/tmp/"+name+"/sub/x; stat -c '%a %u' /target/tmp/"+name+"/sub /target/tmp/"+name+"/sub/x")
	if want := "copied in\n750 0\n604 0\n"; got != want {
		t.Fatalf("in the target: %q, want %q", got, want)
	}
}

func TestEditChangesOneLineKeepsModeAndSignals(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	statBefore := s.sh(t, pod.Spec.Name, "stat -c '%a %u %g' /target/etc/app.conf")

	r := s.edit(t, `sed -i 's/^level=info$/level=debug/' "$1"`, pod.Spec.Name+":/etc/app.conf", "--signal", "HUP")
	requireCode(t, r, 0)
	if !bytes.Contains(r.stdout, []byte("sent SIGHUP")) {
		t.Fatalf("edit does not report the signal: %s", r)
	}

	want := strings.Replace(appConf, "level=info", "level=debug", 1)
	if got := s.sh(t, pod.Spec.Name, "cat /target/etc/app.conf"); got != want {
		t.Fatalf("app.conf after edit = %q, want %q", got, want)
	}
	if after := s.sh(t, pod.Spec.Name, "stat -c '%a %u %g' /target/etc/app.conf"); after != statBefore {
		t.Fatalf("mode and owner changed: %q, was %q", after, statBefore)
	}
	s.waitForLog(t, pod, "app", fmt.Sprintf("reloaded config: %d bytes", len(want)))
}

func TestEditSingleFileBindMountKeepsInode(t *testing.T) {
	s := env(t)
	hostFile := filepath.Join(t.TempDir(), "bound.conf")
	if err := os.WriteFile(hostFile, []byte("a=1\r\nb=2"), 0o644); err != nil {
		t.Fatal(err)
	}
	inode := inodeOf(t, hostFile)

	app := s.targetContainer("app")
	app.Mounts = []harness.Mount{{HostPath: hostFile, ContainerPath: "/etc/bound.conf"}}
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{app}})

	r := s.edit(t, `sed -i 's/a=1/a=2/' "$1"`, pod.Spec.Name+":/etc/bound.conf")
	requireCode(t, r, 0)
	if !bytes.Contains(r.stdout, []byte("in place")) {
		t.Fatalf("edit of a mount point does not say it wrote in place: %s", r)
	}

	if data, _ := os.ReadFile(hostFile); string(data) != "a=2\r\nb=2" {
		t.Fatalf("host file after edit = %q (line endings and the missing final newline must stay)", data)
	}
	if got := inodeOf(t, hostFile); got != inode {
		t.Fatalf("the node's file has a new inode %d, was %d", got, inode)
	}
}

func TestEditRefusesFileChangedMeanwhile(t *testing.T) {
	s := env(t)
	hostFile := filepath.Join(t.TempDir(), "bound.conf")
	if err := os.WriteFile(hostFile, []byte("a=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	app := s.targetContainer("app")
	app.Mounts = []harness.Mount{{HostPath: hostFile, ContainerPath: "/etc/bound.conf"}}
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{app}})

	// The editor changes the file in the container behind the user's back.
	r := s.edit(t, `echo other=1 >> `+hostFile+`; sed -i 's/a=1/a=2/' "$1"`, pod.Spec.Name+":/etc/bound.conf")
	requireCode(t, r, exitFailure)
	if !bytes.Contains(r.stderr, []byte("changed since it was read")) {
		t.Fatalf("want a refusal that names the change, got %s", r)
	}
	if data, _ := os.ReadFile(hostFile); string(data) != "a=1\nother=1\n" {
		t.Fatalf("the file was overwritten: %q", data)
	}
}

func TestCopyAndEditBadInputChangeNothing(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	ro := s.targetContainer("app")
	ro.ReadOnlyRootfs = true
	roPod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{ro}})
	crashed := s.crashedPod(t)
	local := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(local, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := pod.Spec.Name

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "edit path not found", args: []string{"edit", name + ":/etc/nope.conf"}, code: exitFailure,
			want: "no such file or directory; check the path"},
		{name: "edit a folder", args: []string{"edit", name + ":/etc"}, code: exitFailure,
			want: "is not a regular file"},
		{name: "edit read-only rootfs", args: []string{"edit", roPod.Spec.Name + ":/etc/app.conf"}, code: exitFailure,
			want: "read-only file system"},
		{name: "edit exited container", args: []string{"edit", crashed.Spec.Name + ":/etc/app.conf"}, code: exitFailure,
			want: "is exited: nothing was written"},
		{name: "cp into exited container", args: []string{"cp", "--exited", local, crashed.Spec.Name + ":/tmp/f"}, code: 2,
			want: "an exited container cannot be written to"},
		{name: "cp out path not found", args: []string{"cp", name + ":/nope", t.TempDir() + "/x"}, code: exitFailure,
			want: "no such file or directory"},
		{name: "cp relative remote path", args: []string{"cp", name + ":etc", "x"}, code: 2,
			want: "must be absolute"},
		{name: "cp into read-only rootfs", args: []string{"cp", local, roPod.Spec.Name + ":/etc/f"}, code: exitFailure,
			want: "read-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.podState(t, pod) + s.podState(t, roPod) + s.podState(t, crashed)
			var r result
			if tt.args[0] == "edit" {
				r = s.edit(t, `echo changed >> "$1"`, tt.args[1:]...)
			} else {
				r = s.cp(t, nil, tt.args[1:]...)
			}
			requireCode(t, r, tt.code)
			requireOneLineError(t, r, tt.want)

			if after := s.podState(t, pod) + s.podState(t, roPod) + s.podState(t, crashed); after != before {
				t.Fatalf("a pod changed: before %s, after %s", before, after)
			}
		})
	}
	if got := s.sh(t, roPod.Spec.Name, "cat /target/etc/app.conf"); got != appConf {
		t.Fatalf("app.conf of the read-only pod changed: %q", got)
	}
}

func requireLink(t *testing.T, p, want string) {
	t.Helper()
	got, err := os.Readlink(p)
	if err != nil || got != want {
		t.Fatalf("%s: want a symlink to %q, got %q, %v", p, want, got, err)
	}
}

func requireFile(t *testing.T, p, content string, mode os.FileMode, uid uint32) {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil || !info.Mode().IsRegular() {
		t.Fatalf("%s: want a regular file, got %v, %v", p, info, err)
	}
	if info.Mode().Perm() != mode || info.Sys().(*syscall.Stat_t).Uid != uid {
		t.Fatalf("%s: mode %v owner %d, want %v and %d", p, info.Mode().Perm(),
			info.Sys().(*syscall.Stat_t).Uid, mode, uid)
	}
	if data, _ := os.ReadFile(p); string(data) != content {
		t.Fatalf("%s holds %q, want %q", p, data, content)
	}
}

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

// waitForLog waits until the container's log, where kubelet would keep it,
// holds want.
func (s *suite) waitForLog(t *testing.T, pod *harness.Pod, container, want string) {
	t.Helper()
	logFile := filepath.Join(s.containerd.Dir, "pods",
		fmt.Sprintf("%s_%s_%s", pod.Spec.Namespace, pod.Spec.Name, pod.Spec.UID), container, "0.log")

	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(logFile)
		if bytes.Contains(data, []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s does not say %q:\n%s", logFile, want, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCopyLargeFileBothWays checks a big copy byte for byte, prints no
// progress when piped, and logs the throughput.
func TestCopyLargeFileBothWays(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	data := make([]byte, 64<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r := s.cp(t, nil, big, pod.Spec.Name+":/tmp/big")
	requireCode(t, r, 0)
	in := time.Since(start)

	start = time.Now()
	r = s.cp(t, nil, pod.Spec.Name+":/tmp/big", filepath.Join(dir, "back"))
	requireCode(t, r, 0)
	out := time.Since(start)
	if len(r.stdout)+len(r.stderr) != 0 {
		t.Fatalf("a piped copy must print nothing, got %s", r)
	}

	back, err := os.ReadFile(filepath.Join(dir, "back"))
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("the file came back different (%d bytes, %v)", len(back), err)
	}
	t.Logf("64 MiB in: %s (%.0f MiB/s), out: %s (%.0f MiB/s)", in, 64/in.Seconds(), out, 64/out.Seconds())
}
