package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// row is one line of the table. Ratio is always nodedebug / peer.
type row struct {
	Metric   string   `json:"metric"`
	Unit     string   `json:"unit"`
	Ours     float64  `json:"nodedebug"`
	PeerName string   `json:"peer_name,omitempty"`
	Peer     *float64 `json:"peer,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Target   string   `json:"target,omitempty"`
	Met      *bool    `json:"met,omitempty"`
	Note     string   `json:"note,omitempty"`
}

// withPeer fills the peer and the ratio.
func (r row) withPeer(name string, value float64) row {
	r.PeerName, r.Peer = name, &value
	if value != 0 {
		ratio := r.Ours / value
		r.Ratio = &ratio
	}
	return r
}

// judged records a target and whether it was met.
func (r row) judged(target string, met bool) row {
	r.Target, r.Met = target, &met
	return r
}

// report is everything one run measured, as written to the JSON file.
type report struct {
	Machine machine        `json:"machine"`
	Config  map[string]any `json:"config"`
	Rows    []row          `json:"rows"`
	// Profiles holds the median attach steps per agent path.
	Profiles map[string][]step  `json:"attach_profiles"`
	Errors   []string           `json:"errors,omitempty"`
	Extra    map[string]float64 `json:"extra,omitempty"`
}

// step is the median time of one step of an attach, from the agent's log.
type step struct {
	Name     string  `json:"name"`
	MedianMs float64 `json:"median_ms"`
}

type machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	MemoryMiB  int    `json:"memory_mib"`
	Kernel     string `json:"kernel"`
	Containerd string `json:"containerd"`
	Go         string `json:"go"`
}

func describeMachine(containerdVersion string) machine {
	m := machine{Cores: runtime.NumCPU(), Containerd: containerdVersion, Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = procField(string(data), "model name")
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscan(strings.TrimSuffix(procField(string(data), "MemTotal"), " kB"), &kb)
		m.MemoryMiB = kb / 1024
	}
	return m
}

// procField reads "name : value" from a /proc text file.
func procField(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == name {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

func (r *report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "metric\tnodedebug\tpeer\tratio\ttarget\tresult\n")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row.Metric, value(row.Ours, row.Unit),
			peerText(row), ratioText(row.Ratio), row.Target, verdict(row.Met))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	for _, path := range slices.Sorted(maps.Keys(r.Profiles)) {
		fmt.Fprintf(w, "attach steps, %s path (median ms):", path)
		for _, s := range r.Profiles[path] {
			fmt.Fprintf(w, " %s %.1f", s.Name, s.MedianMs)
		}
		fmt.Fprintln(w)
	}
	for _, row := range r.Rows {
		if row.Note != "" {
			fmt.Fprintf(w, "- %s: %s\n", row.Metric, row.Note)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "ERROR: %s\n", e)
	}
	return nil
}

func value(v float64, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

func peerText(r row) string {
	if r.Peer == nil {
		return ""
	}
	return fmt.Sprintf("%s %s", value(*r.Peer, r.Unit), r.PeerName)
}

func ratioText(r *float64) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%.2fx", *r)
}

func verdict(met *bool) string {
	switch {
	case met == nil:
		return ""
	case *met:
		return "met"
	}
	return "MISSED"
}

func (r *report) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}
