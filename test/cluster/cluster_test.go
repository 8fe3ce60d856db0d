package cluster

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestPodCreatedThroughAPIRuns guards the whole chain the integration
// tests stand on: etcd, API server, kubelet and its containerd.
func TestPodCreatedThroughAPIRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	checkHostRestored(t)
	started := time.Now()
	c, imgs := StartT(t, ctx)
	t.Logf("cluster up in %s", time.Since(started).Round(time.Millisecond))

	pod, err := c.RunPod(ctx, TargetPod("shop", "web", imgs.Target.Ref))
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.PodIP == "" {
		t.Errorf("pod %s/%s runs without an IP", pod.Namespace, pod.Name)
	}
	t.Logf("pod running with IP %s, %s after start", pod.Status.PodIP,
		time.Since(started).Round(time.Millisecond))
}

// checkHostRestored registers, before the cluster starts, a check that
// runs after it stopped: the sysctls kubelet changes are back, and the
// host folders, mounts and network namespace it made are gone.
func checkHostRestored(t *testing.T) {
	before := map[string]string{}
	for _, name := range kubeletSysctls {
		data, _ := os.ReadFile("/proc/sys/" + name)
		before[name] = string(data)
	}
	existed := map[string]bool{}
	for _, dir := range []string{kubeletHostDir, kubeletLogDir} {
		_, err := os.Stat(dir)
		existed[dir] = err == nil
	}
	netns, _ := os.ReadDir("/run/netns")

	t.Cleanup(func() {
		for name, value := range before {
			if data, _ := os.ReadFile("/proc/sys/" + name); string(data) != value {
				t.Errorf("sysctl %s is %q after the cluster, was %q", name, data, value)
			}
		}
		for dir, was := range existed {
			if _, err := os.Stat(dir); err == nil && !was {
				t.Errorf("%s left behind", dir)
			}
		}
		if after, _ := os.ReadDir("/run/netns"); len(after) > len(netns) {
			t.Logf("more network namespaces than before (%d, was %d); other tests may run", len(after), len(netns))
		}
	})
}
