// Package autoscaler decides how many instances each version needs from the
// load the router and activator see, and applies the decisions.
//
// The decision is a pure function, Config.Decide(policy, stats, now), of a
// window of samples of each version's concurrency (requests in flight plus
// requests waiting for an instance) and request count, taken every tick:
//
//   - desired = ceil(average / target), where the average is over the stable
//     window (60 s) and the target is the policy's target_concurrency, or
//     its target_rps when set (then the average is requests per second);
//   - panic: when the panic-window (6 s) average needs at least twice the
//     current instances, scale up at once from the panic window, and do not
//     scale down until a whole stable window has passed without panic;
//   - scale down at most half of the instances per decision, and only after
//     the scale-down delay since the last change;
//   - never below min_instances (as of now: min_instances_schedule), never
//     above max_instances (1 for a singleton), and never below
//     one instance while there are any: the last one goes only through the
//     reaper's idle timeout, so "scale to zero" has one meaning; never below
//     the standbys that apply (the load's Policy.Standby) of those there
//     are: the reaper keeps them paused and starts them, never the
//     autoscaler;
//   - never from zero because of load: the first instance comes from a
//     request (the activator starts it on demand) or from min_instances. Old
//     samples of a version whose instances are gone (a crash loop, say)
//     must not keep starting new ones.
package autoscaler

import (
	"fmt"
	"math"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Config holds the windows of the decision.
type Config struct {
	StableWindow    time.Duration // default 60s
	PanicWindow     time.Duration // default 6s
	ScaleDownDelay  time.Duration // default 30s
	Tick            time.Duration // sampling period; default 1s
	PanicThreshold  float64       // panic when needed/current ≥ this; default 2
	MaxScaleDownPct float64       // at most this share of instances per decision; default 0.5
}

// EarlyGap is the least time between two early looks (Autoscaler.Early):
// a tenth of the tick (each look reads every version's load).
func (c Config) EarlyGap() time.Duration { return c.Tick / 10 }

// Defaults of Config.
const (
	DefaultStableWindow   = 60 * time.Second
	DefaultPanicWindow    = 6 * time.Second
	DefaultScaleDownDelay = 30 * time.Second
	DefaultTick           = time.Second
)

// Validate fills defaults and checks that the windows make sense.
func (c *Config) Validate() error {
	if c.StableWindow == 0 {
		c.StableWindow = DefaultStableWindow
	}
	if c.PanicWindow == 0 {
		c.PanicWindow = DefaultPanicWindow
	}
	if c.ScaleDownDelay == 0 {
		c.ScaleDownDelay = DefaultScaleDownDelay
	}
	if c.Tick == 0 {
		c.Tick = DefaultTick
	}
	if c.PanicThreshold == 0 {
		c.PanicThreshold = 2
	}
	if c.MaxScaleDownPct == 0 {
		c.MaxScaleDownPct = 0.5
	}
	switch {
	case c.Tick < 10*time.Millisecond || c.Tick > time.Second:
		return fmt.Errorf("autoscaler: tick must be between 10ms and 1s (sampled at least every second), got %s", c.Tick)
	case c.PanicWindow < c.Tick || c.StableWindow < c.PanicWindow:
		return fmt.Errorf("autoscaler: need tick ≤ panic window ≤ stable window, got %s, %s, %s", c.Tick, c.PanicWindow, c.StableWindow)
	case c.ScaleDownDelay < 0:
		return fmt.Errorf("autoscaler: scale-down delay must not be negative")
	case c.PanicThreshold < 1 || c.MaxScaleDownPct <= 0 || c.MaxScaleDownPct > 1:
		return fmt.Errorf("autoscaler: panic threshold must be ≥ 1 and max scale-down share in (0, 1]")
	}
	return nil
}

// Sample is one observation of a version.
type Sample struct {
	At time.Time
	// Concurrency is requests in flight at instances plus requests waiting.
	Concurrency float64
	// Requests is the cumulative count of requests handed an instance.
	Requests uint64
}

// Stats is what Decide knows about one version.
type Stats struct {
	Samples []Sample // oldest first
	Current int      // instances now, starting ones included
	// State carried from the previous decision.
	PanicUntil time.Time
	LastChange time.Time
}

// Decision is the outcome for one version.
type Decision struct {
	Desired    int
	Reason     string
	Panic      bool
	PanicUntil time.Time // carry into the next Stats
	StableAvg  float64   // the metric's averages, for logs and metrics
	PanicAvg   float64
}

// Decide returns how many instances the version should have now.
func (c Config) Decide(p core.ScalingPolicy, s Stats, now time.Time) Decision {
	useRPS := p.TargetRPS > 0
	target := float64(p.TargetConcurrency)
	metric := "concurrency"
	if useRPS {
		target, metric = float64(p.TargetRPS), "requests per second"
	}
	stable, okStable := c.average(s.Samples, now, c.StableWindow, useRPS)
	panicAvg, okPanic := c.average(s.Samples, now, c.PanicWindow, useRPS)
	d := Decision{Desired: s.Current, StableAvg: stable, PanicAvg: panicAvg, PanicUntil: s.PanicUntil}
	if !okStable || !okPanic {
		d.Reason = "not enough samples yet"
		return c.bound(p, s, d, now)
	}
	wantStable := int(math.Ceil(stable / target))
	wantPanic := int(math.Ceil(panicAvg / target))

	// Enter (or stay in) panic when the short window needs ≥ 2× the capacity.
	if float64(wantPanic) >= c.PanicThreshold*float64(max(s.Current, 1)) && wantPanic > s.Current {
		d.PanicUntil = now.Add(c.StableWindow)
	}
	d.Panic = now.Before(d.PanicUntil)
	switch {
	case d.Panic:
		d.Desired = max(s.Current, wantPanic)
		d.Reason = fmt.Sprintf("panic: %s over %s is %.1f, target %.0f", metric, c.PanicWindow, panicAvg, target)
	default:
		d.Desired = wantStable
		d.Reason = fmt.Sprintf("%s over %s is %.1f, target %.0f", metric, c.StableWindow, stable, target)
	}
	if s.Current == 0 {
		d.Desired, d.Panic = 0, false
		d.Reason = "no instance: the next request starts one"
	}
	if d.Desired < s.Current {
		if now.Sub(s.LastChange) < c.ScaleDownDelay {
			d.Desired = s.Current
			d.Reason += fmt.Sprintf("; scale-down delay (%s) not over", c.ScaleDownDelay)
		} else if floor := s.Current - int(math.Floor(float64(s.Current)*c.MaxScaleDownPct)); d.Desired < floor {
			d.Desired = floor
			d.Reason += fmt.Sprintf("; at most %.0f%% down per decision", 100*c.MaxScaleDownPct)
		}
	}
	return c.bound(p, s, d, now)
}

// bound applies min, max and "the last instance goes only through the
// reaper". The min is the policy's at now (min_instances_schedule).
func (c Config) bound(p core.ScalingPolicy, s Stats, d Decision, now time.Time) Decision {
	if s.Current > 0 && d.Desired < 1 {
		d.Desired = 1
	}
	if keep := min(p.Standby, s.Current); d.Desired < keep {
		// The reaper keeps these paused; removing them here would only
		// have it start them again.
		d.Desired = keep
		d.Reason += fmt.Sprintf("; standby %d", p.Standby)
	}
	if least := p.MinInstancesAt(now); d.Desired < least {
		d.Desired = least
		d.Reason += fmt.Sprintf("; min_instances %d", least)
	}
	if d.Desired > p.MaxInstances {
		d.Desired = p.MaxInstances
		d.Reason += fmt.Sprintf("; max_instances %d", p.MaxInstances)
	}
	return d
}

// average returns the metric's average over the window ending at now: mean
// concurrency, or the request rate. ok is false until the window holds
// one sample (two for a rate).
func (c Config) average(samples []Sample, now time.Time, window time.Duration, rate bool) (avg float64, ok bool) {
	from := now.Add(-window)
	var sum float64
	n := 0
	var first, last *Sample
	for i := range samples {
		sm := &samples[i]
		if !sm.At.After(from) || sm.At.After(now) { // the window is (now-window, now]
			continue
		}
		if first == nil {
			first = sm
		}
		last = sm
		sum += sm.Concurrency
		n++
	}
	if n == 0 {
		return 0, false
	}
	if rate {
		span := last.At.Sub(first.At).Seconds()
		if span <= 0 {
			return 0, false // a rate needs two samples
		}
		return float64(last.Requests-first.Requests) / span, true
	}
	return sum / float64(n), true
}
