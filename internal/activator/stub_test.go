package activator

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// stub is an in-memory runtime with no network, for tests that run in a
// testing/synctest bubble: its delays are on the bubble's clock, so they
// take no real time and the tests are deterministic. Readiness and health
// come from the test too (stub implements prober, and health).
type stub struct {
	mu         sync.Mutex
	startErr   error
	startDelay time.Duration
	stopDelay  time.Duration
	// pauseGate, when not nil, holds Pause until it is closed.
	pauseGate chan struct{}
	// ready is the readiness answer; readyDelay how long it takes.
	ready      error
	readyDelay time.Duration
	// healthy is the health probe's answer.
	healthy error

	instances map[string]runtime.State
	versionOf map[string]int64
	calls     []string // "start id", "stop id", "pause id", "unpause id"
	// shared makes it a runtime.Shared (set before the activator is made).
	shared bool
}

func (s *stub) SharedAcrossReplicas() bool { return s.shared }

// run adds a running instance of version vid, as if another replica (or an
// earlier leader) had started it.
func (s *stub) run(id string, vid int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[id] = runtime.StateRunning
	s.versionOf[id] = vid
}

// callCount returns how many runtime calls were made.
func (s *stub) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func newStub() *stub {
	return &stub{instances: map[string]runtime.State{}, versionOf: map[string]int64{}}
}

func (s *stub) record(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call)
}

func (s *stub) count(call string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (s *stub) countPrefix(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if len(c) >= len(prefix) && c[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

func (s *stub) ResolveImage(context.Context, string) (string, error) { return "sha256:stub", nil }

func (s *stub) Start(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	s.record("start " + spec.ID)
	s.mu.Lock()
	delay, err := s.startDelay, s.startErr
	s.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return runtime.Instance{}, ctx.Err()
	}
	if err != nil {
		return runtime.Instance{}, err
	}
	s.mu.Lock()
	s.instances[spec.ID] = runtime.StateRunning
	s.versionOf[spec.ID] = spec.VersionID
	s.mu.Unlock()
	return runtime.Instance{ID: spec.ID, VersionID: spec.VersionID, Addr: "stub-" + spec.ID, State: runtime.StateRunning}, nil
}

func (s *stub) Stop(ctx context.Context, id string, _ time.Duration) error {
	s.record("stop " + id)
	time.Sleep(s.stopDelay)
	s.mu.Lock()
	delete(s.instances, id)
	s.mu.Unlock()
	return nil
}

func (s *stub) Inspect(_ context.Context, id string) (runtime.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.instances[id]
	if !ok {
		return runtime.Instance{}, core.NotFoundf("instance %s not found", id)
	}
	return runtime.Instance{ID: id, VersionID: s.versionOf[id], Addr: "stub-" + id, State: st}, nil
}

func (s *stub) List(context.Context) ([]runtime.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []runtime.Instance
	for id, st := range s.instances {
		out = append(out, runtime.Instance{ID: id, VersionID: s.versionOf[id], Addr: "stub-" + id, State: st})
	}
	return out, nil
}

func (s *stub) Logs(context.Context, string, runtime.LogOptions) (runtime.LogReader, error) {
	return nil, errors.New("stub: no logs")
}

func (s *stub) Pause(_ context.Context, id string) error {
	s.record("pause " + id)
	s.mu.Lock()
	gate := s.pauseGate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[id] = runtime.StatePaused
	return nil
}

func (s *stub) Unpause(_ context.Context, id string) error {
	s.record("unpause " + id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[id] = runtime.StateRunning
	return nil
}

// state returns the runtime's view of instance id.
func (s *stub) state(id string) runtime.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instances[id]
}

// probe implements prober.
func (s *stub) probe(ctx context.Context, _ runtime.Runtime, _ runtime.Instance, _ *core.Version) error {
	s.mu.Lock()
	delay, err := s.readyDelay, s.ready
	s.mu.Unlock()
	select {
	case <-time.After(delay):
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stub) health(context.Context, string, string, time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healthy
}

func (s *stub) set(f func(*stub)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// newStubActivator returns an activator over st whose readiness and health
// come from st, knowing version 1 of service svc (all its traffic).
func newStubActivator(t *testing.T, cfg Config, st *stub) (*Activator, *core.Version) {
	t.Helper()
	a, err := New(t.Context(), cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.prober = st
	a.health = st.health
	t.Cleanup(func() { _ = a.Shutdown(context.WithoutCancel(t.Context())) })
	v := &core.Version{ID: 1, Service: "svc", Number: 1, ImageID: "sha256:stub",
		VersionSpec: core.VersionSpec{Image: "stub:1", Port: 8080, Timeout: core.DefaultTimeout}}
	a.Apply(core.ServiceState{Service: core.Service{Name: "svc", Policy: core.DefaultPolicy()}, Versions: []core.Version{*v},
		Traffic: &core.TrafficEntry{Traffic: core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}}}})
	return a, v
}

// states returns the states of version 1's instances, in registry order.
func (a *Activator) states() []State {
	vs := a.lookup(1)
	vs.mu.Lock()
	defer vs.mu.Unlock()
	var out []State
	for _, in := range vs.instances {
		out = append(out, in.state)
	}
	return out
}

// remover is a stub that keeps something per version, as Kubernetes keeps
// a Deployment.
type remover struct {
	*stub
	kept    map[int64]bool
	removed chan int64
}

func (r *remover) Versions(context.Context) ([]int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int64
	for id := range r.kept {
		out = append(out, id)
	}
	return out, nil
}

func (r *remover) RemoveVersion(_ context.Context, id int64) error {
	r.mu.Lock()
	delete(r.kept, id)
	r.mu.Unlock()
	r.removed <- id
	return nil
}
