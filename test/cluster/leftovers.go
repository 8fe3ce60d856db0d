package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Host folders kubelet creates whatever its flags say: the device plugin
// socket folder and the folder of container log links are compiled in.
const (
	kubeletHostDir = "/var/lib/kubelet"
	kubeletLogDir  = "/var/log/containers"
)

// noteHostDirs remembers which of kubelet's host folders existed before it.
func (c *Cluster) noteHostDirs() {
	_, err := os.Stat(kubeletHostDir)
	c.createdHostDir = errors.Is(err, os.ErrNotExist)
	_, err = os.Stat(kubeletLogDir)
	c.createdLogDir = errors.Is(err, os.ErrNotExist)
}

// removeLeftovers undoes what kubelet leaves on the host after it exits:
// the shared bind mount of its root folder, volume mounts, and the host
// folder it made.
func (c *Cluster) removeLeftovers() error {
	var errs []error
	mounts, err := mountsUnder(c.Dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}

	if c.createdHostDir {
		if err := os.RemoveAll(kubeletHostDir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s kubelet created: %w", kubeletHostDir, err))
		}
	}
	errs = append(errs, c.removeLogLinks())
	return errors.Join(errs...)
}

// removeLogLinks removes kubelet's links to this cluster's container logs,
// and the folder when kubelet made it and nothing else is in it.
func (c *Cluster) removeLogLinks() error {
	entries, err := os.ReadDir(kubeletLogDir)
	if err != nil {
		return nil
	}

	var errs []error
	for _, e := range entries {
		link := filepath.Join(kubeletLogDir, e.Name())
		target, err := os.Readlink(link)
		if err != nil || !strings.HasPrefix(target, c.Dir+"/") {
			continue
		}
		if err := os.Remove(link); err != nil {
			errs = append(errs, fmt.Errorf("remove kubelet's log link %s: %w", link, err))
		}
	}
	if c.createdLogDir {
		// Fails, and is meant to, while anything else is in it.
		_ = os.Remove(kubeletLogDir)
	}
	return errors.Join(errs...)
}

// mountsUnder lists mount points under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()

	var out []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, scanner.Err()
}
