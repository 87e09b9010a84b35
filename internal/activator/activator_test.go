package activator_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/activator"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/fake"
	"github.com/wisp-run/wisp/internal/runtime/runtimetest"
)

func version(id int64, service string, env ...string) *core.Version {
	return &core.Version{ID: id, Service: service, Number: int(id), ImageID: "sha256:greeter",
		VersionSpec: core.VersionSpec{Image: "greeter:1", Port: 8080, Env: env, Timeout: core.DefaultTimeout}}
}

type env struct {
	rt  *fake.Runtime
	act *activator.Activator
}

// state is a service with versions, all of them routable: the first gets
// all the traffic and the others a tag each.
func state(service string, pol core.ScalingPolicy, versions ...*core.Version) core.ServiceState {
	s := core.ServiceState{Service: core.Service{Name: service, Policy: pol}}
	t := &core.TrafficEntry{Traffic: core.Traffic{Tags: map[string]int{}}}
	for i, v := range versions {
		s.Versions = append(s.Versions, *v)
		if i == 0 {
			t.Weights = []core.Weight{{Version: v.Number, Percent: 100}}
		} else {
			t.Tags["t"+strconv.Itoa(v.Number)] = v.Number
		}
	}
	if len(versions) > 0 {
		s.Traffic = t
	}
	return s
}

// svcVersions are the versions 1–9 of service svc that every env knows.
func svcVersions() []*core.Version {
	var vs []*core.Version
	for id := int64(1); id <= 9; id++ {
		vs = append(vs, version(id, "svc"))
	}
	return vs
}

func newEnv(t *testing.T, cfg activator.Config, behave func(runtime.InstanceSpec) fake.Behavior) *env {
	t.Helper()
	rt := fake.New(fake.Config{Images: map[string]string{"greeter:1": "sha256:greeter"}, Behave: behave})
	if cfg.ReapInterval == 0 {
		cfg.ReapInterval = time.Hour // tests call Reap themselves
	}
	act := newActivator(t, cfg, rt)
	act.Apply(state("svc", policy(), svcVersions()...))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- act.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// The fake's events have no history: one made before Run watches
	// reaches nobody (a pause by hand, seen under load in CI).
	waitFor(t, "the activator to watch the runtime", func() bool { return rt.Watchers() > 0 })
	return &env{rt: rt, act: act}
}

// newActivator returns an activator that is shut down when the test ends.
func newActivator(t *testing.T, cfg activator.Config, rt runtime.Runtime) *activator.Activator {
	t.Helper()
	act, err := activator.New(t.Context(), cfg, rt, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(t.Context()), 10*time.Second)
		defer scancel()
		if err := act.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return act
}

func policy() core.ScalingPolicy { return core.DefaultPolicy() }

func get(t *testing.T, e *env, v *core.Version) string {
	t.Helper()
	l, err := e.act.Acquire(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	body, err := runtimetest.Get(t.Context(), "http://"+l.Addr+"/", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestColdStartIsCoalesced(t *testing.T) {
	var queued atomic.Int64 // Config.Queueing: the autoscaler's pokes
	e := newEnv(t, activator.Config{Queueing: func() { queued.Add(1) }}, func(runtime.InstanceSpec) fake.Behavior {
		return fake.Behavior{StartDelay: 200 * time.Millisecond, ReadyDelay: 100 * time.Millisecond}
	})
	v := version(1, "svc", "GREETING=storm")
	e.act.Apply(state("svc", policy(), v))
	var wg sync.WaitGroup
	var cold atomic.Int64
	errs := make(chan error, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := e.act.Acquire(t.Context(), v)
			if err != nil {
				errs <- err
				return
			}
			if l.ColdStart > 0 {
				cold.Add(1)
			}
			l.Release()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.rt.Starts(); n != 1 {
		t.Fatalf("100 concurrent first requests started %d instances, want 1", n)
	}
	if cold.Load() != 100 {
		t.Fatalf("%d of 100 leases report a cold start", cold.Load())
	}
	if n := queued.Load(); n != 100 {
		t.Fatalf("Config.Queueing was called %d times for 100 requests that each waited, want 100", n)
	}
	if body := get(t, e, v); body != "Hello, storm!\n" {
		t.Fatalf("body %q", body)
	}
	if got := e.act.Instances("svc"); len(got) != 1 || got[0].State != core.InstanceReady {
		t.Fatalf("instances: %+v", got)
	}
}

// TestSlowStartDoesNotBlockOthers: a version that takes 2s to start delays
// neither another service nor another version.
func TestSlowStartDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t, activator.Config{}, func(s runtime.InstanceSpec) fake.Behavior {
		if s.Service == "slow" {
			return fake.Behavior{StartDelay: 2 * time.Second}
		}
		return fake.Behavior{}
	})
	slow := version(11, "slow")
	fast := version(12, "fast")
	e.act.Apply(state("slow", policy(), slow))
	e.act.Apply(state("fast", policy(), fast))
	go func() {
		if l, err := e.act.Acquire(context.Background(), slow); err == nil {
			l.Release()
		}
	}()
	time.Sleep(50 * time.Millisecond) // the slow start is under way
	for range 20 {
		start := time.Now()
		get(t, e, fast)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("a request to another service took %s during a slow start", d)
		}
	}
}

func TestStartFailures(t *testing.T) {
	cases := []struct {
		name    string
		behave  fake.Behavior
		within  time.Duration
		message string
	}{
		{"runtime error", fake.Behavior{StartErr: fake.ErrStart}, time.Second, "fake: start failed"},
		{"never listens", fake.Behavior{NeverListen: true, Logs: "booting\n"}, 3 * time.Second, "not ready within the start timeout of 1.5s"},
		{"exits at once", fake.Behavior{ExitAtOnce: true, ExitCode: 3, Logs: "panic: no config\n"}, time.Second, "exited with code 3"},
		{"exits before it has an address", fake.Behavior{ExitAtOnce: true, NoAddr: true, ExitCode: 4, Logs: "panic: no config\n"}, time.Second, "exited with code 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fail atomic.Bool
			fail.Store(true)
			e := newEnv(t, activator.Config{StartTimeout: 1500 * time.Millisecond, StopGrace: time.Second, MinBackoff: 300 * time.Millisecond}, func(runtime.InstanceSpec) fake.Behavior {
				if fail.Load() {
					return tc.behave
				}
				return fake.Behavior{}
			})
			v := version(1, "svc")
			start := time.Now()
			_, err := e.act.Acquire(t.Context(), v)
			if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("got %v, want unavailable with %q", err, tc.message)
			}
			if d := time.Since(start); d > tc.within {
				t.Fatalf("failure took %s, want under %s", d, tc.within)
			}
			if tc.behave.Logs != "" && !strings.Contains(err.Error(), strings.TrimSpace(tc.behave.Logs)) {
				t.Fatalf("error %q lacks the instance's last output", err)
			}
			waitFor(t, "the failed instance to be removed", func() bool {
				l, _ := e.rt.List(t.Context())
				return len(l) == 0
			})
			// Within the backoff, a request is refused at once and told
			// when to come back; after it, the next request tries again.
			fail.Store(false)
			began := time.Now()
			_, err = e.act.Acquire(t.Context(), v)
			var ra interface{ RetryAfter() time.Duration }
			if !errors.Is(err, core.ErrUnavailable) || !errors.As(err, &ra) || ra.RetryAfter() <= 0 || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("during the backoff: got %v, want unavailable with a RetryAfter and the last failure %q", err, tc.message)
			}
			if d := time.Since(began); d > 100*time.Millisecond {
				t.Fatalf("a request during the backoff waited %s, want an answer at once", d)
			}
			time.Sleep(ra.RetryAfter())
			if body := get(t, e, v); body != "Hello, World!\n" {
				t.Fatalf("retry: %q", body)
			}
		})
	}
}

func TestWaitingIsBounded(t *testing.T) {
	e := newEnv(t, activator.Config{MaxWaiters: 5, WaitTimeout: 300 * time.Millisecond}, func(runtime.InstanceSpec) fake.Behavior {
		return fake.Behavior{StartDelay: 5 * time.Second}
	})
	v := version(1, "svc")
	var wg sync.WaitGroup
	var full, timedOut atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.act.Acquire(t.Context(), v)
			switch {
			case err != nil && strings.Contains(err.Error(), "already waiting"):
				full.Add(1)
			case err != nil && strings.Contains(err.Error(), "was ready within"):
				timedOut.Add(1)
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if full.Load() != 15 || timedOut.Load() != 5 {
		t.Fatalf("got %d refused and %d timed out, want 15 and 5", full.Load(), timedOut.Load())
	}
}

func TestMaxConcurrencyWaits(t *testing.T) {
	e := newEnv(t, activator.Config{WaitTimeout: 2 * time.Second}, nil)
	v := version(1, "svc")
	v.MaxConcurrency = 1
	e.act.Apply(state("svc", policy(), v))
	l1, err := e.act.Acquire(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	var waited, cold time.Duration
	go func() {
		l2, err := e.act.Acquire(t.Context(), v)
		if err == nil {
			waited, cold = l2.QueueWait, l2.ColdStart
			got <- time.Now()
			l2.Release()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	released := time.Now()
	l1.Release()
	select {
	case at := <-got:
		if at.Before(released) {
			t.Fatal("a second request got the instance while the first held its only slot")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the waiting request never got the freed instance")
	}
	// It queued for a running instance: a queue wait, not a cold start.
	if waited < 150*time.Millisecond || cold != 0 {
		t.Fatalf("queue wait %s and cold start %s, want about 200ms of queue wait and no cold start", waited, cold)
	}
}

func TestReaper(t *testing.T) {
	e := newEnv(t, activator.Config{StopGrace: time.Second}, nil)
	v := version(1, "svc")
	pol := core.ScalingPolicy{MaxInstances: 1, TargetConcurrency: 1, IdleTimeout: core.Duration(2 * time.Second), PauseAfter: core.Duration(time.Second)}
	e.act.Apply(state("svc", pol, svcVersions()...))
	l, err := e.act.Acquire(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// Never while a request is in flight, however long it is idle.
	e.act.Reap(now.Add(time.Hour))
	if got := e.act.Instances(""); len(got) != 1 || got[0].State != core.InstanceReady {
		t.Fatalf("reaped with a request in flight: %+v", got)
	}
	l.Release()
	e.act.Reap(time.Now().Add(1500 * time.Millisecond))
	waitFor(t, "the instance to pause", func() bool {
		in := started(t, e.rt)
		return len(in) == 1 && in[0].State == runtime.StatePaused
	})
	// A request wakes it.
	if body := get(t, e, v); body != "Hello, World!\n" {
		t.Fatalf("after wake: %q", body)
	}
	if n := e.rt.Starts(); n != 1 {
		t.Fatalf("waking started a new instance (%d starts)", n)
	}
	e.act.Reap(time.Now().Add(2500 * time.Millisecond))
	if got := e.act.Instances(""); len(got) != 1 || got[0].State != core.InstanceStopping || !strings.Contains(got[0].Message, "idle for") {
		t.Fatalf("idle instance not being removed: %+v", got)
	}
	waitFor(t, "the container to be stopped", func() bool { return len(started(t, e.rt)) == 0 })
	// What is left is the spare, created but never started.
	if l, _ := e.rt.List(t.Context()); len(l) != 1 || l[0].State != runtime.StateCreated {
		t.Fatalf("after scale to zero: %+v, want one created spare", l)
	}
	get(t, e, v)
	if n := e.rt.Starts(); n != 2 {
		t.Fatalf("after scale to zero, a request must start a new instance: %d starts", n)
	}
	if n := e.rt.FromCreated(); n != 1 {
		t.Fatalf("the cold start after scale to zero did not use the spare (%d from created)", n)
	}
}

func TestMinInstancesKept(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	v := version(1, "svc")
	pol := core.DefaultPolicy()
	pol.MinInstances = 1
	e.act.Apply(state("svc", pol, svcVersions()...))
	get(t, e, v)
	e.act.Reap(time.Now().Add(time.Hour))
	if got := live(e); len(got) != 1 {
		t.Fatalf("min_instances 1 but %+v", got) // paused is fine: it is kept
	}
}

func TestDiedInstanceIsReplaced(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	v := version(1, "svc")
	get(t, e, v)
	first := e.act.Instances("")[0].ID
	e.rt.Kill(first, 137)
	waitFor(t, "the dead instance to be dropped", func() bool { return len(live(e)) == 0 })
	get(t, e, v)
	if got := live(e); len(got) != 1 || got[0].ID == first {
		t.Fatalf("after a kill: %+v", got)
	}
	// Removed by hand: the same.
	e.rt.Remove(live(e)[0].ID)
	waitFor(t, "the removed instance to be dropped", func() bool { return len(live(e)) == 0 })
	get(t, e, v)
	if n := e.rt.Starts(); n != 3 {
		t.Fatalf("got %d starts, want 3", n)
	}
}

func TestReconcileAdoptsAndRemoves(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	ctx := t.Context()
	known := version(1, "svc")
	// Two instances from an "earlier run": one of a known version, one not.
	if _, err := e.rt.Start(ctx, runtime.InstanceSpec{ID: "svc-v1-old", Service: "svc", VersionID: 1, VersionNumber: 1, Image: "sha256:greeter", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start(ctx, runtime.InstanceSpec{ID: "ghost-v1-old", Service: "ghost", VersionID: 99, VersionNumber: 1, Image: "sha256:greeter", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	if err := e.act.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := e.act.Instances("")
	if len(got) != 1 || got[0].ID != "svc-v1-old" {
		t.Fatalf("adopted: %+v", got)
	}
	if s := got[0].State; s != core.InstanceStarting && s != core.InstanceReady {
		t.Fatalf("adopted instance in state %s, want starting (probed) or ready", s)
	}
	waitFor(t, "the orphan to be removed", func() bool {
		_, err := e.rt.Inspect(ctx, "ghost-v1-old")
		return errors.Is(err, core.ErrNotFound)
	})
	get(t, e, known)
	if n := e.rt.Starts(); n != 2 {
		t.Fatalf("the adopted instance was not used: %d starts", n)
	}
}

func TestSyncRemovesDeletedVersions(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	get(t, e, version(1, "svc"))
	get(t, e, version(2, "svc"))
	v2 := *version(2, "svc")
	e.act.Sync([]core.ServiceState{{Service: core.Service{Name: "svc", Policy: core.DefaultPolicy()}, Versions: []core.Version{v2}}})
	got := live(e)
	if len(got) != 1 || got[0].Version != 2 {
		t.Fatalf("after deleting v1: %+v", got)
	}
	waitFor(t, "v1's containers, its spare included, to go", func() bool {
		l, _ := e.rt.List(t.Context())
		for _, in := range l {
			if in.VersionID == 1 {
				return false
			}
		}
		return len(started(t, e.rt)) == 1
	})
}

func TestShutdown(t *testing.T) {
	for _, keep := range []bool{false, true} {
		rt := fake.New(fake.Config{Images: map[string]string{"greeter:1": "sha256:greeter"}})
		act := newActivator(t, activator.Config{KeepInstances: keep, StopGrace: time.Second}, rt)
		act.Apply(state("svc", policy(), version(1, "svc")))
		l, err := act.Acquire(t.Context(), version(1, "svc"))
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
		waitFor(t, "the spare", func() bool { return rt.Creates() == 1 })
		if err := act.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		list, _ := rt.List(t.Context())
		// With keep, the instance and its spare stay for the next start.
		if want := map[bool]int{false: 0, true: 2}[keep]; len(list) != want {
			t.Fatalf("keep=%v: %d instances left (%+v), want %d", keep, len(list), list, want)
		}
	}
}

// live lists the instances that are not being removed.
func live(e *env) []core.InstanceInfo {
	var out []core.InstanceInfo
	for _, in := range e.act.Instances("") {
		if in.State != core.InstanceStopping {
			out = append(out, in)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestBalance: with 4 ready instances and steady load, requests in flight
// stay balanced: over the run, the busiest instance averages at most 1.5×
// the in-flight requests of the least busy one.
func TestBalance(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	v := version(1, "svc")
	get(t, e, v)
	e.act.Scale(v.ID, 4)
	waitFor(t, "4 ready instances", func() bool {
		n := 0
		for _, in := range e.act.Instances("svc") {
			if in.State == core.InstanceReady {
				n++
			}
		}
		return n == 4
	})
	stop := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				l, err := e.act.Acquire(t.Context(), v)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(5 * time.Millisecond)
				l.Release()
			}
		}()
	}
	sums := map[string]int64{}
	samples := 0
	for time.Now().Before(stop.Add(-100 * time.Millisecond)) {
		for _, in := range e.act.Instances("svc") {
			sums[in.ID] += in.InFlight
		}
		samples++
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	if len(sums) != 4 {
		t.Fatalf("load reached %d instances, want 4", len(sums))
	}
	lo, hi := int64(1<<62), int64(0)
	for _, s := range sums {
		lo, hi = min(lo, s), max(hi, s)
	}
	t.Logf("average in flight per instance over %d samples: %v", samples, sums)
	if lo == 0 || float64(hi)/float64(lo) > 1.5 {
		t.Fatalf("unbalanced: busiest %d, least busy %d (sums over %d samples), want a ratio ≤ 1.5", hi, lo, samples)
	}
}

// TestSuspectInstanceIsSkipped: an instance that failed a request gets no
// new request until a probe finds it healthy again (within SuspectTimeout).
func TestSuspectInstanceIsSkipped(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	v := version(1, "svc")
	get(t, e, v)
	e.act.Scale(v.ID, 2)
	waitFor(t, "2 ready instances", func() bool {
		return len(e.act.Instances("svc")) == 2 && e.act.Instances("svc")[1].State == core.InstanceReady
	})
	l, err := e.act.Acquire(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	bad := l.InstanceID
	e.rt.Hang(bad) // the probe fails until Unhang
	l.Suspect("test")
	l.Release()
	for range 50 {
		l2, err := e.act.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		if l2.InstanceID == bad {
			t.Fatal("a suspect instance got a request before a probe cleared it")
		}
		l2.Release()
	}
	e.rt.Unhang(bad)
	waitFor(t, "the suspect instance to recover and serve again", func() bool {
		l3, err := e.act.Acquire(t.Context(), v)
		if err != nil {
			return false
		}
		defer l3.Release()
		return l3.InstanceID == bad
	})
}

// BenchmarkAcquireRelease: the activator's share of every request with a
// ready instance.
func BenchmarkAcquireRelease(b *testing.B) {
	rt := fake.New(fake.Config{Images: map[string]string{"greeter:1": "sha256:greeter"}})
	act, err := activator.New(b.Context(), activator.Config{}, rt, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = act.Shutdown(context.WithoutCancel(b.Context())) }()
	v := version(1, "svc")
	act.Apply(state("svc", policy(), v))
	l, err := act.Acquire(b.Context(), v)
	if err != nil {
		b.Fatal(err)
	}
	l.Release()
	b.ReportAllocs()
	for b.Loop() {
		l, _ := act.Acquire(b.Context(), v)
		l.Release()
	}
}

// TestScaleUpBacksOff: scale-up starts that fail are not retried at once.
func TestScaleUpBacksOff(t *testing.T) {
	var fail atomic.Bool
	e := newEnv(t, activator.Config{}, func(runtime.InstanceSpec) fake.Behavior {
		if fail.Load() {
			return fake.Behavior{StartErr: fake.ErrStart}
		}
		return fake.Behavior{}
	})
	v := version(1, "svc")
	get(t, e, v)
	fail.Store(true)
	e.act.Scale(v.ID, 3)
	waitFor(t, "the failed scale-up starts to finish", func() bool {
		for _, l := range e.act.Load() {
			if l.Instances == 1 {
				return true
			}
		}
		return false
	})
	before := e.rt.Attempts()
	if before != 3 {
		t.Fatalf("%d start attempts, want 1 cold start and 2 failed scale-ups", before)
	}
	for range 5 {
		e.act.Scale(v.ID, 3) // as the autoscaler would, every tick
	}
	time.Sleep(100 * time.Millisecond)
	if after := e.rt.Attempts(); after != before {
		t.Fatalf("%d more start attempts right after failures; want a back-off", after-before)
	}
}

// TestParallelStartsAreBounded: a scale-up from 1 to 8 runs at most
// ParallelStarts starts at once; starts still queued when Scale asks for
// fewer are dropped, never begun; the first instance of another version
// starts at once, whatever the queue.
func TestParallelStartsAreBounded(t *testing.T) {
	var slow atomic.Bool
	var running, peak atomic.Int64
	e := newEnv(t, activator.Config{ParallelStarts: 2}, func(spec runtime.InstanceSpec) fake.Behavior {
		if !slow.Load() || spec.VersionID != 1 {
			return fake.Behavior{}
		}
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.AfterFunc(300*time.Millisecond, func() { running.Add(-1) })
		return fake.Behavior{StartDelay: 300 * time.Millisecond}
	})
	v := version(1, "svc")
	get(t, e, v)
	slow.Store(true)
	e.act.Scale(v.ID, 8)
	if got := loadOf(e, v.ID).Instances; got != 8 {
		t.Fatalf("Load reports %d instances, want 8 (1 ready, 7 starting)", got)
	}
	time.Sleep(100 * time.Millisecond)
	if got := e.rt.Attempts(); got != 3 {
		t.Fatalf("%d start attempts 100ms after Scale(8), want 3: the first and 2 in parallel", got)
	}
	// The first instance of another version does not queue behind them.
	began := time.Now()
	get(t, e, version(2, "svc"))
	if d := time.Since(began); d > 250*time.Millisecond {
		t.Errorf("a first instance waited %s behind scale-up starts", d)
	}
	e.act.Scale(v.ID, 3) // 2 starting, 5 queued: the queued ones go
	if got := loadOf(e, v.ID).Instances; got != 3 {
		t.Fatalf("after Scale(3), Load reports %d instances, want 3", got)
	}
	waitFor(t, "the two starts to finish", func() bool {
		ready := 0
		for _, in := range e.act.Instances("svc") {
			if in.VersionID == v.ID && in.State == core.InstanceReady {
				ready++
			}
		}
		return ready == 3
	})
	time.Sleep(100 * time.Millisecond) // a dropped start would have begun by now
	if got := e.rt.Attempts(); got != 4 {
		t.Errorf("%d start attempts in all, want 4 (3 of version 1, 1 of version 2): dropped starts must not begin", got)
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d scale-up starts ran at once, want at most 2", p)
	}
	if got := loadOf(e, v.ID).Instances; got != 3 {
		t.Errorf("Load reports %d instances at the end, want 3", got)
	}
}

func loadOf(e *env, versionID int64) core.VersionLoad {
	for _, l := range e.act.Load() {
		if l.VersionID == versionID {
			return l
		}
	}
	return core.VersionLoad{}
}

// TestDeletedVersionIsNotStarted: a request routed by a snapshot older than
// the deletion gets a clear error, and no instance is started.
func TestDeletedVersionIsNotStarted(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	v2 := *version(2, "svc")
	e.act.Sync([]core.ServiceState{{Service: core.Service{Name: "svc", Policy: core.DefaultPolicy()}, Versions: []core.Version{v2}}})
	_, err := e.act.Acquire(t.Context(), version(1, "svc"))
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "was deleted") {
		t.Fatalf("got %v, want not found", err)
	}
	if n := e.rt.Attempts(); n != 0 {
		t.Fatalf("%d starts for a deleted version", n)
	}
	get(t, e, &v2) // versions that exist still start
}

// started lists the instances that were started (not spares).
func started(t *testing.T, rt runtime.Runtime) []runtime.Instance {
	t.Helper()
	l, err := rt.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := l[:0]
	for _, in := range l {
		if in.State != runtime.StateCreated {
			out = append(out, in)
		}
	}
	return out
}

// TestSpareAdoptedAfterRestart: a spare left by --keep-instances is used by
// the next run's first cold start.
func TestSpareAdoptedAfterRestart(t *testing.T) {
	rt := fake.New(fake.Config{Images: map[string]string{"greeter:1": "sha256:greeter"}})
	st := state("svc", policy(), version(1, "svc"))
	first := newActivator(t, activator.Config{KeepInstances: true}, rt)
	first.Apply(st)
	l, err := first.Acquire(t.Context(), version(1, "svc"))
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	waitFor(t, "the spare", func() bool { list, _ := rt.List(t.Context()); return len(list) == 2 })
	if err := first.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, in := range started(t, rt) {
		_ = rt.Stop(t.Context(), in.ID, time.Second) // only the spare survives
	}
	second := newActivator(t, activator.Config{}, rt)
	second.Apply(st)
	if err := second.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	l, err = second.Acquire(t.Context(), version(1, "svc"))
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if rt.FromCreated() != 1 {
		t.Fatalf("the adopted spare was not used (%d from created)", rt.FromCreated())
	}
}

// TestSpareOnlyWhileRoutable: a version that loses its traffic loses its
// spare, and gets none while it has no traffic.
func TestSpareOnlyWhileRoutable(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	v1, v2 := *version(1, "svc"), *version(2, "svc")
	svc := core.Service{Name: "svc", Policy: core.DefaultPolicy()}
	split := func(n int) []core.ServiceState {
		return []core.ServiceState{{Service: svc, Versions: []core.Version{v1, v2},
			Traffic: &core.TrafficEntry{Traffic: core.Traffic{Weights: []core.Weight{{Version: n, Percent: 100}}}}}}
	}
	e.act.Sync(split(1))
	get(t, e, &v1)
	waitFor(t, "v1's spare", func() bool { return e.rt.Creates() == 1 })
	e.act.Sync(split(2)) // v1 loses its traffic
	waitFor(t, "v1's spare to go", func() bool {
		l, _ := e.rt.List(t.Context())
		for _, in := range l {
			if in.State == runtime.StateCreated {
				return false
			}
		}
		return true
	})
	get(t, e, &v1) // still reachable (a pinned request), but it makes no spare
	time.Sleep(100 * time.Millisecond)
	if n := e.rt.Creates(); n != 1 {
		t.Fatalf("%d spares created; a version without traffic should get none", n)
	}
}

func TestConfigValidate(t *testing.T) {
	rt := fake.New(fake.Config{})
	for _, c := range []activator.Config{
		{StartTimeout: -time.Second},
		{MaxWaiters: -1},
		{ParallelStarts: -1},
		{ReapInterval: time.Millisecond},
		{MinBackoff: 2 * time.Second, MaxBackoff: time.Second},
		{SuspectTimeout: -time.Second},
	} {
		if _, err := activator.New(t.Context(), c, rt, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

// TestHungInstanceIsReplaced (issue 10, fault 1): an instance that accepts
// connections but never answers, once reported suspect (the router does so
// when a request times out), gets no more requests; a request starts a new
// instance rather than waiting, and the hung one is removed after the
// suspect timeout. A TCP probe would not see the hang.
func TestHungInstanceIsReplaced(t *testing.T) {
	e := newEnv(t, activator.Config{SuspectTimeout: 2 * time.Second}, nil)
	v := version(1, "svc")
	l, err := e.act.Acquire(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	hung := l.InstanceID
	e.rt.Hang(hung)
	l.Suspect("a request timed out")
	l.Release()
	began := time.Now()
	body := get(t, e, v)
	if body != "Hello, World!\n" {
		t.Fatalf("body %q", body)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("the request behind a hung instance took %s", d)
	}
	if n := e.rt.Starts(); n != 2 {
		t.Fatalf("%d starts, want a new instance beside the hung one", n)
	}
	waitFor(t, "the hung instance to be removed", func() bool {
		_, err := e.rt.Inspect(t.Context(), hung)
		return errors.Is(err, core.ErrNotFound)
	})
}

// TestFrozenByHandIsThawed (fault 1): an instance frozen outside Wisp (docker
// pause) is marked paused from the runtime's event, and the next request
// thaws it instead of timing out on it.
func TestFrozenByHandIsThawed(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	v := version(1, "svc")
	get(t, e, v)
	id := live(e)[0].ID
	if err := e.rt.Pause(t.Context(), id); err != nil { // "by hand"
		t.Fatal(err)
	}
	waitFor(t, "the instance to show as paused", func() bool {
		in := live(e)
		return len(in) == 1 && in[0].State == core.InstancePaused
	})
	began := time.Now()
	if body := get(t, e, v); body != "Hello, World!\n" {
		t.Fatalf("body %q", body)
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("a request to a frozen instance took %s", d)
	}
	if n := e.rt.Starts(); n != 1 {
		t.Fatalf("%d starts, want the frozen instance thawed, not replaced", n)
	}
	// Thawed by hand: ready again without a request.
	if err := e.rt.Pause(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "paused", func() bool { return live(e)[0].State == core.InstancePaused })
	if err := e.rt.Unpause(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready after a thaw by hand", func() bool { return live(e)[0].State == core.InstanceReady })
}

// TestCrashLoopBacksOff (fault 2): ten clients sending for 3 s to a version
// whose process exits at start start it about once per backoff period
// (t = 0, 1 s, 3 s), not once per request; every request gets an answer at
// once with the exit code and output, and Retry-After.
func TestCrashLoopBacksOff(t *testing.T) {
	e := newEnv(t, activator.Config{}, func(runtime.InstanceSpec) fake.Behavior {
		return fake.Behavior{ExitAtOnce: true, ExitCode: 1, Logs: "panic: missing DATABASE_URL\n"}
	})
	v := version(1, "svc")
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var answered, withRetry atomic.Int64
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				_, err := e.act.Acquire(t.Context(), v)
				if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "code 1") || !strings.Contains(err.Error(), "DATABASE_URL") {
					t.Errorf("got %v, want unavailable with the exit code and output", err)
					return
				}
				answered.Add(1)
				var ra interface{ RetryAfter() time.Duration }
				if errors.As(err, &ra) && ra.RetryAfter() > 0 {
					withRetry.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if n := e.rt.Attempts(); n < 2 || n > 3 {
		t.Fatalf("%d starts in 3 s, want 2 or 3 (1 s, then 2 s of backoff)", n)
	}
	if withRetry.Load() < answered.Load()-int64(e.rt.Attempts())*10 {
		t.Fatalf("%d of %d answers carried a RetryAfter", withRetry.Load(), answered.Load())
	}
	t.Logf("%d requests answered, %d starts", answered.Load(), e.rt.Attempts())
}

// TestOOMIsReported: an instance killed for memory is removed, counted with
// its cause, and the next request gets a new one.
func TestOOMIsReported(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, activator.Config{Registerer: reg}, nil)
	v := version(1, "svc")
	get(t, e, v)
	e.rt.OOM(live(e)[0].ID)
	waitFor(t, "the killed instance to go", func() bool { return len(live(e)) == 0 })
	if got := counterValue(t, reg, "wisp_instances_lost_total", map[string]string{"cause": "oom"}); got != 1 {
		t.Fatalf("wisp_instances_lost_total{cause=oom} = %v, want 1", got)
	}
	get(t, e, v)
}

// TestDeletedVersionsLeaveNoSeries (fault 7): the per-version series of a
// version that was deleted are gone from the next scrape.
func TestDeletedVersionsLeaveNoSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, activator.Config{Registerer: reg}, nil)
	get(t, e, version(1, "svc"))
	get(t, e, version(2, "svc"))
	if counterValue(t, reg, "wisp_cold_starts_total", map[string]string{"version": "1"}) != 1 {
		t.Fatal("no cold start counted for version 1")
	}
	e.act.Apply(state("svc", policy(), version(2, "svc")))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "version" && lp.GetValue() == "1" {
					t.Errorf("%s still has a series for the deleted version 1", mf.GetName())
				}
			}
		}
	}
}

// counterValue sums the counters named name whose labels include want.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestFrozenWithRequestsInFlightIsThawed: requests stuck in an instance
// frozen by hand are answered as soon as the freeze is seen, even when
// other instances take the new requests.
func TestFrozenWithRequestsInFlightIsThawed(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	v := version(1, "svc")
	l, err := e.act.Acquire(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := e.rt.Pause(t.Context(), l.InstanceID); err != nil { // "by hand", a request in flight
		t.Fatal(err)
	}
	body, err := runtimetest.Get(t.Context(), "http://"+l.Addr+"/", 3*time.Second)
	if err != nil || body != "Hello, World!\n" {
		t.Fatalf("a request to the frozen instance: %q, %v; want it answered once Wisp thaws it", body, err)
	}
}

// TestLivenessReplaces: a version's liveness probe replaces a ready
// instance that fails it failure_threshold times in a row, and leaves a
// healthy one alone.
func TestLivenessReplaces(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	sick := version(1, "svc")
	// The greeter answers /sleep after the delay: far longer than the
	// probe's timeout, so every check fails.
	sick.Liveness = &core.Probe{Path: "/sleep?ms=5000", Period: core.Duration(time.Second), Timeout: core.Duration(100 * time.Millisecond), FailureThreshold: 2}
	healthy := version(2, "svc")
	healthy.Liveness = &core.Probe{Path: "/", Period: core.Duration(time.Second), Timeout: core.Duration(time.Second), FailureThreshold: 2}
	e.act.Apply(state("svc", policy(), sick, healthy))
	get(t, e, sick)
	get(t, e, healthy)
	ids := map[int]string{}
	for _, in := range live(e) {
		ids[in.Version] = in.ID
	}
	waitFor(t, "the instance failing its liveness probe to be replaced", func() bool {
		_, err := e.rt.Inspect(t.Context(), ids[1])
		return errors.Is(err, core.ErrNotFound)
	})
	if _, err := e.rt.Inspect(t.Context(), ids[2]); err != nil {
		t.Fatalf("the healthy instance was touched: %v", err)
	}
	if body := get(t, e, sick); body != "Hello, World!\n" {
		t.Fatalf("after the replacement: %q", body)
	}
}

// TestBrokenSpareIsReplaced: a spare that fails to start (its sandbox
// died, say) is replaced by a new instance that starts and serves the
// waiting request, with no failed start counted against the version.
func TestBrokenSpareIsReplaced(t *testing.T) {
	var breakNext atomic.Bool
	e := newEnv(t, activator.Config{}, func(runtime.InstanceSpec) fake.Behavior {
		if breakNext.CompareAndSwap(true, false) {
			return fake.Behavior{StartErr: errors.New("cannot join network of a non running container")}
		}
		return fake.Behavior{}
	})
	v := version(1, "svc")
	get(t, e, v)
	waitFor(t, "the spare", func() bool { return e.rt.Creates() == 1 })
	first := started(t, e.rt)
	if len(first) != 1 {
		t.Fatalf("started %+v, want one instance", first)
	}
	e.rt.Kill(first[0].ID, 137)
	waitFor(t, "the killed instance to be dropped", func() bool { return len(live(e)) == 0 })
	breakNext.Store(true) // the spare's start fails
	if body := get(t, e, v); body != "Hello, World!\n" {
		t.Fatalf("after the broken spare: %q", body)
	}
	if e.rt.FromCreated() != 1 || breakNext.Load() {
		t.Fatalf("the spare was not tried (%d from created)", e.rt.FromCreated())
	}
	for _, in := range e.act.Instances("") {
		if in.RetryAt != nil {
			t.Fatalf("the version backs off after a broken spare: %+v", in)
		}
	}
}
