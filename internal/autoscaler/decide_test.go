package autoscaler_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/autoscaler"
	"github.com/wisp-run/wisp/internal/core"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// load builds one sample per second over the last span before now, with
// concurrency f(seconds ago) and requests counted at rps(seconds ago).
func load(now time.Time, span time.Duration, f func(ago float64) float64, rps float64) []autoscaler.Sample {
	var out []autoscaler.Sample
	var reqs float64
	for s := int(span / time.Second); s >= 0; s-- {
		reqs += rps
		out = append(out, autoscaler.Sample{At: now.Add(-time.Duration(s) * time.Second), Concurrency: f(float64(s)), Requests: uint64(reqs)})
	}
	return out
}

func steady(c float64) func(float64) float64 { return func(float64) float64 { return c } }

func policy(edit func(*core.ScalingPolicy)) core.ScalingPolicy {
	p := core.DefaultPolicy() // target 10, max 10
	p.MaxInstances = 20
	if edit != nil {
		edit(&p)
	}
	return p
}

func TestDecide(t *testing.T) {
	cfg := autoscaler.Config{}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	long := now.Add(-time.Hour) // last change long ago: no scale-down delay
	cases := []struct {
		name      string
		policy    core.ScalingPolicy
		stats     autoscaler.Stats
		want      int
		wantPanic bool
		reason    string
	}{
		{"steady load at target", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(40), 0), Current: 4, LastChange: long}, 4, false, "concurrency over 1m0s is 40.0"},
		{"steady load rounds up", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(41), 0), Current: 4, LastChange: long}, 5, false, ""},
		{"slow ramp follows the stable window", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, func(ago float64) float64 { return 60 - ago/2 }, 0), Current: 4, LastChange: long}, 5, false, ""},
		{"burst panics from the short window", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, func(ago float64) float64 {
				if ago < 6 {
					return 150
				}
				return 10
			}, 0), Current: 1, LastChange: long}, 15, true, "panic"},
		{"from zero, a queue of 200 panics to the max", policy(nil),
			autoscaler.Stats{Samples: load(now, 2*time.Second, steady(300), 0), Current: 1, LastChange: now}, 20, true, "max_instances 20"},
		{"panic holds: no scale down until the burst has passed", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(5), 0), Current: 15, LastChange: long, PanicUntil: now.Add(10 * time.Second)}, 15, true, "panic"},
		{"after the panic, drop at most half", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(5), 0), Current: 16, LastChange: long, PanicUntil: now.Add(-time.Second)}, 8, false, "at most 50% down"},
		{"drop waits for the scale-down delay", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(5), 0), Current: 8, LastChange: now.Add(-10 * time.Second)}, 8, false, "scale-down delay"},
		{"zero load keeps the last instance for the reaper", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 1, LastChange: long}, 1, false, ""},
		{"zero load with no instance stays at zero", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 0, LastChange: long}, 0, false, ""},
		{"old load never starts the first instance", policy(nil),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(30), 0), Current: 0, LastChange: long}, 0, false, "the next request starts one"},
		{"min instances are started", policy(func(p *core.ScalingPolicy) { p.MinInstances = 3 }),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 0, LastChange: long}, 3, false, "min_instances 3"},
		// now is Thursday 2026-01-01 01:00 UTC.
		{"a schedule window in force raises the minimum", policy(func(p *core.ScalingPolicy) {
			p.MinInstances = 1
			p.MinInstancesSchedule = []core.MinWindow{{Days: "thu", From: "00:30", To: "01:01", TZ: "UTC", Min: 4}}
		}), autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 0, LastChange: long}, 4, false, "min_instances 4"},
		{"outside every window the plain minimum", policy(func(p *core.ScalingPolicy) {
			p.MinInstances = 1
			p.MinInstancesSchedule = []core.MinWindow{{Days: "thu", From: "00:00", To: "01:00", TZ: "UTC", Min: 4}}
		}), autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 0, LastChange: long}, 1, false, "min_instances 1"},
		{"a window in another zone: 01:00 UTC is 10:00 in Tokyo", policy(func(p *core.ScalingPolicy) {
			p.MinInstancesSchedule = []core.MinWindow{{Days: "thu", From: "09:00", To: "18:00", TZ: "Asia/Tokyo", Min: 2}}
		}), autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 0, LastChange: long}, 2, false, "min_instances 2"},
		{"a singleton never goes above one", policy(func(p *core.ScalingPolicy) { p.Singleton, p.MaxInstances = true, 1 }),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(500), 0), Current: 1, LastChange: long}, 1, true, "max_instances 1"},
		{"standbys are kept at zero load", policy(func(p *core.ScalingPolicy) { p.Standby = 2 }),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 2, LastChange: long}, 2, false, "standby 2"},
		{"standbys are never started by the autoscaler", policy(func(p *core.ScalingPolicy) { p.Standby = 2 }),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 0, LastChange: long}, 0, false, ""},
		{"instances beyond the standbys still go", policy(func(p *core.ScalingPolicy) { p.Standby = 2 }),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 6, LastChange: long}, 3, false, "at most 50% down"},
		{"standby down to the standbys", policy(func(p *core.ScalingPolicy) { p.Standby = 2 }),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(0), 0), Current: 3, LastChange: long}, 2, false, "at most 50% down"},
		{"max bounds a huge load", policy(func(p *core.ScalingPolicy) { p.MaxInstances = 5 }),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(1000), 0), Current: 5, LastChange: long}, 5, true, "max_instances 5"},
		{"requests per second target", policy(func(p *core.ScalingPolicy) { p.TargetRPS = 100 }),
			autoscaler.Stats{Samples: load(now, time.Minute, steady(1), 450), Current: 3, LastChange: long}, 5, false, "requests per second over 1m0s is 450.0"},
		{"no samples yet keeps the count", policy(nil),
			autoscaler.Stats{Current: 2, LastChange: long}, 2, false, "not enough samples"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := cfg.Decide(tc.policy, tc.stats, now)
			if d.Desired != tc.want || d.Panic != tc.wantPanic {
				t.Fatalf("got desired %d panic %v (%s), want %d panic %v", d.Desired, d.Panic, d.Reason, tc.want, tc.wantPanic)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("reason %q lacks %q", d.Reason, tc.reason)
			}
		})
	}
}

// TestDecideOverTime plays a burst and its end through successive decisions,
// carrying the state, as the Run loop does.
func TestDecideOverTime(t *testing.T) {
	cfg := autoscaler.Config{StableWindow: 20 * time.Second, PanicWindow: 2 * time.Second, ScaleDownDelay: 5 * time.Second}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := policy(nil)
	var samples []autoscaler.Sample
	st := autoscaler.Stats{Current: 1, LastChange: t0}
	history := []int{}
	for sec := 1; sec <= 60; sec++ {
		now := t0.Add(time.Duration(sec) * time.Second)
		c := 0.0
		if sec <= 10 {
			c = 100 // ten seconds of burst, then nothing
		}
		samples = append(samples, autoscaler.Sample{At: now, Concurrency: c})
		st.Samples = samples
		d := cfg.Decide(p, st, now)
		if d.Desired != st.Current {
			st.LastChange = now
		}
		st.Current, st.PanicUntil = d.Desired, d.PanicUntil
		history = append(history, d.Desired)
	}
	if history[0] != 10 {
		t.Fatalf("first second of a 10x burst: %d instances, want 10 at once", history[0])
	}
	// The burst lasts 10s and panic mode a stable window (20s) from its
	// start: no scale-down before.
	for i, n := range history[:20] {
		if n < 10 {
			t.Fatalf("scaled down to %d at %ds, before the burst had passed (history %v)", n, i+1, history)
		}
	}
	if last := history[len(history)-1]; last != 1 {
		t.Fatalf("40s after the burst: %d instances, want 1 (history %v)", last, history)
	}
	for i := 1; i < len(history); i++ {
		if history[i] < history[i-1] && history[i] < (history[i-1]+1)/2 {
			t.Fatalf("dropped from %d to %d in one decision", history[i-1], history[i])
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []autoscaler.Config{
		{Tick: 2 * time.Second},
		{PanicWindow: time.Minute, StableWindow: time.Second},
		{ScaleDownDelay: -time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}
