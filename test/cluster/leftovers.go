package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// kubeletHostDir is the one host folder kubelet creates whatever its
// --root-dir says (the device plugin socket folder is compiled in).
const kubeletHostDir = "/var/lib/kubelet"

// noteHostDirs remembers whether kubeletHostDir existed before kubelet.
func (c *Cluster) noteHostDirs() {
	_, err := os.Stat(kubeletHostDir)
	c.createdHostDir = errors.Is(err, os.ErrNotExist)
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
