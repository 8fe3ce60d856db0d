package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// spans times the steps of one session for the debug log, so a profile of
// where attach time goes needs no tracing system. Each mark records the time
// since the previous mark under the given name.
type spans struct {
	mu    sync.Mutex
	start time.Time
	last  time.Time
	attrs []any
}

type spansKey struct{}

// withSpans starts timing at the current instant.
func withSpans(ctx context.Context) (context.Context, *spans) {
	now := time.Now()
	s := &spans{start: now, last: now}
	return context.WithValue(ctx, spansKey{}, s), s
}

// markSpan ends the step called name; it does nothing when ctx carries no
// spans, so launchers can mark steps without knowing who listens.
func markSpan(ctx context.Context, name string) {
	s, ok := ctx.Value(spansKey{}).(*spans)
	if !ok {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.attrs = append(s.attrs, slog.Float64(name+"_ms", millis(now.Sub(s.last))))
	s.last = now
}

// report logs every step so far and the total at debug level.
func (s *spans) report(log *slog.Logger, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()

	attrs := append(s.attrs, slog.Float64("total_ms", millis(time.Since(s.start))))
	log.Debug(msg, attrs...)
}

func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
