package activator_test

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/activator"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/fake"
)

// sink records the platform events an activator emits.
type sink struct {
	mu  sync.Mutex
	all []core.LogEntry
}

func (s *sink) Append(e core.LogEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, e)
}

// of returns the events of instance id ("" for every one), in order.
func (s *sink) of(id string) []core.LogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.LogEntry
	for _, e := range s.all {
		if id == "" || e.Instance == id {
			out = append(out, e)
		}
	}
	return out
}

func names(es []core.LogEntry) string {
	var n []string
	for _, e := range es {
		n = append(n, e.Event)
	}
	return strings.Join(n, " ")
}

// waitEvents waits until instance id's events are want (names, in order).
func waitEvents(t *testing.T, s *sink, id, want string) []core.LogEntry {
	t.Helper()
	var got []core.LogEntry
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = s.of(id)
		if names(got) == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of %q: got %q, want %q", id, names(got), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkEvent(t *testing.T, e core.LogEntry, event string, fields map[string]string, message string) {
	t.Helper()
	if e.Event != event || e.Kind != core.LogPlatform || e.Service != "svc" || e.Version != 1 || e.Time.IsZero() {
		t.Errorf("%s: got %+v", event, e)
	}
	for k, v := range fields {
		got, ok := e.Fields[k]
		if !ok || v != "*" && got != v {
			t.Errorf("%s: field %s = %q (present %v), want %q", event, k, got, ok, v)
		}
	}
	if !strings.Contains(e.Message, message) {
		t.Errorf("%s: message %q, want it to contain %q", event, e.Message, message)
	}
}

func TestEventsColdStartPauseWakeIdle(t *testing.T) {
	s := &sink{}
	before := time.Now()
	e := newEnv(t, activator.Config{StopGrace: time.Second, Events: s}, func(runtime.InstanceSpec) fake.Behavior {
		return fake.Behavior{StartDelay: 50 * time.Millisecond}
	})
	v := version(1, "svc")
	pol := core.ScalingPolicy{MaxInstances: 1, TargetConcurrency: 1, IdleTimeout: core.Duration(2 * time.Second), PauseAfter: core.Duration(time.Second)}
	e.act.Apply(state("svc", pol, svcVersions()...))
	get(t, e, v)
	id := e.act.Instances("")[0].ID
	got := waitEvents(t, s, id, "instance.starting instance.ready")
	checkEvent(t, got[0], core.EventInstanceStarting, map[string]string{"reason": core.StartFirstRequest}, "first-request")
	if got[0].Time.Before(before) || !got[0].Time.Before(got[1].Time) {
		t.Errorf("starting at %s, ready at %s: want starting timed before the start was asked", got[0].Time, got[1].Time)
	}
	checkEvent(t, got[1], core.EventInstanceReady, map[string]string{"duration_ms": "*"}, "ready in ")
	if ms, _ := strconv.Atoi(got[1].Fields["duration_ms"]); ms < 50 {
		t.Errorf("ready duration_ms %d, want at least the start's 50 ms", ms)
	}

	e.act.Reap(time.Now().Add(1500 * time.Millisecond))
	got = waitEvents(t, s, id, "instance.starting instance.ready instance.paused")
	checkEvent(t, got[2], core.EventInstancePaused, map[string]string{"idle_ms": "*"}, "paused: idle for ")
	if ms, _ := strconv.Atoi(got[2].Fields["idle_ms"]); ms < 1400 {
		t.Errorf("paused idle_ms %d, want about 1500", ms)
	}
	get(t, e, v)
	got = waitEvents(t, s, id, "instance.starting instance.ready instance.paused instance.woken")
	checkEvent(t, got[3], core.EventInstanceWoken, map[string]string{"duration_ms": "*"}, "woken in ")

	e.act.Reap(time.Now().Add(2500 * time.Millisecond))
	got = waitEvents(t, s, id, "instance.starting instance.ready instance.paused instance.woken instance.removed")
	checkEvent(t, got[4], core.EventInstanceRemoved, map[string]string{"reason": "idle", "idle_ms": "*"}, "removed: idle for 2.5")
	// The spare made after the cold start is no instance: it has no events.
	if all := s.of(""); len(all) != 5 {
		t.Errorf("events: %q, want only the instance's", names(all))
	}
}

func TestEventsScaleUp(t *testing.T) {
	s := &sink{}
	e := newEnv(t, activator.Config{Events: s}, nil)
	v := version(1, "svc")
	pol := core.DefaultPolicy()
	pol.MinInstances = 1
	e.act.Apply(state("svc", pol, svcVersions()...))
	e.act.Scale(v.ID, 3)
	waitFor(t, "three ready instances", func() bool { return len(live(e)) == 3 })
	reasons := map[string]int{}
	for _, in := range live(e) {
		got := waitEvents(t, s, in.ID, "instance.starting instance.ready")
		reasons[got[0].Fields["reason"]]++
	}
	if reasons[core.StartMinInstances] != 1 || reasons[core.StartAutoscaler] != 2 {
		t.Errorf("start reasons %v, want 1 min-instances and 2 autoscaler", reasons)
	}
	e.act.Scale(v.ID, 1)
	waitFor(t, "one instance left", func() bool { return len(live(e)) == 1 })
	removed := 0
	deadline := time.Now().Add(5 * time.Second)
	for removed < 2 && time.Now().Before(deadline) {
		removed = 0
		for _, ev := range s.of("") {
			if ev.Event == core.EventInstanceRemoved && ev.Fields["reason"] == "scale-down" {
				removed++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if removed != 2 {
		t.Errorf("%d removed (scale-down) events, want 2: %q", removed, names(s.of("")))
	}
}

func TestEventsExitAndReplace(t *testing.T) {
	s := &sink{}
	e := newEnv(t, activator.Config{Events: s}, func(runtime.InstanceSpec) fake.Behavior {
		return fake.Behavior{Logs: "listening\nsegfault at 0x0\n"}
	})
	v := version(1, "svc")
	get(t, e, v)
	first := live(e)[0].ID
	e.rt.OOM(first)
	got := waitEvents(t, s, first, "instance.starting instance.ready instance.oom instance.exited instance.removed")
	checkEvent(t, got[3], core.EventInstanceExited, map[string]string{"exit_code": "137", "last_output": "*"}, "exited with code 137")
	if !strings.Contains(got[3].Fields["last_output"], "segfault at 0x0") {
		t.Errorf("last_output %q, want the instance's last lines", got[3].Fields["last_output"])
	}
	checkEvent(t, got[4], core.EventInstanceRemoved, map[string]string{"reason": "exited"}, "removed: its process exited with code 137")
	waitFor(t, "the dead instance to go", func() bool { return len(live(e)) == 0 })
	get(t, e, v)
	second := live(e)[0].ID
	got = waitEvents(t, s, second, "instance.starting instance.ready")
	checkEvent(t, got[0], core.EventInstanceStarting, map[string]string{"reason": core.StartReplace}, "replace")
}

func TestEventsFailedStartBacksOff(t *testing.T) {
	s := &sink{}
	var fail atomic.Bool
	fail.Store(true)
	e := newEnv(t, activator.Config{Events: s, MinBackoff: 200 * time.Millisecond}, func(runtime.InstanceSpec) fake.Behavior {
		if fail.Load() {
			return fake.Behavior{StartErr: fake.ErrStart}
		}
		return fake.Behavior{}
	})
	v := version(1, "svc")
	if _, err := e.act.Acquire(t.Context(), v); err == nil {
		t.Fatal("acquire: want the start's failure")
	}
	got := waitEvents(t, s, "", "instance.start_failed version.backoff")
	checkEvent(t, got[0], core.EventInstanceStartFailed, map[string]string{"error": "*"}, "start failed: ")
	if !strings.Contains(got[0].Fields["error"], "fake: start failed") {
		t.Errorf("error %q, want the runtime's", got[0].Fields["error"])
	}
	checkEvent(t, got[1], core.EventBackoff, map[string]string{"failures": "1", "retry_in_ms": "200"}, "1 failed start(s) in a row")
	if got[1].Instance != "" {
		t.Errorf("backoff is the version's, got instance %q", got[1].Instance)
	}
}

func TestEventsReadinessFailed(t *testing.T) {
	s := &sink{}
	e := newEnv(t, activator.Config{Events: s, StartTimeout: 300 * time.Millisecond, StopGrace: time.Second}, func(runtime.InstanceSpec) fake.Behavior {
		return fake.Behavior{NeverListen: true}
	})
	if _, err := e.act.Acquire(t.Context(), version(1, "svc")); err == nil {
		t.Fatal("acquire: want the start's failure")
	}
	got := waitEvents(t, s, "", "instance.starting instance.readiness_failed version.backoff instance.removed")
	checkEvent(t, got[1], core.EventReadinessFailed, map[string]string{"error": "*"}, "not ready: not ready within the start timeout")
	checkEvent(t, got[3], core.EventInstanceRemoved, map[string]string{"reason": "start-failed"}, "removed: start failed")
}
