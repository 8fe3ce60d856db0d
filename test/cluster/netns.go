package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
)

// Netns is a network namespace of the test with one veth pair into the
// host: HostIP on the host end, PeerIP inside. It gives a component a
// non-loopback address, as a pod would have, without leaving this machine.
type Netns struct {
	Name   string
	HostIP net.IP
	PeerIP net.IP

	hostLink string
}

// NewNetns creates namespace name with a /30 in 172.31.n.0.
func NewNetns(name string, n int) (*Netns, error) {
	ns := &Netns{
		Name:     name,
		HostIP:   net.IPv4(172, 31, byte(n), 1).To4(),
		PeerIP:   net.IPv4(172, 31, byte(n), 2).To4(),
		hostLink: "ndh" + name[len(name)-min(len(name), 8):],
	}
	peer := "ndp" + ns.hostLink[3:]

	steps := [][]string{
		{"netns", "add", name},
		{"link", "add", ns.hostLink, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", name},
		{"addr", "add", ns.HostIP.String() + "/30", "dev", ns.hostLink},
		{"link", "set", ns.hostLink, "up"},
		{"-n", name, "addr", "add", ns.PeerIP.String() + "/30", "dev", peer},
		{"-n", name, "link", "set", peer, "up"},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "route", "add", "default", "via", ns.HostIP.String()},
	}
	for _, step := range steps {
		if err := ip(step...); err != nil {
			return ns, fmt.Errorf("set up netns %s: %w", name, err)
		}
	}
	return ns, nil
}

// Exec returns the command prefix that runs a program inside the namespace.
func (ns *Netns) Exec() []string {
	return []string{"ip", "netns", "exec", ns.Name}
}

// Remove deletes the veth pair and the namespace.
func (ns *Netns) Remove() error {
	var errs []error
	if _, err := net.InterfaceByName(ns.hostLink); err == nil {
		errs = append(errs, ip("link", "delete", ns.hostLink))
	}
	if _, err := os.Stat("/run/netns/" + ns.Name); err == nil {
		errs = append(errs, ip("netns", "delete", ns.Name))
	}
	return errors.Join(errs...)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
