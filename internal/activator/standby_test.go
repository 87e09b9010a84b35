package activator_test

import (
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/activator"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/fake"
)

// standbyPolicy keeps n standbys; pause_after 0, so that any pause seen is
// a standby's.
func standbyPolicy(n int) core.ScalingPolicy {
	p := core.DefaultPolicy()
	p.Standby, p.MaxInstances, p.PauseAfter, p.IdleTimeout = n, 5, 0, core.Duration(2*time.Second)
	return p
}

// inRuntime counts the runtime's started instances by state.
func inRuntime(t *testing.T, e *env) map[runtime.State]int {
	t.Helper()
	out := map[runtime.State]int{}
	for _, in := range started(t, e.rt) {
		out[in.State]++
	}
	return out
}

func waitRuntime(t *testing.T, e *env, what string, running, paused int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := inRuntime(t, e)
		states := map[string]int{}
		for _, in := range live(e) {
			states[in.State]++
		}
		if got[runtime.StateRunning] == running && got[runtime.StatePaused] == paused && len(got) <= 2 &&
			states[core.InstanceReady] == running && states[core.InstancePaused] == paused && len(states) <= 2 {
			return // the runtime and the activator agree
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: got %v in the runtime, %v in the activator, want %d running and %d paused", what, got, states, running, paused)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStandbyKeepsIdleInstancesPaused: idle instances go down to the
// standbys, paused, not to zero, and stay; a request wakes one without a
// start.
func TestStandbyKeepsIdleInstancesPaused(t *testing.T) {
	s := &sink{}
	e := newEnv(t, activator.Config{StopGrace: time.Second, Events: s}, nil)
	v := version(1, "svc")
	e.act.Apply(state("svc", standbyPolicy(2), v))
	e.act.Scale(v.ID, 3)
	waitFor(t, "three ready instances", func() bool {
		n := 0
		for _, in := range live(e) {
			if in.State == core.InstanceReady {
				n++
			}
		}
		return n == 3
	})
	e.act.Reap(time.Now().Add(time.Hour))
	waitRuntime(t, e, "two standbys", 0, 2)
	// Paused for a long time, they stay: nothing is removed or started.
	e.act.Reap(time.Now().Add(10 * time.Hour))
	if got := live(e); len(got) != 2 || e.rt.Starts() != 3 {
		t.Fatalf("standbys not kept: %+v, %d starts", got, e.rt.Starts())
	}
	paused := 0
	for _, ev := range s.of("") {
		if ev.Event == core.EventInstancePaused {
			checkEvent(t, ev, core.EventInstancePaused, map[string]string{"idle_ms": "*"}, "paused as a standby: idle for ")
			paused++
		}
	}
	if paused != 2 {
		t.Fatalf("%d instance.paused events, want 2: %s", paused, names(s.of("")))
	}
	if body := get(t, e, v); body != "Hello, World!\n" {
		t.Fatalf("from a standby: %q", body)
	}
	if n := e.rt.Starts(); n != 3 {
		t.Fatalf("a request to a version with standbys started an instance (%d starts, want 3)", n)
	}
	waitRuntime(t, e, "one standby woken", 1, 1)
	// The autoscaler sees the standbys as the policy's (not removable).
	if l := loadOf(e, v.ID); l.Policy.Standby != 2 || l.Instances != 2 {
		t.Fatalf("load %+v, want standby 2 and 2 instances", l)
	}
}

// TestStandbyStartedFromZero: a routable version with no instance gets its
// standbys started and paused once ready, by the reaper, once.
func TestStandbyStartedFromZero(t *testing.T) {
	s := &sink{}
	e := newEnv(t, activator.Config{Events: s}, nil)
	v := version(1, "svc")
	e.act.Apply(state("svc", standbyPolicy(1), v))
	e.act.Reap(time.Now())
	waitRuntime(t, e, "one standby started and paused", 0, 1)
	e.act.Reap(time.Now())
	if n := e.rt.Starts(); n != 1 {
		t.Fatalf("%d starts, want 1 standby", n)
	}
	id := live(e)[0].ID
	got := waitEvents(t, s, id, "instance.starting instance.ready instance.paused")
	checkEvent(t, got[0], core.EventInstanceStarting, map[string]string{"reason": core.StartStandby}, "starting (standby)")
	checkEvent(t, got[2], core.EventInstancePaused, nil, "paused as a standby, once ready")
	get(t, e, v)
	if n := e.rt.Starts(); n != 1 {
		t.Fatalf("the request started an instance instead of waking the standby (%d starts)", n)
	}
	waitEvents(t, s, id, "instance.starting instance.ready instance.paused instance.woken")
	// Idle again: paused again, not removed.
	e.act.Reap(time.Now().Add(time.Hour))
	waitRuntime(t, e, "the standby paused again", 0, 1)
}

// TestStandbyOnlyWhileRoutable: a version whose traffic moved away loses
// its standbys through the idle path, and the version that now has the
// traffic gets its own.
func TestStandbyOnlyWhileRoutable(t *testing.T) {
	e := newEnv(t, activator.Config{StopGrace: time.Second}, nil)
	v1, v2 := version(1, "svc"), version(2, "svc")
	e.act.Apply(state("svc", standbyPolicy(1), v1))
	e.act.Reap(time.Now())
	waitRuntime(t, e, "v1's standby", 0, 1)
	old := live(e)[0].ID
	st := state("svc", standbyPolicy(1), v2, v1) // v2 has the traffic
	st.Traffic.Tags = map[string]int{}           // v1: neither share nor tag
	e.act.Apply(st)
	e.act.Reap(time.Now().Add(time.Hour))
	waitFor(t, "v1's standby removed and v2's paused", func() bool {
		got := live(e)
		return len(got) == 1 && got[0].Version == 2 && got[0].State == core.InstancePaused && got[0].ID != old
	})
}

// TestStandbyZeroKeepsScaleToZero: with standby 0 nothing starts by itself
// and idle instances go.
func TestStandbyZeroKeepsScaleToZero(t *testing.T) {
	e := newEnv(t, activator.Config{StopGrace: time.Second}, nil)
	v := version(1, "svc")
	e.act.Apply(state("svc", standbyPolicy(0), v))
	e.act.Reap(time.Now())
	time.Sleep(50 * time.Millisecond)
	if n := e.rt.Starts(); n != 0 {
		t.Fatalf("standby 0 started %d instance(s)", n)
	}
	get(t, e, v)
	e.act.Reap(time.Now().Add(time.Hour))
	waitFor(t, "the idle instance removed", func() bool { return len(live(e)) == 0 })
}

// noPauser is a runtime that cannot pause (as Kubernetes): standbys are
// ignored.
type noPauser struct{ runtime.Runtime }

func TestStandbyIgnoredWithoutPause(t *testing.T) {
	e := newEnv(t, activator.Config{}, nil)
	act := newActivator(t, activator.Config{ReapInterval: time.Hour}, noPauser{e.rt})
	v := version(1, "svc")
	act.Apply(state("svc", standbyPolicy(1), v))
	act.Reap(time.Now())
	time.Sleep(50 * time.Millisecond)
	if n := e.rt.Starts(); n != 0 {
		t.Fatalf("standby started %d instance(s) on a runtime that cannot pause", n)
	}
}

// TestStandbyBacksOff: a version whose standby fails to start is not
// started again on every reap while its starts back off.
func TestStandbyBacksOff(t *testing.T) {
	e := newEnv(t, activator.Config{MinBackoff: time.Hour, MaxBackoff: time.Hour}, func(runtime.InstanceSpec) fake.Behavior {
		return fake.Behavior{StartErr: fake.ErrStart}
	})
	v := version(1, "svc")
	e.act.Apply(state("svc", standbyPolicy(1), v))
	e.act.Reap(time.Now())
	waitFor(t, "the failed standby start to back off", func() bool {
		got := live(e)
		return e.rt.Attempts() == 1 && len(got) == 1 && got[0].State == core.InstanceBackoff
	})
	for range 5 {
		e.act.Reap(time.Now())
	}
	time.Sleep(50 * time.Millisecond)
	if n := e.rt.Attempts(); n != 1 {
		t.Fatalf("%d start attempts while backing off, want 1", n)
	}
}
