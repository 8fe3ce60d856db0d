package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// stopTimeout bounds the whole of Stop, which runs on its own context so it
// still cleans up after the test's context is gone.
const stopTimeout = 60 * time.Second

// Stop removes every pod, stops the daemon and its shims, unmounts what is
// left under Dir, removes the pods' network namespaces, cgroups and bridge,
// and deletes Dir. It is safe after a failed start and on a nil receiver.
func (c *Containerd) Stop() error {
	if c == nil {
		return nil
	}
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Containerd) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()

	c.removeAllPods(ctx)
	if c.conn != nil {
		_ = c.conn.Close()
	}
	shimSockets := c.shimSockets()

	errs := []error{c.killDaemon(), c.killShims()}
	errs = append(errs, c.unmountAll(), c.removeNetns(), c.removeCgroups(), c.removeBridge())
	for _, path := range shimSockets {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove shim socket %s: %w", path, err))
		}
	}
	errs = append(errs, removeDir(c.sockDir), removeDir(c.Dir))

	err := errors.Join(errs...)
	if err != nil {
		c.log.Warn("containerd cleanup incomplete", "dir", c.Dir, "error", err)
	}
	return err
}

// removeAllPods stops and removes pods through CRI first, so runc deletes
// containers, cgroups and netns the normal way; the rest of Stop only
// sweeps what this leaves behind.
func (c *Containerd) removeAllPods(ctx context.Context) {
	if c.runtime == nil || c.Version == "" {
		return
	}

	resp, err := c.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		c.log.Warn("list pods for cleanup", "error", err)
		return
	}
	for _, sb := range resp.GetItems() {
		pod := &Pod{SandboxID: sb.GetId()}
		if err := c.RemovePod(ctx, pod); err != nil {
			c.log.Warn("remove pod during cleanup", "pod", sb.GetMetadata().GetName(), "error", err)
		}
	}
}

// killDaemon sends SIGTERM to the daemon's process group, then SIGKILL.
func (c *Containerd) killDaemon() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}

	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
	}

	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("containerd pid %d did not exit after SIGKILL", pgid)
	}
}

// shimSockets reads the socket address of every shim from the task bundles.
// containerd 1.6 puts shim sockets in /run/containerd/s whatever the config
// says, so a killed shim would leave its socket there.
func (c *Containerd) shimSockets() []string {
	if c.Dir == "" {
		return nil
	}
	pattern := filepath.Join(c.Dir, "state", "io.containerd.runtime.v2.task", "*", "*", "address")
	files, _ := filepath.Glob(pattern)

	var sockets []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		addr := strings.TrimSpace(string(data))
		if path, ok := strings.CutPrefix(addr, "unix://"); ok {
			sockets = append(sockets, path)
		}
	}
	return sockets
}

// killShims kills the shims started for this daemon (those whose command
// line names our socket or Dir) and every process below them.
func (c *Containerd) killShims() error {
	if c.Socket == "" {
		return nil
	}
	procs, err := listProcs()
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}

	var victims []int
	for _, p := range procs {
		if c.ownsShim(p) {
			victims = append(victims, descendants(procs, p.pid)...)
			victims = append(victims, p.pid)
		}
	}
	for _, pid := range victims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return waitGone(victims, 10*time.Second)
}

func (c *Containerd) ownsShim(p proc) bool {
	if len(p.args) == 0 || !strings.Contains(filepath.Base(p.args[0]), "containerd-shim") {
		return false
	}
	for _, arg := range p.args[1:] {
		if arg == c.Socket || strings.HasPrefix(arg, c.Dir+"/") || arg == c.Dir {
			return true
		}
	}
	return false
}

type proc struct {
	pid  int
	ppid int
	args []string
}

func listProcs() ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}

	var procs []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := readProc(pid)
		if err != nil {
			continue // exited while we looked
		}
		procs = append(procs, p)
	}
	return procs, nil
}

func readProc(pid int) (proc, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return proc{}, err
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return proc{}, err
	}

	// The command name in stat is in parentheses and may hold spaces, so
	// the fields we want start after the last ')'.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return proc{}, fmt.Errorf("short stat for pid %d", pid)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return proc{}, fmt.Errorf("parse ppid of %d: %w", pid, err)
	}

	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	return proc{pid: pid, ppid: ppid, args: args}, nil
}

// descendants lists every process below root, children before parents.
func descendants(procs []proc, root int) []int {
	var out []int
	for _, p := range procs {
		if p.ppid == root {
			out = append(out, descendants(procs, p.pid)...)
			out = append(out, p.pid)
		}
	}
	return out
}

// waitGone waits until none of pids exists; zombies count as gone because
// their parent (often init) reaps them on its own time.
func waitGone(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var alive []int
		for _, pid := range pids {
			if isAlive(pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still alive after SIGKILL", alive)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	fields := strings.Fields(rest)
	return len(fields) > 0 && fields[0] != "Z"
}

// unmountAll detaches every mount under Dir or the socket dir, deepest
// first, repeating while unmounting uncovers more.
func (c *Containerd) unmountAll() error {
	var errs []error
	for range 5 {
		mounts, err := c.MountsLeft()
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, m := range mounts {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
			}
		}
	}
	return errors.Join(errs...)
}

// MountsLeft lists mount points under Dir, the socket dir, or the network
// namespaces of this harness's pods, deepest first.
func (c *Containerd) MountsLeft() ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}

	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		point := unescapeMount(fields[4])
		if c.isOurs(point) {
			mounts = append(mounts, point)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts, nil
}

func (c *Containerd) isOurs(path string) bool {
	for _, dir := range []string{c.Dir, c.sockDir} {
		if dir != "" && (path == dir || strings.HasPrefix(path, dir+"/")) {
			return true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ns := range c.netns {
		if path == ns {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeNetns deletes the network namespace files of our pods that CRI left
// behind; containerd 1.6 keeps them in /var/run/netns, outside Dir.
func (c *Containerd) removeNetns() error {
	c.mu.Lock()
	netns := append([]string(nil), c.netns...)
	c.mu.Unlock()

	var errs []error
	for _, path := range netns {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove netns %s: %w", path, err))
		}
	}
	return errors.Join(errs...)
}

// removeCgroups removes our cgroup parent in every hierarchy, children
// first. A cgroup dir can only go once its processes are gone.
func (c *Containerd) removeCgroups() error {
	if c.CgroupParent == "" {
		return nil
	}
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")

	var errs []error
	for _, root := range roots {
		dir := filepath.Join(root, c.CgroupParent)
		if err := removeCgroupTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeCgroupTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}

	for i := len(dirs) - 1; i >= 0; i-- {
		if err := removeCgroup(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// cgroupDrainTimeout bounds the wait for killed processes to leave a
// cgroup: a process killed with its shim is only gone once reaped.
const cgroupDrainTimeout = 10 * time.Second

// removeCgroup removes one cgroup of this harness, killing what is still
// in it: the cgroup parent is this harness's own, so everything in it is.
func removeCgroup(dir string) error {
	deadline := time.Now().Add(cgroupDrainTimeout)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}

		killCgroupProcs(dir)
		time.Sleep(50 * time.Millisecond)
	}
}

func killCgroupProcs(dir string) {
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, field := range strings.Fields(string(procs)) {
		if pid, err := strconv.Atoi(field); err == nil && pid > 1 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// removeBridge deletes the CNI bridge of this harness; the bridge plugin
// never removes it, even when the last pod goes.
func (c *Containerd) removeBridge() error {
	if c.Bridge == "" {
		return nil
	}
	if _, err := net.InterfaceByName(c.Bridge); err != nil {
		return nil
	}

	out, err := exec.Command("ip", "link", "delete", c.Bridge).CombinedOutput()
	if err != nil {
		return fmt.Errorf("delete bridge %s: %w: %s", c.Bridge, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func removeDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
