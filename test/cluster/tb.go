package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodedebug/nodedebug/test/harness"
)

// RequireBinaries skips (or, under CI=true, fails) when the cluster
// binaries are not built; test/cluster/build.sh builds them.
func RequireBinaries(tb testing.TB) string {
	tb.Helper()
	dir := BinDir("")
	for _, name := range []string{"etcd", "kube-apiserver", "kubelet", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("CI=true but %s is missing; run test/cluster/build.sh", name)
			}
			tb.Skipf("%s not built in %s (run test/cluster/build.sh): %v", name, dir, err)
		}
	}
	return dir
}

// StartT starts a cluster with its own containerd for the test and stops
// both in t.Cleanup. The test images are imported for kubelet.
func StartT(tb testing.TB, ctx context.Context, users ...string) (*Cluster, harness.Images) {
	tb.Helper()
	containerdBinary := harness.RequireContainerd(tb)
	RequireBinaries(tb)
	dir := tb.TempDir()

	imgs, err := harness.BuildImages(ctx, filepath.Join(dir, "images"))
	if err != nil {
		tb.Fatalf("build images: %v", err)
	}
	containerd := harness.Start(tb, ctx, harness.Options{Binary: containerdBinary})
	if err := containerd.ImportImages(ctx, imgs); err != nil {
		tb.Fatalf("import images: %v", err)
	}

	c, err := Start(ctx, Options{
		Dir: filepath.Join(dir, "cluster"), Containerd: containerd,
		Users: users, Logger: harness.TestLogger(tb),
	})
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("stop cluster: %v", err)
		}
	})
	if err != nil {
		tb.Fatalf("start cluster: %v", err)
	}
	return c, imgs
}

// EnsureServiceAccount creates the default service account of namespace
// ns (and ns); without a controller manager nobody else does.
func (c *Cluster) EnsureServiceAccount(ctx context.Context, ns string) error {
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
	_, err = c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s/default: %w", ns, err)
	}
	return nil
}

// RunPod creates pod on the node, as the scheduler would have placed it,
// and waits until it runs.
func (c *Cluster) RunPod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	if err := c.EnsureServiceAccount(ctx, pod.Namespace); err != nil {
		return nil, err
	}
	pod.Spec.NodeName = c.NodeName
	no := false
	pod.Spec.AutomountServiceAccountToken = &no

	created, err := c.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return c.waitRunning(ctx, created)
}

func (c *Cluster) waitRunning(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()

	for {
		got, err := c.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && got.Status.Phase == corev1.PodRunning {
			return got, nil
		}

		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s/%s not running (phase %s): %w\n%s",
				pod.Namespace, pod.Name, phase(got), ctx.Err(), c.kubelet.LogTail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func phase(pod *corev1.Pod) string {
	if pod == nil {
		return "unknown"
	}
	return fmt.Sprintf("%s %v", pod.Status.Phase, pod.Status.ContainerStatuses)
}

// TargetPod is the distroless target as a pod: one container "app".
func TargetPod(ns, name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "app",
				Image:           image,
				ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
}

// ServiceAccountToken asks the API server for a token of service account
// ns/name, as kubelet would for a pod.
func (c *Cluster) ServiceAccountToken(ctx context.Context, ns, name string) (string, error) {
	req := &authenticationv1.TokenRequest{}
	got, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of service account %s/%s: %w", ns, name, err)
	}
	return got.Status.Token, nil
}

// Poll calls check every 200ms until it returns nil or ctx ends.
func Poll(ctx context.Context, what string, check func(context.Context) error) error {
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
