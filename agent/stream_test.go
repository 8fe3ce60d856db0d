package agent

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// recordingWriter builds an outputWriter whose messages are recorded; each
// send takes delay, as a busy client would.
func recordingWriter(delay time.Duration, fail error) (*outputWriter, func() [][]byte) {
	var mu sync.Mutex
	var messages [][]byte
	w := &outputWriter{done: make(chan struct{})}
	w.changed = sync.NewCond(&w.mu)
	w.send = func(data []byte) error {
		time.Sleep(delay)
		mu.Lock()
		defer mu.Unlock()
		messages = append(messages, append([]byte(nil), data...))
		return fail
	}
	go w.forward()

	return w, func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return messages
	}
}

func TestOutputWriterBatchesWhileTheClientIsBusy(t *testing.T) {
	w, messages := recordingWriter(5*time.Millisecond, nil)

	var want bytes.Buffer
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for i := range 64 {
		chunk[0] = byte(i)
		want.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()

	got := bytes.Join(messages(), nil)
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("forwarded %d bytes, not the %d written, in order", len(got), want.Len())
	}
	if n := len(messages()); n >= 64 {
		t.Fatalf("64 writes went out as %d messages; a busy client should get batches", n)
	}
	for _, m := range messages() {
		if len(m) > maxMessage+len(chunk) {
			t.Fatalf("a message of %d bytes exceeds the batch bound", len(m))
		}
	}
}

func TestOutputWriterForwardsAFloodExactly(t *testing.T) {
	w, messages := recordingWriter(0, nil)

	chunk := bytes.Repeat([]byte("y"), 16<<10)
	var want bytes.Buffer
	for i := range 256 {
		chunk[0] = byte(i)
		want.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()

	got := bytes.Join(messages(), nil)
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("forwarded %d bytes, not the %d written, in order", len(got), want.Len())
	}
}

func TestOutputWriterHoldsASmallBatchDuringAFlood(t *testing.T) {
	w := &outputWriter{done: make(chan struct{})}
	w.changed = sync.NewCond(&w.mu)
	w.pending = []byte("more output")
	w.lastSent = time.Now()

	// The deadline alone ends the wait: nothing else writes or closes.
	started := time.Now()
	data, ok := w.take(nil)
	if !ok || string(data) != "more output" {
		t.Fatalf("take = %q, %v", data, ok)
	}
	if waited := time.Since(started); waited < linger {
		t.Fatalf("output right after a send went out after %s, before the %s linger", waited, linger)
	}
}

func TestOutputWriterSendsASingleWriteAtOnce(t *testing.T) {
	w, messages := recordingWriter(0, nil)
	defer w.flush()

	if _, err := w.Write([]byte("$ ")); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(2 * time.Second)
	for len(messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a prompt waited for more output instead of going out")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOutputWriterStopsOnAFailedStream(t *testing.T) {
	broken := errors.New("stream broken")
	w, _ := recordingWriter(0, broken)

	_, _ = w.Write([]byte("first"))
	<-w.done

	if _, err := w.Write([]byte("second")); !errors.Is(err, broken) {
		t.Fatalf("write after a failed send = %v, want %v", err, broken)
	}
}

func TestOutputWriterRefusesWritesAfterClose(t *testing.T) {
	w, _ := recordingWriter(0, nil)
	w.flush()

	if _, err := w.Write([]byte("late")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after close = %v, want %v", err, io.ErrClosedPipe)
	}
}
