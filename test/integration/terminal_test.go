package integration

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ttyCommand is attach as alice on a terminal of the given size.
func (e *env) ttyCommand(t *testing.T, ctx context.Context, rows, cols uint16, args ...string) (*exec.Cmd, *screen) {
	t.Helper()
	kubeconfig, err := e.c.WriteKubeconfig("alice")
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"attach", "--kubeconfig", kubeconfig, "-n", targetNamespace, "-it"}, args...)
	cmd := exec.CommandContext(ctx, e.binary, argv...)
	terminal, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { terminal.Close() })
	return cmd, newScreen(terminal)
}

func testTerminalSizeAndExit(t *testing.T, ctx context.Context, e *env) {
	cmd, screen := e.ttyCommand(t, ctx, 33, 91, targetPod, "--", "sh", "-c", "stty size; tty; exit 3")
	_ = cmd.Wait()
	screen.waitFor(t, "33 91")
	screen.waitFor(t, "/dev/pts/")
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("exit code through a terminal = %d, want 3", code)
	}
}

func testTerminalResize(t *testing.T, ctx context.Context, e *env) {
	cmd, screen := e.ttyCommand(t, ctx, 20, 80, targetPod, "--", "sh")
	screen.send("stty size\r")
	screen.waitFor(t, "20 80")

	if err := pty.Setsize(screen.terminal, &pty.Winsize{Rows: 50, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !screen.contains("50 132") && time.Now().Before(deadline) {
		screen.send("stty size\r")
		time.Sleep(200 * time.Millisecond)
	}
	screen.waitFor(t, "50 132")

	screen.send("exit 7\r")
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 7 {
		t.Errorf("exit code = %d, want 7", code)
	}
}

// screen collects what the remote side writes to the terminal.
type screen struct {
	terminal *os.File
	mu       sync.Mutex
	buf      bytes.Buffer
}

func newScreen(terminal *os.File) *screen {
	s := &screen{terminal: terminal}
	go func() {
		reader := bufio.NewReader(terminal)
		chunk := make([]byte, 4096)
		for {
			n, err := reader.Read(chunk)
			s.mu.Lock()
			s.buf.Write(chunk[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s
}

func (s *screen) send(text string) { io.WriteString(s.terminal, text) }

func (s *screen) contains(text string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.buf.String(), text)
}

func (s *screen) waitFor(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.contains(text) {
		if time.Now().After(deadline) {
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("terminal never showed %q; it shows %q", text, s.buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
