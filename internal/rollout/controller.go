package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// Store is what the controller needs of the store.
type Store interface {
	ActiveRollouts(ctx context.Context) ([]core.Rollout, error)
	UpdateRollout(ctx context.Context, service string, fn store.RolloutUpdate) (core.Rollout, error)
}

// EventSink receives platform events. Append must never block.
type EventSink interface {
	Append(e core.LogEntry)
}

// Config configures a Controller.
type Config struct {
	Store    Store
	Recorder *Recorder
	// Events receives the rollout.* events; nil sends none.
	Events EventSink
	// Tick is how often the controller looks at the active rollouts;
	// default DefaultTick.
	Tick time.Duration
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// DefaultTick is how often the controller looks at the active rollouts: a
// step's check comes at most this long after its interval ends.
const DefaultTick = 250 * time.Millisecond

// Validate checks c and fills its defaults.
func (c *Config) Validate() error {
	if c.Store == nil || c.Recorder == nil {
		return errors.New("rollout: a store and a recorder are required")
	}
	if c.Tick < 0 {
		return fmt.Errorf("rollout: tick %s is negative", c.Tick)
	}
	if c.Tick == 0 {
		c.Tick = DefaultTick
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// window is where a step's numbers start: the recorder's counts when this
// controller first saw the step.
type window struct {
	step         int
	started      time.Time
	since        time.Time
	target, base Counts
}

// Controller drives the active rollouts. Run it on the leader only: two
// controllers would judge the same step twice (harmless, since every
// update is checked in the store's transaction, but their numbers differ).
type Controller struct {
	cfg     Config
	log     *slog.Logger
	windows map[int64]window // by rollout ID; owned by Run's goroutine
}

// New returns a controller.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Controller{cfg: cfg, log: cfg.Logger.With("component", "rollout"), windows: map[int64]window{}}, nil
}

// Run drives the rollouts until ctx is done. A new term as leader starts
// each step's window afresh (this replica's recorder did not count the
// others' requests).
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	defer c.cfg.Recorder.Track(nil)
	clear(c.windows)
	for {
		c.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick looks at every active rollout once.
func (c *Controller) Tick(ctx context.Context) {
	list, err := c.cfg.Store.ActiveRollouts(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("could not read the active rollouts; trying again", "err", err)
		}
		return
	}
	tracked := make(map[string]bool, len(list))
	seen := make(map[int64]bool, len(list))
	for _, r := range list {
		tracked[r.Service] = true
		seen[r.ID] = true
	}
	c.cfg.Recorder.Track(tracked)
	for id := range c.windows {
		if !seen[id] {
			delete(c.windows, id)
		}
	}
	for _, r := range list {
		if r.State != core.RolloutRunning {
			delete(c.windows, r.ID)
			continue
		}
		if err := c.advance(ctx, r, c.cfg.Now()); err != nil && !errors.Is(err, errMoved) && ctx.Err() == nil {
			c.log.Warn("rollout: could not advance", "service", r.Service, "rollout", r.ID, "err", err)
		}
	}
}

// errMoved: the rollout changed between the read and the update (a person
// paused, promoted or aborted it); the next tick sees it as it is.
var errMoved = errors.New("rollout moved on")

func (c *Controller) counts(r core.Rollout) (target, base Counts) {
	target = c.cfg.Recorder.Counts(r.Service, r.To)
	for _, v := range r.Replaces {
		base = base.Add(c.cfg.Recorder.Counts(r.Service, v))
	}
	return target, base
}

// advance takes r one decision further at now.
func (c *Controller) advance(ctx context.Context, r core.Rollout, now time.Time) error {
	w, ok := c.windows[r.ID]
	if !ok || w.step != r.Step || !w.started.Equal(r.StepStartedAt) {
		w = window{step: r.Step, started: r.StepStartedAt, since: now}
		w.target, w.base = c.counts(r)
		c.windows[r.ID] = w
		return nil
	}
	interval := r.Interval.Std()
	end := r.StepStartedAt.Add(interval)
	if now.Before(end) {
		return nil
	}
	target, base := c.counts(r)
	check := Judge(r.RolloutSpec, target.Sub(w.target), base.Sub(w.base))
	check.At, check.Step, check.Percent, check.Since = now, r.Step, r.Percent, w.since
	switch check.Result {
	case core.CheckWaiting:
		deadline := end.Add(time.Duration(core.RolloutWaitIntervals) * interval)
		if now.Before(deadline) {
			if r.Check != nil && r.Check.Result == core.CheckWaiting && r.Check.Step == r.Step && now.Sub(r.Check.At) < time.Second {
				return nil // at most one write a second while waiting
			}
			reason := fmt.Sprintf("%s; step %d extended, pauses at %s without them", check.Detail, r.Step, deadline.UTC().Format(time.RFC3339))
			_, err := c.update(ctx, r, func(r core.Rollout, _ core.TrafficEntry, _ *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
				r.Check, r.Reason = &check, reason
				return r, nil, nil
			})
			return err
		}
		reason := fmt.Sprintf("paused: %s in %s (the step's interval and %d more); send traffic and resume, or promote or abort",
			check.Detail, now.Sub(r.StepStartedAt).Round(time.Second), core.RolloutWaitIntervals)
		out, err := c.update(ctx, r, func(r core.Rollout, _ core.TrafficEntry, _ *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
			r.Check, r.Reason = &check, reason
			r, err := r.Transition(core.RolloutPaused)
			return r, nil, err
		})
		if err == nil {
			c.emit(core.EventRolloutPaused, out, reason, &check)
		}
		return err
	case core.CheckFailed:
		msg := fmt.Sprintf("rollout %d failed at step %d (%d%%): %s", r.ID, r.Step, r.Percent, check.Detail)
		out, err := c.update(ctx, r, func(r core.Rollout, _ core.TrafficEntry, before *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
			r.Check, r.Reason = &check, msg
			r, err := r.Transition(core.RolloutFailed)
			if err != nil {
				return r, nil, err
			}
			if before == nil {
				return r, nil, fmt.Errorf("rollout %d: the entry before it (%d) is gone", r.ID, r.Before)
			}
			t := core.Restore(*before, msg)
			return r, &t, nil
		})
		if err == nil {
			c.emit(core.EventRolloutFailed, out, msg, &check)
		}
		return err
	}
	if r.Step == len(r.Steps) {
		msg := fmt.Sprintf("rollout %d succeeded: version %d has 100%% (%s)", r.ID, r.To, check.Detail)
		out, err := c.update(ctx, r, func(r core.Rollout, _ core.TrafficEntry, _ *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
			r.Check, r.Reason = &check, msg
			r, err := r.Transition(core.RolloutSucceeded)
			return r, nil, err
		})
		if err == nil {
			c.emit(core.EventRolloutSucceeded, out, msg, &check)
		}
		return err
	}
	var outside int64
	out, err := c.update(ctx, r, func(r core.Rollout, cur core.TrafficEntry, _ *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
		r.Check, outside = &check, 0
		if cur.ID != r.LastEntry {
			outside = cur.ID
			r.Reason = fmt.Sprintf("paused: the traffic was changed outside the rollout (entry %d); resume to go on from the current split, or abort", cur.ID)
			r, err := r.Transition(core.RolloutPaused)
			return r, nil, err
		}
		r.Step, r.StepStartedAt, r.Reason = r.Step+1, now, ""
		t := r.StepTraffic(cur.Traffic)
		return r, &t, nil
	})
	switch {
	case err != nil:
	case outside != 0:
		c.emit(core.EventRolloutPaused, out, out.Reason, &check)
	default:
		c.emit(core.EventRolloutStep, out, fmt.Sprintf("rollout %d: step %d/%d, %d%% to version %d (step %d passed: %s)",
			out.ID, out.Step, len(out.Steps), out.Percent, out.To, r.Step, check.Detail), &check)
	}
	return err
}

// update applies fn to r as stored, if it is still the rollout, step and
// state that was read (else errMoved).
func (c *Controller) update(ctx context.Context, read core.Rollout, fn store.RolloutUpdate) (core.Rollout, error) {
	return c.cfg.Store.UpdateRollout(ctx, read.Service, func(r core.Rollout, cur core.TrafficEntry, before *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
		if r.ID != read.ID || r.State != core.RolloutRunning || r.Step != read.Step || !r.StepStartedAt.Equal(read.StepStartedAt) {
			return r, nil, errMoved
		}
		return fn(r, cur, before)
	})
}

func (c *Controller) emit(event string, r core.Rollout, msg string, check *core.RolloutCheck) {
	if c.cfg.Events == nil {
		return
	}
	fields := []string{"rollout", strconv.FormatInt(r.ID, 10), "to", strconv.Itoa(r.To), "step", strconv.Itoa(r.Step), "percent", strconv.Itoa(r.Percent)}
	if check != nil {
		fields = append(fields, "requests", strconv.FormatInt(check.Requests, 10), "error_rate", strconv.FormatFloat(check.ErrorRate, 'f', 2, 64),
			"p99_ms", core.Millis(check.P99.Std()))
	}
	e := core.PlatformEvent(event, r.Service, r.To, "", msg, fields...)
	e.Time = c.cfg.Now()
	c.cfg.Events.Append(e)
}
