package core

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A rollout moves a service's traffic to one version step by step, and
// checks the version's numbers at the end of every step (docs/rollouts.md).
// This file holds its record, its lifecycle and the rules every store
// applies when it writes one; the controller that drives it is package
// rollout.

// RolloutState is where a rollout is in its life.
type RolloutState string

// Rollout states. Running and paused rollouts are active: a service has at
// most one active rollout. The others are final.
const (
	RolloutRunning   RolloutState = "running"
	RolloutPaused    RolloutState = "paused"
	RolloutFailed    RolloutState = "failed"
	RolloutSucceeded RolloutState = "succeeded"
	RolloutAborted   RolloutState = "aborted"
)

// Active reports whether s is running or paused.
func (s RolloutState) Active() bool { return s == RolloutRunning || s == RolloutPaused }

// rolloutTransitions is the lifecycle: from each state, the states it may
// go to. Final states go nowhere.
var rolloutTransitions = map[RolloutState][]RolloutState{
	RolloutRunning: {RolloutPaused, RolloutFailed, RolloutSucceeded, RolloutAborted},
	RolloutPaused:  {RolloutRunning, RolloutSucceeded, RolloutAborted},
}

// CanTransition reports whether a rollout may go from one state to another.
func CanTransition(from, to RolloutState) bool {
	return slices.Contains(rolloutTransitions[from], to)
}

// Rollout defaults and bounds.
const (
	DefaultRolloutInterval = Duration(time.Minute)
	MinRolloutInterval     = Duration(time.Second)
	MaxRolloutInterval     = Duration(time.Hour)
	DefaultMaxErrorRate    = 1.0 // percent
	DefaultMaxP99Ratio     = 1.5
	DefaultMinRequests     = 100
	maxRolloutSteps        = 20
	maxMinRequests         = 1_000_000
	maxP99Bound            = Duration(10 * time.Minute)
	maxP99Ratio            = 100.0
	// RolloutWaitIntervals bounds how long a step waits for --min-requests
	// requests: this many intervals after the step's own interval ends,
	// the rollout pauses (a person decides: send traffic and resume,
	// promote or abort).
	RolloutWaitIntervals = 10
)

// DefaultRolloutSteps are the percents of a rollout without steps.
func DefaultRolloutSteps() []int { return []int{5, 25, 50, 100} }

// RolloutSpec is what starts a rollout: the target version, its steps and
// the thresholds every check applies.
type RolloutSpec struct {
	// To is the version that gets the traffic.
	To int `json:"to"`
	// Steps are the target's percents, strictly increasing, ending at 100.
	Steps []int `json:"steps"`
	// Interval is how long each step lasts before its check.
	Interval Duration `json:"interval"`
	// MaxErrorRate is the highest share of 5xx answers, in percent, that
	// passes; nil in a request means DefaultMaxErrorRate.
	MaxErrorRate *float64 `json:"max_error_rate"`
	// MaxP99 is the highest p99 latency that passes; 0: no bound.
	MaxP99 Duration `json:"max_p99"`
	// MaxP99Ratio is the highest ratio of the target's p99 to the replaced
	// versions' p99 over the same window that passes; 0: no comparison.
	// Nil in a request means DefaultMaxP99Ratio.
	MaxP99Ratio *float64 `json:"max_p99_ratio"`
	// MinRequests is how many requests the target must have served in a
	// step before it is judged; until then the step waits.
	MinRequests int `json:"min_requests"`
}

// RolloutCheck is the result of one check: the numbers of a step's window.
type RolloutCheck struct {
	At      time.Time `json:"at"`
	Step    int       `json:"step"`
	Percent int       `json:"percent"`
	// Since is when the window began (the step's start as this controller
	// saw it).
	Since     time.Time `json:"since"`
	Requests  int64     `json:"requests"`
	Errors    int64     `json:"errors"`
	ErrorRate float64   `json:"error_rate"` // percent
	P99       Duration  `json:"p99"`
	// The versions the target replaces, over the same window.
	BaseRequests int64    `json:"base_requests"`
	BaseErrors   int64    `json:"base_errors"`
	BaseP99      Duration `json:"base_p99"`
	// Result is passed, failed or waiting (too few requests).
	Result string `json:"result"`
	// Detail says why, with the numbers.
	Detail string `json:"detail"`
}

// Check results.
const (
	CheckPassed  = "passed"
	CheckFailed  = "failed"
	CheckWaiting = "waiting"
)

// Rollout is one rollout of a service, as stored.
type Rollout struct {
	ID      int64  `json:"id"`
	Service string `json:"service"`
	RolloutSpec
	State RolloutState `json:"state"`
	// Step is the current step, 1 to len(Steps); Percent is its percent.
	Step          int       `json:"step"`
	Percent       int       `json:"percent"`
	StepStartedAt time.Time `json:"step_started_at"`
	// Before is the traffic entry current when the rollout started: what
	// a failure or an abort restores.
	Before int64 `json:"before_entry"`
	// LastEntry is the traffic entry the rollout wrote or accepted last; a
	// current entry other than it means someone changed the traffic.
	LastEntry int64 `json:"last_entry"`
	// Replaces are the versions that carried traffic in Before, other
	// than To: the baseline of the p99 ratio.
	Replaces []int `json:"replaces"`
	// Check is the last check, nil before the first.
	Check *RolloutCheck `json:"last_check,omitempty"`
	// Reason says why the rollout is paused, waiting, failed or over.
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Normalize fills the derived fields (Percent) and empty collections.
func (r Rollout) Normalize() Rollout {
	if r.Steps == nil {
		r.Steps = []int{}
	}
	if r.Replaces == nil {
		r.Replaces = []int{}
	}
	r.Percent = 0
	if r.Step >= 1 && r.Step <= len(r.Steps) {
		r.Percent = r.Steps[r.Step-1]
	}
	return r
}

// Transition moves r to state next, or says why it cannot (ErrConflict).
func (r Rollout) Transition(next RolloutState) (Rollout, error) {
	if !CanTransition(r.State, next) {
		return r, Conflictf("rollout %d of %s is %s; it cannot become %s", r.ID, r.Service, r.State, next)
	}
	r.State = next
	return r, nil
}

// StepTraffic is the entry of r's current step, derived from the whole
// current entry cur (so every field of it but the weights and the message
// is kept).
func (r Rollout) StepTraffic(cur Traffic) Traffic {
	r = r.Normalize()
	return cur.Shift(r.To, r.Percent, fmt.Sprintf("rollout %d: step %d/%d, %d%% to version %d", r.ID, r.Step, len(r.Steps), r.Percent, r.To))
}

// Restore is the entry that puts back before (the entry before the
// rollout) with message: the whole entry, only its message changed.
func Restore(before TrafficEntry, message string) Traffic {
	t := before.Traffic
	t.Message = message
	return t
}

// RolloutSteps formats steps as "5,25,50,100".
func RolloutSteps(steps []int) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = strconv.Itoa(s)
	}
	return strings.Join(parts, ",")
}

// WithDefaults returns spec with the defaults of every omitted field.
func (spec RolloutSpec) WithDefaults() RolloutSpec {
	if len(spec.Steps) == 0 {
		spec.Steps = DefaultRolloutSteps()
	}
	if spec.Interval == 0 {
		spec.Interval = DefaultRolloutInterval
	}
	if spec.MaxErrorRate == nil {
		v := DefaultMaxErrorRate
		spec.MaxErrorRate = &v
	}
	if spec.MaxP99Ratio == nil {
		v := DefaultMaxP99Ratio
		spec.MaxP99Ratio = &v
	}
	if spec.MinRequests == 0 {
		spec.MinRequests = DefaultMinRequests
	}
	return spec
}

// Validate checks a spec with its defaults filled in.
func (spec RolloutSpec) Validate() error {
	if spec.To < 1 {
		return Invalidf("to", "to must be a version number (1 or more), got %d", spec.To)
	}
	if len(spec.Steps) > maxRolloutSteps {
		return Invalidf("steps", "%d steps; the limit is %d", len(spec.Steps), maxRolloutSteps)
	}
	for i, s := range spec.Steps {
		switch {
		case s < 1 || s > 100:
			return Invalidf("steps", "steps[%d] is %d; every step is a percent from 1 to 100", i, s)
		case i > 0 && s <= spec.Steps[i-1]:
			return Invalidf("steps", "steps must increase strictly: steps[%d] is %d after %d", i, s, spec.Steps[i-1])
		}
	}
	if last := spec.Steps[len(spec.Steps)-1]; last != 100 {
		return Invalidf("steps", "the last step must be 100, got %d (steps %s)", last, RolloutSteps(spec.Steps))
	}
	if spec.Interval < MinRolloutInterval || spec.Interval > MaxRolloutInterval {
		return Invalidf("interval", "interval must be between %s and %s, got %s", MinRolloutInterval, MaxRolloutInterval, spec.Interval)
	}
	if r := *spec.MaxErrorRate; r < 0 || r > 100 || math.IsNaN(r) {
		return Invalidf("max_error_rate", "max_error_rate must be a percent from 0 to 100, got %g", r)
	}
	if spec.MaxP99 < 0 || spec.MaxP99 > maxP99Bound || (spec.MaxP99 > 0 && spec.MaxP99 < Duration(time.Millisecond)) {
		return Invalidf("max_p99", "max_p99 must be 0 (no bound) or between 1ms and %s, got %s", maxP99Bound, spec.MaxP99)
	}
	if r := *spec.MaxP99Ratio; r != 0 && (r < 1 || r > maxP99Ratio) || math.IsNaN(r) {
		return Invalidf("max_p99_ratio", "max_p99_ratio must be 0 (no comparison) or between 1 and %g, got %g", maxP99Ratio, r)
	}
	if spec.MinRequests < 1 || spec.MinRequests > maxMinRequests {
		return Invalidf("min_requests", "min_requests must be between 1 and %d, got %d", maxMinRequests, spec.MinRequests)
	}
	return nil
}

// NewRollout checks a rollout of service about to start (with cur the
// current traffic entry, active the service's active rollout if any, and
// exists its versions) and returns it at its first step, without an ID.
// The store then stores it, and appends its StepTraffic once it has an ID.
func NewRollout(service string, spec RolloutSpec, cur *TrafficEntry, active *Rollout, exists func(int) bool, now time.Time) (Rollout, error) {
	if active != nil {
		return Rollout{}, Conflictf("service %s has rollout %d %s (to version %d, step %d/%d); pause, promote or abort it before starting another",
			service, active.ID, active.State, active.To, active.Step, len(active.Steps))
	}
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return Rollout{}, err
	}
	if !exists(spec.To) {
		return Rollout{}, Invalidf("to", "service %s has no version %d", service, spec.To)
	}
	if cur == nil {
		return Rollout{}, NoTraffic(service)
	}
	if p := cur.PercentOf(spec.To); p == 100 {
		return Rollout{}, Conflictf("version %d of %s has 100%% of the traffic already", spec.To, service)
	} else if p >= spec.Steps[0] {
		return Rollout{}, Invalidf("steps", "version %d has %d%% already; the first step (%d%%) must be above it", spec.To, p, spec.Steps[0])
	}
	r := Rollout{Service: service, RolloutSpec: spec, State: RolloutRunning, Step: 1, StepStartedAt: now,
		Before: cur.ID, CreatedAt: now, UpdatedAt: now}
	for _, w := range cur.Weights {
		if w.Version != spec.To && w.Percent > 0 {
			r.Replaces = append(r.Replaces, w.Version)
		}
	}
	return r.Normalize(), nil
}

// NoRollout reports a service without an active rollout.
func NoRollout(service string, last *Rollout) error {
	if last == nil {
		return NotFoundf("service %s has no rollout", service)
	}
	return Conflictf("service %s has no running or paused rollout; the last one, rollout %d to version %d, %s", service, last.ID, last.To, last.State)
}

// Actions a person takes on a service's active rollout.
const (
	RolloutPause   = "pause"
	RolloutResume  = "resume"
	RolloutPromote = "promote"
	RolloutAbort   = "abort"
)

// RolloutAction returns the update (for store.UpdateRollout) of action on
// the service's active rollout, asked by by (cli, dashboard, api) at now:
// pause stops the checks; resume starts the current step's interval again
// and accepts the current split as the rollout's own; promote gives the
// target 100% now and ends the rollout succeeded; abort restores the entry
// before the rollout. ErrInvalid for an unknown action, ErrConflict when
// the newest rollout is not active or cannot take the action.
func RolloutAction(action, by string, now time.Time) func(r Rollout, cur TrafficEntry, before *TrafficEntry) (Rollout, *Traffic, error) {
	return func(r Rollout, cur TrafficEntry, before *TrafficEntry) (Rollout, *Traffic, error) {
		if !r.State.Active() {
			return r, nil, NoRollout(r.Service, &r)
		}
		var (
			next RolloutState
			t    *Traffic
		)
		switch action {
		case RolloutPause:
			next = RolloutPaused
			r.Reason = "paused by " + by
		case RolloutResume:
			next = RolloutRunning
			r.StepStartedAt, r.LastEntry, r.Reason = now, cur.ID, ""
		case RolloutPromote:
			next = RolloutSucceeded
			r.Reason = fmt.Sprintf("promoted by %s at step %d/%d", by, r.Step, len(r.Steps))
			p := cur.Shift(r.To, 100, fmt.Sprintf("rollout %d promoted by %s: 100%% to version %d", r.ID, by, r.To))
			t = &p
		case RolloutAbort:
			if before == nil {
				return r, nil, Conflictf("rollout %d: the entry before it (%d) is gone", r.ID, r.Before)
			}
			next = RolloutAborted
			r.Reason = fmt.Sprintf("aborted by %s at step %d/%d", by, r.Step, len(r.Steps))
			p := Restore(*before, fmt.Sprintf("rollout %d aborted by %s at step %d (%d%%): back to entry %d", r.ID, by, r.Step, r.Normalize().Percent, before.ID))
			t = &p
		default:
			return r, nil, Invalidf("action", "unknown rollout action %q: pause, resume, promote or abort", action)
		}
		if r.State == next {
			return r, nil, Conflictf("rollout %d of %s is %s already", r.ID, r.Service, next)
		}
		r, err := r.Transition(next)
		return r, t, err
	}
}
