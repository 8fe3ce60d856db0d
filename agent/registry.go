package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nodedebug/nodedebug/api"
)

// ErrNoSession means no live session has the id.
var ErrNoSession = errors.New("no such session")

// ErrSessionEnded is the cause of a session the agent ended itself: over
// its length, idle, or killed. Its message is shown to the user.
var ErrSessionEnded = errors.New("session ended by the agent")

// endedError says why the agent ended a session.
type endedError struct {
	outcome string
	msg     string
	// by is who killed the session, nil when a limit ended it.
	by *peerInfo
}

func (e *endedError) Error() string        { return e.msg }
func (e *endedError) Is(target error) bool { return target == ErrSessionEnded }

// registry holds the live sessions of an agent.
type registry struct {
	mu       sync.Mutex
	sessions map[string]*session
}

func newRegistry() *registry {
	return &registry{sessions: map[string]*session{}}
}

// add registers s unless max sessions are live already.
func (r *registry) add(s *session, max int) error {
	r.mu.Lock()
	defer r.mu.Unlock()

	if len(r.sessions) >= max {
		return fmt.Errorf("%w: %d of %d sessions are running on this node (maxConcurrentSessions); "+
			"try again later, or end one: nodedebug sessions, nodedebug kill SESSION", ErrBusy, len(r.sessions), max)
	}
	r.sessions[s.id] = s
	return nil
}

func (r *registry) remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, id)
}

// list describes the live sessions, oldest first.
func (r *registry) list() []*api.SessionInfo {
	r.mu.Lock()
	defer r.mu.Unlock()

	infos := make([]*api.SessionInfo, 0, len(r.sessions))
	for _, s := range r.sessions {
		infos = append(infos, s.info())
	}
	slices.SortFunc(infos, func(a, b *api.SessionInfo) int {
		return int(a.StartedUnix - b.StartedUnix)
	})
	return infos
}

// get returns the live session with id.
func (r *registry) get(id string) (*session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	s, ok := r.sessions[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s is not running on this node (nodedebug sessions lists them)", ErrNoSession, id)
	}
	return s, nil
}

// kill ends the session with id; its own goroutine removes the tool.
func (r *registry) kill(id string, by peerInfo) error {
	s, err := r.get(id)
	if err != nil {
		return err
	}

	s.end(&endedError{outcome: "killed", by: &by,
		msg: fmt.Sprintf("session %s was killed by uid %d (pid %d); its tool container was removed", id, by.uid, by.pid)})
	return nil
}

// listing is what `nodedebug sessions` shows of a session once its target
// and image are known; it is read by other goroutines than the session's.
type listing struct {
	target *api.Target
	image  string
}

// listedTarget is the requested target with the container it resolved to.
func (s *session) listedTarget() *api.Target {
	t := proto.Clone(s.start.Target).(*api.Target)
	if s.target != nil {
		t.Container = s.target.Container
	}
	return t
}

func (s *session) info() *api.SessionInfo {
	shown := &listing{target: s.start.Target}
	if l := s.listed.Load(); l != nil {
		shown = l
	}
	return &api.SessionInfo{
		Id:          s.id,
		Uid:         s.peer.uid,
		Pid:         s.peer.pid,
		Target:      shown.target,
		Profile:     s.profileName(),
		Image:       shown.image,
		Command:     s.start.Command,
		Reason:      s.start.Reason,
		StartedUnix: s.started.Unix(),
		Detachable:  s.detach != nil,
		Attached:    s.out.attached(),
	}
}

// limit gives the session a context the agent can end: killed, over its
// maximum length, or idle for too long.
func (s *session) limit(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	s.end = cancel

	policy := s.agent.policy
	var stop []func() bool
	if max := policy.MaxSessionLength; max > 0 {
		t := time.AfterFunc(max, func() {
			cancel(&endedError{outcome: "timeout", msg: fmt.Sprintf(
				"session %s reached its maximum length of %s (agent policy maxSessionLength); "+
					"its tool container was removed", s.id, max)})
		})
		stop = append(stop, t.Stop)
	}
	if idle := policy.IdleTimeout; idle > 0 {
		go s.watchIdle(ctx, idle)
	}

	return ctx, func() {
		for _, f := range stop {
			f()
		}
		cancel(context.Canceled)
	}
}

// watchIdle ends the session once no byte went either way for idle.
func (s *session) watchIdle(ctx context.Context, idle time.Duration) {
	tick := time.NewTicker(min(idle/4, time.Second) + time.Millisecond)
	defer tick.Stop()

	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			last := time.Unix(0, s.lastActive.Load())
			if now.Sub(last) >= idle {
				s.end(&endedError{outcome: "idle", msg: fmt.Sprintf(
					"session %s was idle for %s (agent policy idleTimeout); its tool container was removed", s.id, idle)})
				return
			}
		}
	}
}

// counters are a session's streamed bytes and last activity.
type counters struct {
	bytesIn    atomic.Int64
	bytesOut   atomic.Int64
	lastActive atomic.Int64
}

func (c *counters) addIn(n int) {
	c.bytesIn.Add(int64(n))
	c.lastActive.Store(time.Now().UnixNano())
}

func (c *counters) addOut(n int) {
	c.bytesOut.Add(int64(n))
	c.lastActive.Store(time.Now().UnixNano())
}

// report records how the session ended, in the audit log and the metrics,
// and takes it off the list of live sessions.
func (s *session) report(ctx context.Context, err error) {
	s.agent.registry.remove(s.id)

	outcome := outcomeOf(ctx, err)
	s.auditEnd(outcome, errors.Join(err, endCause(ctx)))

	var denial *Denial
	rule := ""
	switch {
	case errors.As(err, &denial):
		rule = denial.Rule
	case errors.Is(err, ErrBusy):
		rule = "maxConcurrentSessions"
	}
	s.agent.metrics.sessionEnded(s, outcome, rule)
}

// endCause is why the agent ended the session, if it did.
func endCause(ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrSessionEnded) {
		return cause
	}
	return nil
}

// outcomeOf names how a session ended, for the audit log and the metrics.
func outcomeOf(ctx context.Context, err error) string {
	var ended *endedError
	var cmdErr *CommandError
	switch {
	case err == nil:
		return "exited"
	case errors.As(context.Cause(ctx), &ended):
		return ended.outcome
	case errors.Is(err, ErrDenied):
		return "denied"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.As(err, &cmdErr):
		return "cannot-run"
	case errors.Is(err, context.Canceled):
		return "disconnected"
	}
	return "failed"
}
