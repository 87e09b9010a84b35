package activator_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/activator"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/fake"
)

// routedTo is a service whose traffic goes all to version to; the other
// versions are known but get none (no weight, no tag).
func routedTo(service string, pol core.ScalingPolicy, to *core.Version, others ...*core.Version) core.ServiceState {
	s := core.ServiceState{Service: core.Service{Name: service, Policy: pol}, Versions: []core.Version{*to}}
	for _, v := range others {
		s.Versions = append(s.Versions, *v)
	}
	s.Traffic = &core.TrafficEntry{Traffic: core.Traffic{Weights: []core.Weight{{Version: to.Number, Percent: 100}}}}
	return s
}

// TestKeepPrevious: after traffic moves away from v1, one of its instances
// is kept paused past idle_timeout; traffic coming back thaws it before
// Apply returns, so the first request is no cold start; after the window
// it goes as any idle instance.
func TestKeepPrevious(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	v1, v2 := version(1, "svc"), version(2, "svc")
	pol := core.DefaultPolicy()
	pol.IdleTimeout, pol.PauseAfter, pol.KeepPrevious = core.Duration(2*time.Second), 0, core.Duration(10*time.Second)
	e.act.Apply(routedTo("svc", pol, v1, v2))
	get(t, e, v1)
	moved := time.Now()
	e.act.Apply(routedTo("svc", pol, v2, v1))
	e.act.Reap(moved.Add(3 * time.Second)) // past idle_timeout, inside keep_previous
	waitRuntime(t, e, "v1 kept paused", 0, 1)
	e.act.Reap(moved.Add(5 * time.Second))
	if n := len(live(e)); n != 1 {
		t.Fatalf("%d instances after another reap in the window, want the kept one", n)
	}
	// The rollback: Apply thaws it; the first request finds it ready.
	e.act.Apply(routedTo("svc", pol, v1, v2))
	if got := live(e); len(got) != 1 || got[0].State != core.InstanceReady {
		t.Fatalf("after the rollback's Apply: %+v, want the kept instance ready", got)
	}
	l, err := e.act.Acquire(t.Context(), v1)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if l.ColdStart != 0 || e.rt.Starts() != 1 {
		t.Fatalf("first request after the rollback: cold start %s, %d starts; want none and 1", l.ColdStart, e.rt.Starts())
	}
	// Away again, and past the window: removed.
	moved = time.Now()
	e.act.Apply(routedTo("svc", pol, v2, v1))
	e.act.Reap(moved.Add(11 * time.Second))
	waitFor(t, "v1 removed after the window", func() bool { return len(live(e)) == 0 && len(started(t, e.rt)) == 0 })

	// keep_previous 0: removed at idle_timeout, as before.
	off := pol
	off.KeepPrevious = 0
	e.act.Apply(routedTo("svc", off, v1, v2))
	get(t, e, v1)
	moved = time.Now()
	e.act.Apply(routedTo("svc", off, v2, v1))
	e.act.Reap(moved.Add(3 * time.Second))
	waitFor(t, "v1 removed at idle_timeout without keep_previous", func() bool { return len(live(e)) == 0 })
}

// TestMinScheduleFollowsTheClock: the min_instances the activator reports
// to the autoscaler and keeps in the reaper follows the injected clock
// across a window's edges; a version without traffic keeps none.
func TestMinScheduleFollowsTheClock(t *testing.T) {
	var clock atomic.Int64
	monday := time.Date(2026, 3, 2, 7, 59, 0, 0, time.UTC) // 08:59 in Paris
	clock.Store(monday.UnixNano())
	e := newEnv(t, activator.Config{Now: func() time.Time { return time.Unix(0, clock.Load()) }}, nil)
	v1, v2 := version(1, "svc"), version(2, "svc")
	pol := core.DefaultPolicy()
	pol.PauseAfter = 0 // no pause in the way of the reaps below
	pol.MinInstancesSchedule = []core.MinWindow{{Days: "mon-fri", From: "09:00", To: "18:00", TZ: "Europe/Paris", Min: 2}}
	e.act.Apply(routedTo("svc", pol, v1, v2))
	if l := loadOf(e, v1.ID); l.VersionID != 0 {
		t.Fatalf("before the window: load %+v, want none (nothing to keep)", l)
	}
	clock.Store(monday.Add(time.Minute).UnixNano()) // 09:00 in Paris
	if l := loadOf(e, v1.ID); l.Policy.MinInstances != 2 || l.Policy.MinInstancesSchedule != nil {
		t.Fatalf("in the window: load policy %+v, want min_instances 2 resolved", l.Policy)
	}
	if l := loadOf(e, v2.ID); l.VersionID != 0 {
		t.Fatalf("a version without traffic reports %+v, want nothing to keep", l)
	}
	e.act.Scale(v1.ID, 2)
	waitFor(t, "two instances", func() bool { return len(started(t, e.rt)) == 2 })
	now := time.Unix(0, clock.Load())
	e.act.Reap(now.Add(time.Hour).Add(-time.Minute)) // idle, still 09:59: both kept
	if n := len(live(e)); n != 2 {
		t.Fatalf("in the window the reaper left %d instances, want 2", n)
	}
	end := time.Date(2026, 3, 2, 17, 0, 0, 0, time.UTC) // 18:00 in Paris
	clock.Store(end.UnixNano())
	if l := loadOf(e, v1.ID); l.Policy.MinInstances != 0 {
		t.Fatalf("after the window: min_instances %d, want 0", l.Policy.MinInstances)
	}
	e.act.Reap(end)
	waitFor(t, "idle instances removed after the window", func() bool { return len(live(e)) == 0 })
}

// TestSingleton: requests for two versions of a singleton service, and
// switches between them, never have two instances in the runtime at once
// (sampled every millisecond, paused ones counted), and every request is
// answered.
func TestSingleton(t *testing.T) {
	e := newEnv(t, activator.Config{StopGrace: time.Second}, func(runtime.InstanceSpec) fake.Behavior {
		return fake.Behavior{StartDelay: 20 * time.Millisecond, ReadyDelay: 10 * time.Millisecond}
	})
	v1, v2 := version(1, "svc"), version(2, "svc")
	pol := core.DefaultPolicy()
	pol.Singleton, pol.MaxInstances = true, 1
	e.act.Apply(state("svc", pol, v1, v2)) // v2 tagged: both routable
	stop := make(chan struct{})
	var most atomic.Int64
	var samples atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			l, err := e.rt.List(t.Context())
			if err != nil {
				continue
			}
			n := 0
			for _, in := range l {
				if in.State != runtime.StateCreated {
					n++
				}
			}
			if int64(n) > most.Load() {
				most.Store(int64(n))
			}
			samples.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	var failed atomic.Int64
	var reqs sync.WaitGroup
	for i := range 20 {
		v := v1
		if i%2 == 1 {
			v = v2
		}
		for range 3 {
			reqs.Add(1)
			go func() {
				defer reqs.Done()
				l, err := e.act.Acquire(t.Context(), v)
				if err != nil {
					failed.Add(1)
					t.Errorf("request for v%d: %v", v.Number, err)
					return
				}
				time.Sleep(2 * time.Millisecond)
				l.Release()
			}()
		}
		time.Sleep(15 * time.Millisecond)
	}
	reqs.Wait()
	close(stop)
	wg.Wait()
	if most.Load() > 1 {
		t.Fatalf("the runtime had %d instances of a singleton at once (%d samples)", most.Load(), samples.Load())
	}
	if e.rt.Starts() < 2 {
		t.Fatalf("%d starts, want at least one per version", e.rt.Starts())
	}
	t.Logf("%d samples, %d starts, at most %d at once", samples.Load(), e.rt.Starts(), most.Load())
}
