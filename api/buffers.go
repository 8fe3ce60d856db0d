package api

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// Buffers is the gRPC buffer pool both ends of the agent's socket use.
// gRPC's default pool clears every buffer it hands out, which on a stream
// of large output messages cost a fifth of the agent's and of the CLI's
// CPU. gRPC writes or reads every byte of the length it asks for, so this
// pool hands buffers out as they were returned.
var Buffers mem.BufferPool = &bufferPool{}

// Buffers come in powers of two from 4 KiB to 4 MiB; larger ones are not
// kept.
const (
	minClass = 12
	maxClass = 22
)

type bufferPool struct {
	classes [maxClass + 1]sync.Pool
}

// sizeClass is the exponent of the smallest power of two that holds n.
func sizeClass(n int) int {
	return max(bits.Len(uint(max(n, 1)-1)), minClass)
}

func (p *bufferPool) Get(length int) *[]byte {
	class := sizeClass(length)
	if class > maxClass {
		buf := make([]byte, length)
		return &buf
	}
	if buf, ok := p.classes[class].Get().(*[]byte); ok {
		*buf = (*buf)[:length]
		return buf
	}
	buf := make([]byte, length, 1<<class)
	return &buf
}

func (p *bufferPool) Put(buf *[]byte) {
	c := cap(*buf)
	class := sizeClass(c)
	if class > maxClass || c != 1<<class {
		return
	}
	*buf = (*buf)[:0]
	p.classes[class].Put(buf)
}
