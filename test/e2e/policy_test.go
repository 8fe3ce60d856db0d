package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/go-cmp/cmp"

	"github.com/nodedebug/nodedebug/agent"
	"github.com/nodedebug/nodedebug/test/harness"
)

// policyAgent is a path agent started with a policy file and an audit
// log of its own; the shared agent keeps the defaults.
type policyAgent struct {
	*pathAgent
	suite *suite
	audit string
}

// startPolicyAgent starts an agent with config as its --config file and
// stops it when the test ends.
func (s *suite) startPolicyAgent(t *testing.T, config string, extra ...string) *policyAgent {
	t.Helper()
	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	audit := filepath.Join(dir, "audit.log")
	// The later --audit-log wins over the shared agent's.
	flags := append([]string{"--config", configPath, "--audit-log", audit}, extra...)
	agent := s.startPathAgent(t, uniqueName("policy"), flags...)
	return &policyAgent{pathAgent: agent, suite: s, audit: audit}
}

func (a *policyAgent) attach(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	return a.suite.run(t, stdin, append([]string{"attach", "--agent", a.endpoint, "-n", podNamespace}, args...)...)
}

// records reads the agent's audit log.
func (a *policyAgent) records(t *testing.T) []agent.AuditRecord {
	t.Helper()
	return readAuditLog(t, a.audit)
}

// readAuditLog reads an audit log, failing on any line that is not one
// complete audit record.
func readAuditLog(t *testing.T, path string) []agent.AuditRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var records []agent.AuditRecord
	for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec agent.AuditRecord
		decoder := json.NewDecoder(bytes.NewReader(line))
		decoder.DisallowUnknownFields()
		if err := decoder.Decode(&rec); err != nil {
			t.Fatalf("audit line %d is not one audit record: %v\n%s", i+1, err, line)
		}
		records = append(records, rec)
	}
	return records
}

func requireStderr(t *testing.T, r result, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(string(r.stderr), w) {
			t.Fatalf("want %q in stderr, got %s", w, r)
		}
	}
}

// procStatus reads fields of /proc/self/status as printed in a tool
// container.
func procStatus(t *testing.T, out []byte) map[string]string {
	t.Helper()
	fields := map[string]string{}
	scanner := bufio.NewScanner(bytes.NewReader(out))
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), ":")
		if ok {
			fields[key] = strings.TrimSpace(value)
		}
	}
	return fields
}

// capMask is the hex capability set /proc/<pid>/status shows.
func capMask(t *testing.T, caps ...int) string {
	t.Helper()
	var mask uint64
	for _, c := range caps {
		mask |= 1 << c
	}
	return fmt.Sprintf("%016x", mask)
}

// Capability numbers from linux/capability.h.
const (
	capChown          = 0
	capDacOverride    = 1
	capFowner         = 3
	capFsetid         = 4
	capKill           = 5
	capSetgid         = 6
	capSetuid         = 7
	capSetpcap        = 8
	capNetBindService = 10
	capNetAdmin       = 12
	capNetRaw         = 13
	capSysChroot      = 18
	capSysPtrace      = 19
	capMknod          = 27
	capAuditWrite     = 29
	capSetfcap        = 31
)

// defaultCaps are containerd's default capabilities.
var defaultCaps = []int{capChown, capDacOverride, capFsetid, capFowner, capMknod, capNetRaw, capSetgid,
	capSetuid, capSetfcap, capSetpcap, capNetBindService, capSysChroot, capKill, capAuditWrite}

// hostCapBnd is the bounding set of this root test process: everything the
// kernel knows, which a privileged tool container gets.
func hostCapBnd(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	return procStatus(t, data)["CapBnd"]
}

func TestProfilesAsSeenFromInsideTheToolContainer(t *testing.T) {
	s := env(t)
	a := s.startPolicyAgent(t, "allowedProfiles: [general, baseline, restricted, netadmin, sysadmin]\nallowCustom: true\n")
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	custom := filepath.Join(t.TempDir(), "custom.yaml")
	if err := os.WriteFile(custom, []byte("user: {uid: 1000, gid: 1000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		flags  []string
		uid    string
		capEff string
		// noNewPrivs and seccomp are checked when not empty.
		noNewPrivs string
		seccomp    string
	}{
		{name: "general", flags: []string{"--profile", "general"}, uid: "0",
			capEff: capMask(t, append(defaultCaps, capSysPtrace)...), noNewPrivs: "1"},
		{name: "baseline", flags: []string{"--profile", "baseline"}, uid: "0",
			capEff: capMask(t, defaultCaps...), noNewPrivs: "1"},
		{name: "restricted", flags: []string{"--profile", "restricted"}, uid: "65534",
			capEff: capMask(t), noNewPrivs: "1", seccomp: "2"},
		{name: "netadmin", flags: []string{"--profile", "netadmin"}, uid: "0",
			capEff: capMask(t, append(defaultCaps, capSysPtrace, capNetAdmin)...), noNewPrivs: "1"},
		{name: "sysadmin", flags: []string{"--profile", "sysadmin"}, uid: "0",
			capEff: hostCapBnd(t), noNewPrivs: "0", seccomp: "0"},
		{name: "custom user over general", flags: []string{"--custom", custom}, uid: "1000",
			capEff: capMask(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{}, tt.flags...), pod.Spec.Name, "--", "cat", "/proc/self/status")
			r := a.attach(t, nil, args...)
			requireCode(t, r, 0)

			status := procStatus(t, r.stdout)
			if uid := strings.Fields(status["Uid"]); len(uid) == 0 || uid[0] != tt.uid {
				t.Errorf("Uid = %q, want %s", status["Uid"], tt.uid)
			}
			if status["CapEff"] != tt.capEff {
				t.Errorf("CapEff = %s, want %s", status["CapEff"], tt.capEff)
			}
			if tt.noNewPrivs != "" && status["NoNewPrivs"] != tt.noNewPrivs {
				t.Errorf("NoNewPrivs = %s, want %s", status["NoNewPrivs"], tt.noNewPrivs)
			}
			if tt.seccomp != "" && status["Seccomp"] != tt.seccomp {
				t.Errorf("Seccomp = %s, want %s", status["Seccomp"], tt.seccomp)
			}
		})
	}

	// The audit log says what --custom granted, not only that it was used.
	want := &agent.AuditCustom{User: agent.AuditIDs{UID: 1000, GID: 1000}}
	var customs int
	for _, rec := range a.records(t) {
		if rec.Custom != nil {
			customs++
			if diff := cmp.Diff(want, rec.Custom); diff != "" {
				t.Errorf("%s: custom grant (-want +got):\n%s", rec.Event, diff)
			}
		}
	}
	if customs != 2 {
		t.Errorf("%d audit records tell a custom grant, want the start and the end", customs)
	}
}

func TestBaselineProfileSaysWhichProfileReadsTarget(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := s.attach(t, nil, "--profile", "baseline", pod.Spec.Name, "--", "cat", "/target/etc/app.conf")
	if r.code == 0 {
		t.Fatalf("baseline read /target of a uid 65532 target without CAP_SYS_PTRACE: %s", r)
	}
	requireStderr(t, r, "profile baseline cannot read /target", "uid 65532", "--profile general can")
}

func TestPolicyDenialsAreClearAndAudited(t *testing.T) {
	s := env(t)
	a := s.startPolicyAgent(t, "allowedProfiles: [general]\nallowedImages: []\nrequireReason: true\n")
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	tests := []struct {
		name string
		args []string
		rule string
		want []string
	}{
		{name: "profile", rule: "profile",
			args: []string{"--reason", "r", "--profile", "sysadmin", pod.Spec.Name, "--", "true"},
			want: []string{"profile sysadmin is not allowed", "(allowedProfiles); allowed: general"}},
		{name: "image", rule: "allowedImages",
			args: []string{"--reason", "r", "--image", s.images.Target.Ref, pod.Spec.Name, "--", "true"},
			want: []string{"image " + s.images.Target.Ref, "(allowedImages); allowed: the toolbox, none"}},
		{name: "namespace", rule: "deniedNamespaces",
			args: []string{"--reason", "r", "-n", "kube-system", "coredns", "--", "true"},
			want: []string{"namespace kube-system may not be debugged", "deniedNamespaces: kube-system, nodedebug"}},
		{name: "no reason", rule: "requireReason",
			args: []string{pod.Spec.Name, "--", "true"},
			want: []string{"requires a reason", "--reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.attach(t, nil, tt.args...)
			requireCode(t, r, exitFailure)
			requireStderr(t, r, tt.want...)

			records := a.records(t)
			last := records[len(records)-1]
			if last.Event != "session.denied" || last.Rule != tt.rule || last.Outcome != "denied" {
				t.Fatalf("last audit record is %+v, want a denial by %s", last, tt.rule)
			}
		})
	}
	s.requireNoToolContainers(t, 10*time.Second)
}

func TestSessionOverLimitsEndsAndLeavesNothing(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	tests := []struct {
		name    string
		config  string
		outcome string
		want    string
	}{
		{name: "maximum length", config: "maxSessionLength: 2s\n", outcome: "timeout",
			want: "reached its maximum length of 2s (agent policy maxSessionLength)"},
		{name: "idle", config: "idleTimeout: 2s\n", outcome: "idle",
			want: "was idle for 2s (agent policy idleTimeout)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := s.startPolicyAgent(t, tt.config)

			began := time.Now()
			// Output keeps the session busy but not past its length; the
			// idle case prints nothing.
			script := "sleep 60"
			if tt.outcome == "timeout" {
				script = "while true; do echo tick; sleep 0.5; done"
			}
			r := a.attach(t, nil, pod.Spec.Name, "--", "sh", "-c", script)
			requireCode(t, r, exitFailure)
			requireStderr(t, r, tt.want, "its tool container was removed")
			if took := time.Since(began); took > 20*time.Second {
				t.Fatalf("the session ended after %s", took)
			}

			s.requireNoToolContainers(t, 10*time.Second)
			records := a.records(t)
			if last := records[len(records)-1]; last.Event != "session.end" || last.Outcome != tt.outcome {
				t.Fatalf("last audit record is %+v, want the end with outcome %s", last, tt.outcome)
			}
		})
	}
}

// ttySession is an attach running on a terminal.
type ttySession struct {
	cmd      *exec.Cmd
	screen   *screen
	terminal *os.File
	done     chan struct{}
}

func (a *policyAgent) startTTY(t *testing.T, args ...string) *ttySession {
	t.Helper()
	cmd := exec.Command(a.suite.binary, append([]string{"attach", "--agent", a.endpoint, "-n", podNamespace, "-it"},
		args...)...)
	terminal, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	session := &ttySession{cmd: cmd, screen: newScreen(terminal), terminal: terminal, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(session.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-session.done
		terminal.Close()
	})
	return session
}

// waitSession waits until `nodedebug sessions` lists one session for pod,
// and returns its row's fields.
func (a *policyAgent) waitSession(t *testing.T, pod string) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := a.suite.run(t, nil, "sessions", "--agent", a.endpoint)
		requireCode(t, r, 0)
		for _, line := range strings.Split(string(r.stdout), "\n") {
			if strings.Contains(line, podNamespace+"/"+pod+"/") {
				return strings.Fields(line)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodedebug sessions never listed pod %s: %s", pod, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestConcurrencyCapListAndKillWithTTY(t *testing.T) {
	s := env(t)
	a := s.startPolicyAgent(t, "maxConcurrentSessions: 1\n")
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	first := a.startTTY(t, "--reason", "incident 7", "--profile", "restricted", pod.Spec.Name, "--", "sh")
	row := a.waitSession(t, pod.Spec.Name)
	// SESSION "uid" "0" "(pid" "N)" TARGET AGE PROFILE CLIENT COMMAND
	if len(row) < 10 || row[1] != "uid" || row[2] != strconv.Itoa(os.Getuid()) || row[7] != "restricted" ||
		row[8] != "attached" || row[9] != "sh" {
		t.Fatalf("sessions row = %q, want this test's uid, profile restricted and sh", row)
	}

	busy := a.attach(t, nil, pod.Spec.Name, "--", "true")
	requireCode(t, busy, exitFailure)
	requireStderr(t, busy, "agent busy: 1 of 1 sessions", "maxConcurrentSessions")

	killed := s.run(t, nil, "kill", "--agent", a.endpoint, row[0])
	requireCode(t, killed, 0)
	select {
	case <-first.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the killed session's client is still running")
	}
	if code := first.cmd.ProcessState.ExitCode(); code != exitFailure {
		t.Fatalf("killed session exited %d, want %d", code, exitFailure)
	}
	first.screen.waitFor(t, "was killed by uid")
	s.requireNoToolContainers(t, 10*time.Second)

	records := a.records(t)
	end := records[len(records)-1]
	if end.Event != "session.end" || end.Outcome != "killed" || end.KilledBy == nil ||
		end.KilledBy.UID != uint32(os.Getuid()) || end.KilledBy.PID <= 0 || end.KilledBy.PID == end.User.PID {
		t.Errorf("killed session's end record %+v (killedBy %+v), want who killed it", end, end.KilledBy)
	}

	unknown := s.run(t, nil, "kill", "--agent", a.endpoint, row[0])
	requireCode(t, unknown, exitFailure)
	requireStderr(t, unknown, "is not running on this node")
}

func TestAuditRecordsOneJSONLinePerEvent(t *testing.T) {
	s := env(t)
	a := s.startPolicyAgent(t, "{}\n")
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := a.attach(t, strings.NewReader("hello"), "-i", "--reason", "ticket 42", pod.Spec.Name+"/app",
		"--", "sh", "-c", "cat; exit 3")
	requireCode(t, r, 3)

	records := a.records(t)
	if len(records) != 2 || records[0].Event != "session.start" || records[1].Event != "session.end" {
		t.Fatalf("want a start and an end record, got %+v", records)
	}
	for _, rec := range records {
		requireCommonAuditFields(t, rec, pod.Spec.Name)
	}

	end := records[1]
	if end.ExitCode == nil || *end.ExitCode != 3 || end.Outcome != "exited" {
		t.Errorf("end record: exit code %v, outcome %q; want 3, exited", end.ExitCode, end.Outcome)
	}
	if end.BytesIn != 5 || end.BytesOut != 5 {
		t.Errorf("end record: %d bytes in, %d out; want 5 and 5", end.BytesIn, end.BytesOut)
	}
	if end.DurationSeconds == nil || *end.DurationSeconds <= 0 {
		t.Errorf("end record has no duration: %v", end.DurationSeconds)
	}
}

func requireCommonAuditFields(t *testing.T, rec agent.AuditRecord, pod string) {
	t.Helper()
	switch {
	case rec.User.UID != uint32(os.Getuid()) || rec.User.PID <= 0:
		t.Errorf("%s: user %+v, want uid %d and the client's pid", rec.Event, rec.User, os.Getuid())
	case rec.Reason != "ticket 42":
		t.Errorf("%s: reason %q", rec.Event, rec.Reason)
	case rec.Target.Namespace != podNamespace || rec.Target.Pod != pod || rec.Target.Container != "app" ||
		rec.Target.ContainerID == "":
		t.Errorf("%s: target %+v", rec.Event, rec.Target)
	case rec.Image == "" || !strings.HasPrefix(rec.ImageDigest, "sha256:"):
		t.Errorf("%s: image %q digest %q", rec.Event, rec.Image, rec.ImageDigest)
	case rec.Profile != "general" || strings.Join(rec.Command, " ") != "sh -c cat; exit 3":
		t.Errorf("%s: profile %q command %q", rec.Event, rec.Profile, rec.Command)
	case rec.Session == "" || rec.Start.IsZero() || rec.Time.Before(rec.Start):
		t.Errorf("%s: session %q start %v time %v", rec.Event, rec.Session, rec.Start, rec.Time)
	}
}

// freeLoopbackPort finds a port on 127.0.0.1 nobody listens on now.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func TestMetricsAfterSession(t *testing.T) {
	s := env(t)
	port := freeLoopbackPort(t)
	a := s.startPolicyAgent(t, "allowedProfiles: [general]\n", "--metrics-listen", ":"+port)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	requireCode(t, a.attach(t, nil, pod.Spec.Name, "--", "echo", "hi"), 0)
	requireCode(t, a.attach(t, nil, "--profile", "sysadmin", pod.Spec.Name, "--", "true"), exitFailure)

	resp, err := http.Get("http://127.0.0.1:" + port + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}

	for _, want := range []string{
		`nodedebug_sessions_started_total{profile="general"} 1`,
		`nodedebug_sessions_active{profile="general"} 0`,
		`nodedebug_sessions_ended_total{outcome="exited",profile="general"} 1`,
		`nodedebug_sessions_ended_total{outcome="denied",profile="sysadmin"} 1`,
		`nodedebug_attach_latency_seconds_count 1`,
		`nodedebug_streamed_bytes_total{direction="out"} 3`,
		`nodedebug_denials_total{reason="profile"} 1`,
	} {
		if !bytes.Contains(body, []byte(want+"\n")) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}

// reattachTTY runs `attach --session ID` on a terminal of the given size.
func (a *policyAgent) reattachTTY(t *testing.T, id string, rows, cols uint16) *ttySession {
	t.Helper()
	cmd := exec.Command(a.suite.binary, "attach", "--agent", a.endpoint, "--session", id)
	terminal, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	session := &ttySession{cmd: cmd, screen: newScreen(terminal), terminal: terminal, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(session.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-session.done
		terminal.Close()
	})
	return session
}

// waitClient waits until `nodedebug sessions` shows the session's client
// in state ("attached" or "detached").
func (a *policyAgent) waitClient(t *testing.T, id, state string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := a.suite.run(t, nil, "sessions", "--agent", a.endpoint)
		for _, line := range strings.Split(string(r.stdout), "\n") {
			if fields := strings.Fields(line); len(fields) > 8 && fields[0] == id && fields[8] == state {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s never showed as %s: %s", id, state, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDetachListReattachKillWithTTY(t *testing.T) {
	s := env(t)
	a := s.startPolicyAgent(t, "{}\n")
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := a.attach(t, nil, "--detach", pod.Spec.Name)
	requireCode(t, r, 0)
	fields := strings.Fields(string(r.stdout))
	if len(fields) < 2 || fields[0] != "session" || !strings.Contains(string(r.stdout), "--session "+fields[1]) {
		t.Fatalf("attach --detach should print the session id and how to reattach: %s", r)
	}
	id := fields[1]
	a.waitClient(t, id, "detached")

	// The first client sets a shell variable and leaves by dying.
	first := a.reattachTTY(t, id, 30, 100)
	fmt.Fprint(first.terminal, "KEPT=yes; stty size\r")
	first.screen.waitFor(t, "30 100")
	a.waitClient(t, id, "attached")
	_ = first.cmd.Process.Kill()
	<-first.done
	a.waitClient(t, id, "detached")

	// The second client finds the same shell, on its own terminal size.
	second := a.reattachTTY(t, id, 41, 123)
	fmt.Fprint(second.terminal, "echo kept=$KEPT; stty size\r")
	second.screen.waitFor(t, "kept=yes")
	second.screen.waitFor(t, "41 123")

	requireCode(t, s.run(t, nil, "kill", "--agent", a.endpoint, id), 0)
	select {
	case <-second.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the reattached client kept running after kill")
	}
	if code := second.cmd.ProcessState.ExitCode(); code != exitFailure {
		t.Fatalf("reattached client of a killed session exited %d, want %d", code, exitFailure)
	}
	second.screen.waitFor(t, "was killed by uid")
	s.requireNoToolContainers(t, 10*time.Second)

	var events []string
	for _, rec := range a.records(t) {
		events = append(events, rec.Event+":"+rec.Outcome)
	}
	want := "session.start: session.attach: session.attach: session.end:killed"
	if got := strings.Join(events, " "); got != want {
		t.Fatalf("audit events %q, want %q", got, want)
	}
}

func TestNoAuditRecordNoSession(t *testing.T) {
	s := env(t)
	// Every write to /dev/full fails with ENOSPC, as on a full disk.
	a := s.startPolicyAgent(t, "{}\n", "--audit-log", "/dev/full")
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := a.attach(t, nil, pod.Spec.Name, "--", "touch", "/tmp/ran")
	requireCode(t, r, exitFailure)
	requireStderr(t, r, "refusing to start session", "without an audit record", "/dev/full")
	s.requireNoToolContainers(t, 10*time.Second)
}

// podRecords are the shared agent's audit records about pod.
func (s *suite) podRecords(t *testing.T, pod string) []agent.AuditRecord {
	t.Helper()
	var records []agent.AuditRecord
	for _, rec := range readAuditLog(t, filepath.Join(s.dir, "audit.log")) {
		if rec.Target.Pod == pod {
			records = append(records, rec)
		}
	}
	return records
}

func sha256Hex(data string) string {
	sum := sha256.Sum256([]byte(data))
	return hex.EncodeToString(sum[:])
}

func TestCopyAndEditAreAuditedWithWhatTheyWrote(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	local := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(local, []byte("copied in\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	requireCode(t, s.cp(t, nil, local, pod.Spec.Name+":/tmp/f"), 0)
	requireCode(t, s.edit(t, `sed -i 's/^level=info$/level=debug/' "$1"`, pod.Spec.Name+":/etc/app.conf",
		"--signal", "HUP"), 0)
	requireCode(t, s.cp(t, nil, pod.Spec.Name+":/etc/app.conf", filepath.Join(t.TempDir(), "out")), 0)

	var events []string
	for _, rec := range s.podRecords(t, pod.Spec.Name) {
		events = append(events, rec.Event)
		if rec.User.UID != uint32(os.Getuid()) || rec.User.PID <= 0 || rec.Target.ContainerID == "" {
			t.Errorf("%s: user %+v target %+v", rec.Event, rec.User, rec.Target)
		}
	}
	want := "copy.in file.done file.read file.write file.done copy.out file.done"
	if got := strings.Join(events, " "); got != want {
		t.Fatalf("audit events %q, want %q", got, want)
	}

	records := s.podRecords(t, pod.Spec.Name)
	copied := records[1].Files
	if len(copied) != 1 || copied[0].Path != "/tmp/f" || !copied[0].Tar || len(copied[0].SHA256) != 64 {
		t.Errorf("cp in recorded files %+v, want the tar stream unpacked at /tmp/f", copied)
	}
	edited := strings.Replace(appConf, "level=info", "level=debug", 1)
	wantFile := agent.AuditFile{Path: "/etc/app.conf", SHA256: sha256Hex(edited), Size: int64(len(edited))}
	for _, rec := range records[3:5] {
		if len(rec.Files) != 1 || rec.Files[0] != wantFile {
			t.Errorf("%s recorded files %+v, want %+v", rec.Event, rec.Files, wantFile)
		}
	}
	sent := true
	wantSignal := map[string]*agent.AuditSignal{
		"file.write": {Name: "HUP", PID: pidOf(records[3])},
		"file.done":  {Name: "HUP", PID: pidOf(records[3]), Sent: &sent},
	}
	for _, rec := range records[3:5] {
		if diff := cmp.Diff(wantSignal[rec.Event], rec.Signal); diff != "" || rec.Signal.PID <= 0 {
			t.Errorf("%s: signal (-want +got):\n%s", rec.Event, diff)
		}
	}
	if out := records[6]; out.BytesOut != int64(len(edited)) || out.Outcome != "done" {
		t.Errorf("cp out ended with %d bytes out, outcome %q", out.BytesOut, out.Outcome)
	}
}

// pidOf is the host pid a record says a signal went to, 0 for none.
func pidOf(rec agent.AuditRecord) int {
	if rec.Signal == nil {
		return 0
	}
	return rec.Signal.PID
}

func TestCopyIntoDeniedNamespaceIsRefusedAndAudited(t *testing.T) {
	s := env(t)
	local := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(local, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := uniqueName("coredns")

	r := s.run(t, nil, "cp", "--agent", s.agentEndpoint(), "-n", "kube-system", local, pod+":/tmp/f")
	requireCode(t, r, exitFailure)
	requireStderr(t, r, "namespace kube-system may not be debugged", "deniedNamespaces")

	records := readAuditLog(t, filepath.Join(s.dir, "audit.log"))
	last := records[len(records)-1]
	if last.Event != "session.denied" || last.Target.Pod != pod || last.Rule != "deniedNamespaces" ||
		strings.Join(last.Command, " ") != "cp /tmp/f" {
		t.Fatalf("last audit record %+v, want the cp's denial", last)
	}
}

// fileOp runs cp or edit (with a scripted editor) against this agent.
func (a *policyAgent) fileOp(t *testing.T, op string, args ...string) result {
	t.Helper()
	if op == "edit" {
		return a.suite.editWith(t, a.endpoint, `echo more >> "$1"`, args...)
	}
	return a.suite.run(t, nil, append([]string{"cp", "--agent", a.endpoint, "-n", podNamespace}, args...)...)
}

func TestCopyAndEditInRestrictedNamespaceAreRefusedAndAudited(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	restricted := s.startPolicyAgent(t, "namespaceProfiles: {"+podNamespace+": [restricted]}\n")
	strict := s.startPolicyAgent(t, "requireReason: true\n")
	local := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(local, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		agent *policyAgent
		op    string
		args  []string
		rule  string
		want  []string
	}{
		{name: "cp where general is not allowed", agent: restricted, op: "cp", rule: "profile",
			args: []string{"--reason", "r", local, pod.Spec.Name + ":/tmp/f"},
			want: []string{"allowed only where profile general is", "namespaceProfiles." + podNamespace,
				"allowed: restricted"}},
		{name: "edit where general is not allowed", agent: restricted, op: "edit", rule: "profile",
			args: []string{"--reason", "r", "--signal", "HUP", pod.Spec.Name + ":/etc/app.conf"},
			want: []string{"allowed only where profile general is", "allowed: restricted"}},
		{name: "cp without a required reason", agent: strict, op: "cp", rule: "requireReason",
			args: []string{local, pod.Spec.Name + ":/tmp/f"}, want: []string{"requires a reason", "--reason"}},
		{name: "edit without a required reason", agent: strict, op: "edit", rule: "requireReason",
			args: []string{pod.Spec.Name + ":/etc/app.conf"}, want: []string{"requires a reason", "--reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.agent.fileOp(t, tt.op, tt.args...)
			requireCode(t, r, exitFailure)
			requireStderr(t, r, tt.want...)
			if lines := strings.Count(strings.TrimSpace(string(r.stderr)), "\n"); lines != 0 {
				t.Errorf("want one line on stderr, got %s", r)
			}

			records := tt.agent.records(t)
			last := records[len(records)-1]
			if last.Event != "session.denied" || last.Rule != tt.rule || last.Outcome != "denied" {
				t.Fatalf("last audit record is %+v, want a denial by %s", last, tt.rule)
			}
		})
	}
	if got := s.sh(t, pod.Spec.Name, "test ! -e /target/tmp/f && cat /target/etc/app.conf"); got != appConf {
		t.Fatalf("the target changed after denials:\n%s", got)
	}

	r := strict.fileOp(t, "cp", "--reason", "INC-9", local, pod.Spec.Name+":/tmp/f")
	requireCode(t, r, 0)
	for _, rec := range strict.records(t)[len(strict.records(t))-2:] {
		if rec.Reason != "INC-9" {
			t.Errorf("%s: reason %q, want INC-9", rec.Event, rec.Reason)
		}
	}
}
