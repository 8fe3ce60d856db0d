package toolinit

import (
	"slices"
	"testing"
)

func TestParseParent(t *testing.T) {
	tests := []struct {
		stat string
		want int
		ok   bool
	}{
		{stat: "42 (sh) S 7 42 42 0 -1", want: 7, ok: true},
		{stat: "43 (a) b) (c) R 9 43 43", want: 9, ok: true},
		{stat: "44 (x", ok: false},
		{stat: "45 (x) S", ok: false},
	}
	for _, tt := range tests {
		got, ok := parseParent(tt.stat)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseParent(%q) = %d, %v; want %d, %v", tt.stat, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDescendantsSparesEverythingElse(t *testing.T) {
	// 1 is the target's init, 10 the tool's init; 20 and 30 belong to
	// the tool, 11 and 12 to the target.
	parentOf := map[int]int{1: 0, 11: 1, 12: 11, 10: 0, 20: 10, 21: 20, 30: 10}

	got := descendants(10, parentOf)
	slices.Sort(got)
	if want := []int{20, 21, 30}; !slices.Equal(got, want) {
		t.Fatalf("descendants = %v, want %v", got, want)
	}
}
