package activator

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// These tests run in a testing/synctest bubble over the in-memory stub
// runtime: time moves only when every goroutine waits, so waits of seconds
// take none and the order of events is fixed.

// TestBackoffSchedule: a version whose starts fail is started at most once
// per backoff period (1 s, 2 s, 4 s, … up to MaxBackoff), requests in between
// are refused at once with the last failure and when to retry, and a
// success resets the schedule.
func TestBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		st.startErr = errors.New("exec format error")
		a, v := newStubActivator(t, Config{MaxBackoff: 8 * time.Second}, st)
		acquire := func() (*Lease, error) { return a.Acquire(t.Context(), v) }

		wantWaits := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
		for i, wait := range wantWaits {
			if _, err := acquire(); err == nil || !strings.Contains(err.Error(), "exec format error") {
				t.Fatalf("attempt %d: got %v, want the start failure", i+1, err)
			}
			if n := st.countPrefix("start "); n != i+1 {
				t.Fatalf("after attempt %d: %d starts", i+1, n)
			}
			// Requests meanwhile are refused at once, with RetryAfter.
			began := time.Now()
			_, err := acquire()
			var re *retryError
			if !errors.As(err, &re) || !errors.Is(err, core.ErrUnavailable) || re.RetryAfter() != wait {
				t.Fatalf("during backoff %d: got %v, want a retry error with RetryAfter %s", i+1, err, wait)
			}
			if !strings.Contains(err.Error(), "exec format error") || !strings.Contains(err.Error(), "in a row") {
				t.Fatalf("the backoff error %q does not say what failed", err)
			}
			if time.Since(began) != 0 {
				t.Fatalf("a refused request waited %s", time.Since(began))
			}
			time.Sleep(wait - time.Millisecond)
			if _, err := acquire(); !errors.As(err, &re) {
				t.Fatalf("1ms before the backoff ends: got %v, want still refused", err)
			}
			if n := st.countPrefix("start "); n != i+1 {
				t.Fatalf("a start during the backoff (%d starts)", n)
			}
			time.Sleep(time.Millisecond)
		}
		if got := a.Instances("svc"); len(got) != 1 || got[0].State != core.InstanceBackoff || got[0].RetryAt == nil {
			// Not reached: the backoff just ended. Check the view mid-backoff below.
			_ = got
		}

		st.set(func(s *stub) { s.startErr = nil })
		l, err := acquire()
		if err != nil {
			t.Fatalf("after the backoff with a healthy image: %v", err)
		}
		l.Release()
		vs := a.lookup(1)
		vs.mu.Lock()
		b := vs.backoff
		vs.mu.Unlock()
		if b.failures != 0 || !b.until.IsZero() {
			t.Fatalf("a successful start left the backoff at %+v", b)
		}
	})
}

// TestBackoffShowsInInstances: while backing off, the instances view has a
// backoff row with the last failure and when it ends.
func TestBackoffShowsInInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		st.startErr = errors.New("boom")
		a, v := newStubActivator(t, Config{}, st)
		_, _ = a.Acquire(t.Context(), v)
		synctest.Wait()
		got := a.Instances("svc")
		var row *core.InstanceInfo
		for i := range got {
			if got[i].State == core.InstanceBackoff {
				row = &got[i]
			}
		}
		if row == nil || !strings.Contains(row.Message, "boom") || row.RetryAt == nil || !row.RetryAt.Equal(time.Now().Add(time.Second)) {
			t.Fatalf("instances during a backoff: %+v, want a backoff row with the failure and RetryAt in 1s", got)
		}
	})
}

// TestScaleDownDrains: a scale-down of busy instances takes effect at once
// (they count no more), each stops when its last request ends, and one still
// busy after the stop grace is stopped then.
func TestScaleDownDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		a, v := newStubActivator(t, Config{StopGrace: 10 * time.Second}, st)
		v.MaxConcurrency = 1 // so that each request holds its own instance
		a.Apply(core.ServiceState{Service: core.Service{Name: "svc", Policy: core.DefaultPolicy()}, Versions: []core.Version{*v},
			Traffic: &core.TrafficEntry{Traffic: core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}}}})
		var leases []*Lease
		first, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, first)
		a.Scale(v.ID, 3)
		synctest.Wait()
		for len(leases) < 3 { // one request on each instance
			l, err := a.Acquire(t.Context(), v)
			if err != nil {
				t.Fatal(err)
			}
			leases = append(leases, l)
		}
		res := a.Scale(v.ID, 1)
		if res.Draining != 2 || res.Stopped != 0 {
			t.Fatalf("Scale(1) with 3 busy instances: %+v, want 2 draining", res)
		}
		if l := a.Load(); len(l) != 1 || l[0].Instances != 1 {
			t.Fatalf("Load after the scale-down: %+v, want 1 instance (draining ones do not count)", l)
		}
		var draining []*Lease
		for _, l := range leases {
			if l.in.state == Draining {
				draining = append(draining, l)
			}
		}
		if len(draining) != 2 {
			t.Fatalf("states %v, want 2 draining", a.states())
		}
		// A draining instance gets no new request.
		for _, l := range leases {
			if l.in.state == Ready {
				l.Release()
			}
		}
		for range 10 {
			l, err := a.Acquire(t.Context(), v)
			if err != nil {
				t.Fatal(err)
			}
			if l.in.state != Ready {
				t.Fatalf("a request was handed a %s instance", l.in.state)
			}
			l.Release()
		}
		draining[0].Release()
		synctest.Wait()
		if n := st.count("stop " + draining[0].InstanceID); n != 1 {
			t.Fatalf("a drained instance was stopped %d times after its last request, want 1", n)
		}
		if n := st.count("stop " + draining[1].InstanceID); n != 0 {
			t.Fatal("a busy draining instance was stopped before its stop grace")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := st.count("stop " + draining[1].InstanceID); n != 1 {
			t.Fatalf("a draining instance still busy after the stop grace was stopped %d times, want 1", n)
		}
		draining[1].Release()
	})
}

// TestSuspectIsReplaced: an instance that failed a request and fails its
// health probes gets no request; once a probe has failed, a request starts a
// new instance instead of waiting; after SuspectTimeout the suspect goes.
func TestSuspectIsReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		st.healthy = errors.New("GET / timed out")
		a, v := newStubActivator(t, Config{SuspectTimeout: 3 * time.Second}, st)
		l, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		bad := l.in
		l.Suspect("a request timed out")
		l.Release()
		synctest.Wait() // the first probe fails
		l2, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		if l2.in == bad {
			t.Fatal("a suspect instance got a request")
		}
		if n := st.countPrefix("start "); n != 2 {
			t.Fatalf("%d starts, want 2: a new instance for the request", n)
		}
		l2.Release()
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := st.count("stop " + bad.id); n != 1 {
			t.Fatalf("the suspect was stopped %d times after the suspect timeout, want 1 (states %v)", n, a.states())
		}
	})
}

// TestPauseThenWakeInOrder: a request that arrives while an instance is
// being paused waits for the pause to finish and then thaws it; it is never
// handed a frozen instance, and the runtime sees pause, then unpause.
func TestPauseThenWakeInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		gate := make(chan struct{})
		st.pauseGate = gate
		a, v := newStubActivator(t, Config{}, st)
		l, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		id := l.InstanceID
		l.Release()
		a.Reap(time.Now().Add(time.Minute)) // idle past pause_after, not idle_timeout
		synctest.Wait()
		if s := a.states(); len(s) != 1 || s[0] != Pausing {
			close(gate)
			t.Fatalf("states %v, want the instance pausing", s)
		}
		got := make(chan *Lease, 1)
		go func() {
			l, err := a.Acquire(t.Context(), v)
			if err != nil {
				t.Error(err)
				close(got)
				return
			}
			got <- l
		}()
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("a request got an instance that is being paused")
		default:
		}
		close(gate) // the pause finishes; the wake follows
		l = <-got
		if l == nil {
			return
		}
		defer l.Release()
		if rs := st.state(id); rs != "running" {
			t.Fatalf("handed an instance the runtime has %s", rs)
		}
		if p, u := st.count("pause "+id), st.count("unpause "+id); p != 1 || u != 1 {
			t.Fatalf("pause %d and unpause %d times, want once each", p, u)
		}
	})
}

// TestStoppedOnce: an instance being stopped stays in the registry until the
// runtime has removed it, so a re-list meanwhile neither stops it again nor
// adopts it.
func TestStoppedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		st.stopDelay = 5 * time.Second
		a, v := newStubActivator(t, Config{}, st)
		l, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		id := l.InstanceID
		l.Release()
		a.Scale(v.ID, 0)
		synctest.Wait() // the stop is under way; the runtime still lists it
		for range 3 {
			if err := a.Reconcile(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if n := st.count("stop " + id); n != 1 {
			t.Fatalf("stopped %d times, want 1", n)
		}
		if n := len(a.states()); n != 0 {
			t.Fatalf("states %v after the stop, want none", a.states())
		}
	})
}

// TestAdoptedProbedFirst: an instance adopted from an earlier run takes
// requests only once its readiness probe passes; one that never gets ready
// is removed and a request starts a new one.
func TestAdoptedProbedFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		st.instances["svc-v1-old"], st.versionOf["svc-v1-old"] = "running", 1
		st.readyDelay = 10 * time.Second
		a, v := newStubActivator(t, Config{StartTimeout: 30 * time.Second}, st)
		if err := a.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s := a.states(); len(s) != 1 || s[0] != Starting {
			t.Fatalf("adopted instance: %v, want starting (probed first)", s)
		}
		began := time.Now()
		l, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		if l.InstanceID != "svc-v1-old" || time.Since(began) != 10*time.Second || l.QueueWait != 10*time.Second || l.ColdStart != 0 {
			t.Fatalf("got %s after %s (cold start %s, queue wait %s), want the adopted instance once ready, after 10s, not as a cold start",
				l.InstanceID, time.Since(began), l.ColdStart, l.QueueWait)
		}
		if n := st.countPrefix("start "); n != 0 {
			t.Fatalf("%d starts while the adopted instance was getting ready", n)
		}
		l.Release()
	})
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		st.instances["svc-v1-old"], st.versionOf["svc-v1-old"] = "running", 1
		st.ready = errors.New("connection refused")
		st.readyDelay = time.Second
		a, v := newStubActivator(t, Config{}, st)
		if err := a.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := st.count("stop svc-v1-old"); n != 1 {
			t.Fatalf("an adopted instance that never got ready was stopped %d times, want 1", n)
		}
		st.set(func(s *stub) { s.ready = nil })
		l, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	})
}

// TestStartsBeforeRunEndWithShutdown: starts begun before Run (the daemon
// serves before its loops start) run under the activator's own context, so
// Shutdown cancels them and nothing is left behind.
func TestStartsBeforeRunEndWithShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		st.startDelay = time.Hour
		a, v := newStubActivator(t, Config{StartTimeout: 2 * time.Hour, WaitTimeout: 2 * time.Hour}, st)
		errc := make(chan error, 1)
		go func() {
			_, err := a.Acquire(t.Context(), v)
			errc <- err
		}()
		synctest.Wait()
		began := time.Now()
		if err := a.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(began); d != 0 {
			t.Fatalf("Shutdown waited %s for a start begun before Run", d)
		}
		if err := <-errc; err == nil {
			t.Fatal("a request waiting for a cancelled start got an instance")
		}
		if len(st.instances) != 0 {
			t.Fatalf("left behind: %v", st.instances)
		}
	})
}

// readyStub is a stub runtime that knows when instances are ready
// (runtime.ReadinessWaiter), as a pod's readiness probe does.
type readyStub struct {
	*stub
	waits chan string
	ready chan error
}

func (r *readyStub) WaitReady(ctx context.Context, id string) (runtime.Instance, error) {
	r.waits <- id
	select {
	case err := <-r.ready:
		if err != nil {
			return runtime.Instance{}, err
		}
		return runtime.Instance{ID: id, Addr: "ready-" + id, State: runtime.StateRunning}, nil
	case <-ctx.Done():
		return runtime.Instance{}, ctx.Err()
	}
}

// TestRuntimeReadiness: a runtime that reports readiness is asked instead
// of Wisp probing the instance, its address is the one it reports, and a
// failure it reports is the start's failure.
func TestRuntimeReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		st.ready = errors.New("the stub prober must not be asked")
		rs := &readyStub{stub: st, waits: make(chan string, 1), ready: make(chan error, 1)}
		a, err := New(t.Context(), Config{}, rs, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a.prober = st
		t.Cleanup(func() { _ = a.Shutdown(context.WithoutCancel(t.Context())) })
		v := &core.Version{ID: 1, Service: "svc", Number: 1, VersionSpec: core.VersionSpec{Image: "stub:1", Port: 8080}}
		a.Apply(core.ServiceState{Service: core.Service{Name: "svc", Policy: core.DefaultPolicy()}, Versions: []core.Version{*v}})

		rs.ready <- errors.New("image pull failed: registry.example/app:1 not found")
		if _, err := a.Acquire(t.Context(), v); err == nil || !strings.Contains(err.Error(), "image pull failed") {
			t.Fatalf("got %v, want the runtime's readiness failure", err)
		}
		<-rs.waits
		time.Sleep(time.Second) // the backoff
		rs.ready <- nil
		l, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		if id := <-rs.waits; l.Addr != "ready-"+id {
			t.Fatalf("lease address %q, want the one the runtime reported (ready-%s)", l.Addr, id)
		}
	})
}

// TestVersionRemover: a deleted version's runtime resources are removed,
// and a re-list removes those of versions the activator does not know.
func TestVersionRemover(t *testing.T) {
	r := &remover{stub: newStub(), kept: map[int64]bool{1: true, 7: true}, removed: make(chan int64, 4)}
	a, err := New(t.Context(), Config{}, r, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.prober, a.health = r.stub, r.stub.health
	defer func() { _ = a.Shutdown(context.WithoutCancel(t.Context())) }()
	v := core.Version{ID: 1, Service: "svc", Number: 1, ImageID: "sha256:stub", VersionSpec: core.VersionSpec{Image: "stub:1", Port: 8080}}
	a.Apply(core.ServiceState{Service: core.Service{Name: "svc", Policy: core.DefaultPolicy()}, Versions: []core.Version{v}})
	if err := a.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-r.removed:
		if id != 7 {
			t.Fatalf("re-list removed version %d, want the unknown 7", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the re-list removed nothing")
	}
	a.Remove("svc")
	select {
	case id := <-r.removed:
		if id != 1 {
			t.Fatalf("deleting the service removed version %d, want 1", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deleting the service removed nothing")
	}
}
