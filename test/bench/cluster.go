package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodedebug/nodedebug/test/cluster"
	"github.com/nodedebug/nodedebug/test/harness"
)

// errNoCluster means the cluster binaries are not built; the cluster row
// is then left out with a note instead of failing the run.
var errNoCluster = errors.New("cluster binaries not built")

// clusterBench is a single-node cluster on a containerd of its own (kubelet
// removes whatever it did not start), with nodedebug installed.
type clusterBench struct {
	containerd *harness.Containerd
	c          *cluster.Cluster
	install    *cluster.Install
	kubeconfig string
}

// clusterLatency puts `nodedebug attach` through the API server next to
// `kubectl debug`, an ephemeral container started by kubelet through the
// same API server, each running `true`. kubectl debug without -i returns
// once the container is added, and kubelet's streaming cannot be reached
// here (the node has no routable address for it), so its time runs from
// invocation until the API reports the ephemeral container terminated.
func (b *bench) clusterLatency(ctx context.Context) error {
	if err := clusterBinaries(); err != nil {
		b.report.Errors = append(b.report.Errors, "cluster row skipped: "+err.Error())
		return nil
	}
	cb, err := b.startCluster(ctx)
	defer cb.stop(b)
	if err != nil {
		return err
	}

	cs := []contender{
		{"nodedebug attach (API server)", func(ctx context.Context, _ int) sample {
			return runCmd(ctx, nil, nil, b.env.binary, "attach", "--kubeconfig", cb.kubeconfig,
				"-n", podNamespace, "web/app", "--", "true")
		}},
		{"kubectl debug", func(ctx context.Context, i int) sample {
			return cb.kubectlDebug(ctx, b.env.images.Toolbox.Ref, fmt.Sprintf("dbg-%d", i+warmups))
		}},
	}
	samples, err := b.warmAndInterleave(ctx, cs, b.env.cfg.clusterRuns)
	if err != nil {
		return err
	}

	ours, debug := walls(samples[0]), walls(samples[1])
	n := fmt.Sprintf(" (n=%d)", len(ours))
	b.add(row{Metric: "cluster attach latency p50" + n, Unit: "ms", Ours: median(ours),
		Note: "both through kube-apiserver; kubectl debug until the API reports the ephemeral container exited"}.
		withPeer("kubectl debug", median(debug)))
	b.add(row{Metric: "cluster attach latency p95" + n, Unit: "ms", Ours: percentile(ours, 95)}.
		withPeer("kubectl debug", percentile(debug, 95)))
	return nil
}

func clusterBinaries() error {
	dir := cluster.BinDir("")
	for _, name := range []string{"etcd", "kube-apiserver", "kubelet", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%w: %s missing in %s (make k8s)", errNoCluster, name, dir)
		}
	}
	return nil
}

// warmAndInterleave is latency's scheme with its own run count.
func (b *bench) warmAndInterleave(ctx context.Context, cs []contender, runs int) ([][]sample, error) {
	for i := range warmups {
		for _, c := range cs {
			if s := c.run(ctx, i-warmups); s.err != nil {
				return nil, fmt.Errorf("warm-up %s: %w", c.name, s.err)
			}
		}
	}

	samples := make([][]sample, len(cs))
	for i := range runs {
		for j := range cs {
			k := (i + j) % len(cs)
			s := cs[k].run(ctx, i)
			if s.err != nil {
				return nil, fmt.Errorf("run %d of %s: %w", i, cs[k].name, s.err)
			}
			samples[k] = append(samples[k], s)
		}
	}
	return samples, nil
}

func (b *bench) startCluster(ctx context.Context) (*clusterBench, error) {
	cb := &clusterBench{}
	dir := filepath.Join(b.env.dir, "cluster")
	var err error
	cb.containerd, err = harness.StartContainerd(ctx, harness.Options{
		Dir: filepath.Join(dir, "containerd"), Binary: b.env.cfg.containerd,
		Runtime: os.Getenv(harness.EnvRuntime), Logger: b.log,
	})
	if err != nil {
		return cb, fmt.Errorf("start kubelet's containerd: %w", err)
	}
	if err := cb.containerd.ImportImages(ctx, b.env.images); err != nil {
		return cb, err
	}

	cb.c, err = cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dir, "k8s"),
		Containerd: cb.containerd, Logger: b.log})
	if err != nil {
		return cb, err
	}
	return cb, cb.installNodedebug(ctx, b, dir)
}

func (cb *clusterBench) installNodedebug(ctx context.Context, b *bench, dir string) error {
	var err error
	if cb.kubeconfig, err = cb.c.WriteKubeconfig(cluster.AdminUser); err != nil {
		return err
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if err := cluster.BuildGateway(ctx, root, filepath.Dir(b.env.binary)); err != nil {
		return err
	}
	cb.install, err = cb.c.NewInstall(ctx, b.env.binary, filepath.Join(root, "deploy"), dir)
	if err != nil {
		return err
	}
	if err := cb.install.Run(ctx, b.env.images.Toolbox.Path, b.env.images.Pause.Ref); err != nil {
		return err
	}

	_, err = cb.c.RunPod(ctx, cluster.TargetPod(podNamespace, "web", b.env.images.Target.Ref))
	return err
}

// kubectlDebug adds ephemeral container name running `true` and waits
// until the API reports it terminated.
func (cb *clusterBench) kubectlDebug(ctx context.Context, image, name string) sample {
	started := time.Now()
	s := runCmd(ctx, nil, nil, cb.c.Kubectl(), "--kubeconfig", cb.kubeconfig, "debug", "-n", podNamespace,
		"web", "--image", image, "--image-pull-policy", "Never", "--profile", "general",
		"--container", name, "--", "true")
	if s.err != nil {
		return s
	}

	// Poll finely: the interval adds to kubectl debug's time.
	deadline := time.Now().Add(60 * time.Second)
	for {
		s.err = cb.ephemeralExited(ctx, name)
		if s.err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.wall = time.Since(started)
	return s
}

func (cb *clusterBench) ephemeralExited(ctx context.Context, name string) error {
	pod, err := cb.c.Client.CoreV1().Pods(podNamespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, st := range pod.Status.EphemeralContainerStatuses {
		if st.Name == name && st.State.Terminated != nil {
			return exitedCleanly(st.State.Terminated)
		}
	}
	return fmt.Errorf("not exited yet")
}

func exitedCleanly(t *corev1.ContainerStateTerminated) error {
	if t.ExitCode != 0 {
		return fmt.Errorf("exited %d: %s", t.ExitCode, t.Message)
	}
	return nil
}

func (cb *clusterBench) stop(b *bench) {
	if cb.install != nil {
		logErr(b, "stop agent and gateway", cb.install.Stop())
	}
	if cb.c != nil {
		logErr(b, "stop cluster", cb.c.Stop())
	}
	if cb.containerd != nil {
		logErr(b, "stop kubelet's containerd", cb.containerd.Stop())
	}
}

// moduleRoot is the folder of the nodedebug module this program runs in.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "", fmt.Errorf("find the nodedebug module (run from the repo): %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

func logErr(b *bench, what string, err error) {
	if err != nil {
		b.log.Error(what, "error", err)
	}
}
