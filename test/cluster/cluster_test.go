package cluster

import (
	"context"
	"testing"
	"time"
)

// TestPodCreatedThroughAPIRuns guards the whole chain the integration
// tests stand on: etcd, API server, kubelet and its containerd.
func TestPodCreatedThroughAPIRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

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
