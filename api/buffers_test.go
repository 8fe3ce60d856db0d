package api

import "testing"

func TestBuffersHaveTheLengthAskedFor(t *testing.T) {
	for _, length := range []int{0, 1, 4096, 4097, 1 << 20, 1<<20 + 1, 4 << 20, 5 << 20} {
		buf := Buffers.Get(length)
		if len(*buf) != length {
			t.Errorf("Get(%d) has length %d", length, len(*buf))
		}
		Buffers.Put(buf)
	}
}

func TestBuffersAreReusedWithinTheirSizeClass(t *testing.T) {
	p := &bufferPool{}
	buf := p.Get(100 << 10)
	if cap(*buf) != 128<<10 {
		t.Fatalf("Get(100 KiB) has capacity %d, want 128 KiB", cap(*buf))
	}
	(*buf)[0] = 7
	p.Put(buf)

	// sync.Pool may drop items, so only a returned buffer is checked.
	again := p.Get(128 << 10)
	if len(*again) != 128<<10 || cap(*again) != 128<<10 {
		t.Fatalf("Get(128 KiB) has length %d, capacity %d", len(*again), cap(*again))
	}
}

func TestBuffersDropForeignCapacities(t *testing.T) {
	p := &bufferPool{}
	odd := make([]byte, 0, 5000)
	p.Put(&odd)
	if buf := p.Get(4096); cap(*buf) == 5000 {
		t.Fatal("a buffer whose capacity is no size class came back from the pool")
	}
}
