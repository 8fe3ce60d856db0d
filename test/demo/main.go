// Command demo shows nodedebug's main job on a real local containerd: it
// starts a private containerd with CRI under a temporary folder, runs a
// distroless pod as uid 65532 the way kubelet would, starts the agent, and
// attaches to the pod. Everything it started is removed when it ends.
//
//	go build -o bin/demo ./test/demo && bin/demo -nodedebug bin/nodedebug [-containerd PATH] [-keep]
//
// (Built rather than `go run`, so that a signal reaches the demo itself.)
//
// With -keep it leaves the pod and agent running and prints the attach
// command to try by hand, until Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/nodedebug/nodedebug/test/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	nodedebug  string
	containerd string
	keep       bool
}

func run(ctx context.Context) error {
	var o options
	flag.StringVar(&o.nodedebug, "nodedebug", "bin/nodedebug", "nodedebug binary (static)")
	flag.StringVar(&o.containerd, "containerd", "containerd", "containerd binary; its shim must sit beside it")
	flag.BoolVar(&o.keep, "keep", false, "leave the demo running until Ctrl-C")
	flag.Parse()

	binary, err := filepath.Abs(o.nodedebug)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "nodedebug-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	return demo(ctx, o, binary, dir)
}

func demo(ctx context.Context, o options, binary, dir string) error {
	step("building the toolbox, pause and distroless target images")
	images, err := harness.BuildImages(ctx, filepath.Join(dir, "images"))
	if err != nil {
		return err
	}

	step("starting a private containerd with CRI under " + dir)
	ctrd, err := harness.StartContainerd(ctx, harness.Options{
		Dir:    filepath.Join(dir, "containerd"),
		Binary: o.containerd,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	defer stopContainerd(ctrd)
	if err != nil {
		return err
	}
	if err := ctrd.ImportImages(ctx, images); err != nil {
		return err
	}
	fmt.Printf("   containerd %s on %s\n", ctrd.Version, ctrd.Socket)

	step("running pod demo/web: one distroless container, uid 65532, no shell")
	uid := int64(65532)
	if _, err := ctrd.RunPod(ctx, harness.PodSpec{Namespace: "demo", Name: "web",
		Containers: []harness.ContainerSpec{{Name: "app", Image: images.Target.Ref, User: &uid}}}); err != nil {
		return err
	}

	socket := filepath.Join(dir, "agent.sock")
	step("starting the nodedebug agent")
	agent, err := startAgent(ctx, binary, ctrd.Socket, socket, images.Toolbox.Path, dir)
	if err != nil {
		return err
	}
	defer stopAgent(agent)

	return attach(ctx, o, binary, socket)
}

func attach(ctx context.Context, o options, binary, socket string) error {
	base := []string{"attach", "--agent", "unix://" + socket, "-n", "demo", "web/app"}

	script := "ps -o pid,user,args; cat /target/etc/app.conf; exit 5"
	show := append(base, "--", "sh", "-c", script)
	step("nodedebug " + strings.Join(base, " ") + " -- sh -c '" + script + "'")
	code := runNodedebug(ctx, binary, show)
	fmt.Printf("   exit status %d came back from the remote shell\n", code)

	interactive := append(base, "-it")
	if o.keep {
		step("try it yourself; Ctrl-C here (or SIGTERM to this process) tears everything down:")
		fmt.Printf("   %s %s\n", binary, strings.Join(interactive, " "))
		fmt.Printf("   agent log: %s\n", filepath.Join(filepath.Dir(socket), "agent.log"))
		<-ctx.Done()
		return nil
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		step("an interactive shell in the tool container; try ps, ls /target, exit")
		runNodedebug(ctx, binary, interactive)
	}
	return nil
}

func runNodedebug(ctx context.Context, binary string, args []string) int {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr

	var exitErr *exec.ExitError
	if err := cmd.Run(); errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return -1
	}
	return 0
}

func startAgent(ctx context.Context, binary, containerdSocket, socket, toolbox, dir string) (*exec.Cmd, error) {
	logPath := filepath.Join(dir, "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(binary, "agent", "--runtime-endpoint", "unix://"+containerdSocket,
		"--listen", socket, "--toolbox-tar", toolbox, "--state-dir", filepath.Join(dir, "state"),
		"--audit-log", filepath.Join(dir, "audit.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := os.Stat(socket); err == nil {
			return cmd, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopAgent(cmd)
	log, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("agent did not start:\n%s", log)
}

func stopAgent(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
}

func stopContainerd(c *harness.Containerd) {
	step("removing the pod, the agent and containerd")
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "demo: cleanup:", err)
	}
}

func step(text string) {
	fmt.Printf("==> %s\n", text)
}
