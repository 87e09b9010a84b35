package autoscaler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Source reports load and applies decisions (the activator).
type Source interface {
	// Load reports the live load of every version that has instances or
	// requests.
	Load() []core.VersionLoad
	// Scale brings a version to n instances and says what it did.
	Scale(versionID int64, n int) core.ScaleResult
}

// Observer receives every decision that changes a count with what it did,
// and the desired and actual counts after each tick (metrics).
type Observer interface {
	Decided(l core.VersionLoad, d Decision, res core.ScaleResult)
	Counts(l core.VersionLoad, d Decision)
	Forget(l core.VersionLoad)
}

// Autoscaler samples every version each tick and scales it.
type Autoscaler struct {
	cfg Config
	src Source
	obs Observer
	log *slog.Logger

	mu       sync.Mutex
	versions map[int64]*track

	poke chan struct{} // Poke: requests are queueing somewhere
}

type track struct {
	load    core.VersionLoad
	samples []Sample
	stats   Stats
}

// New returns an autoscaler over src. obs may be nil.
func New(cfg Config, src Source, obs Observer, logger *slog.Logger) (*Autoscaler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Autoscaler{cfg: cfg, src: src, obs: obs, log: logger.With("component", "autoscaler"), versions: map[int64]*track{},
		poke: make(chan struct{}, 1)}, nil
}

// Run ticks until ctx is done, and takes an early look (Early) after a
// Poke, at most every EarlyGap. When it returns it forgets what it sampled:
// a replica runs it only while it leads, and a later term must start from
// the load of then, not from samples of an earlier one.
func (a *Autoscaler) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Tick)
	defer t.Stop()
	defer a.forget()
	// A poke within EarlyGap of the last early look is kept for when the
	// gap is over (late), so the last of a burst of pokes is not lost.
	var last time.Time
	late := time.NewTimer(time.Hour)
	late.Stop()
	defer late.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			a.Tick(now)
		case <-a.poke:
			if wait := a.cfg.EarlyGap() - time.Since(last); wait > 0 {
				if !pending {
					pending = true
					late.Reset(wait)
				}
				continue
			}
			last = time.Now()
			a.Early(last)
		case <-late.C:
			pending = false
			last = time.Now()
			a.Early(last)
		}
	}
}

// Poke asks for an early look at the load, before the next tick: requests
// are queueing at a version (the activator pokes when one starts to wait).
// It never blocks.
func (a *Autoscaler) Poke() {
	select {
	case a.poke <- struct{}{}:
	default:
	}
}

// Early decides for every version as of now, with the samples so far and
// the load of now as if it were one more (it is not kept: the windows'
// averages stay those of one sample per tick), and applies scale-ups only:
// a burst is met within EarlyGap of its first queued request instead of at
// the next tick, up to a second later. Scale-downs wait for the ticks.
func (a *Autoscaler) Early(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.src.Load() {
		if l.Instances == 0 {
			continue // never from zero because of load (see Decide)
		}
		tr := a.versions[l.VersionID]
		if tr == nil {
			tr = &track{stats: Stats{LastChange: now}}
			a.versions[l.VersionID] = tr
		}
		tr.load = l
		st := tr.stats
		st.Samples = append(tr.samples[:len(tr.samples):len(tr.samples)],
			Sample{At: now, Concurrency: float64(l.Concurrency), Requests: l.Requests})
		st.Current = l.Instances
		d := a.cfg.Decide(l.Policy, st, now)
		if d.Desired <= l.Instances {
			continue
		}
		tr.stats.PanicUntil, tr.stats.LastChange = d.PanicUntil, now
		res := a.src.Scale(l.VersionID, d.Desired)
		a.log.Info("scaling early", "service", l.Service, "version", l.Version, "from", l.Instances, "to", d.Desired,
			"panic", d.Panic, "reason", d.Reason, "queued", res.Queued, "held_back", res.HeldBack)
		if a.obs != nil {
			a.obs.Decided(l, d, res)
		}
	}
}

// Tick samples every version, decides, and applies changes, as of now.
func (a *Autoscaler) Tick(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[int64]bool{}
	keep := a.cfg.StableWindow + a.cfg.Tick
	for _, l := range a.src.Load() {
		seen[l.VersionID] = true
		tr := a.versions[l.VersionID]
		if tr == nil {
			tr = &track{stats: Stats{LastChange: now}}
			a.versions[l.VersionID] = tr
		}
		tr.load = l
		tr.samples = append(tr.samples, Sample{At: now, Concurrency: float64(l.Concurrency), Requests: l.Requests})
		for len(tr.samples) > 0 && now.Sub(tr.samples[0].At) > keep {
			tr.samples = tr.samples[1:]
		}
		tr.stats.Samples = tr.samples
		tr.stats.Current = l.Instances
		d := a.cfg.Decide(l.Policy, tr.stats, now)
		tr.stats.PanicUntil = d.PanicUntil
		if d.Desired != l.Instances {
			tr.stats.LastChange = now
			res := a.src.Scale(l.VersionID, d.Desired)
			// What happened, not only what was asked: a scale-down drains
			// busy instances, and a failing version holds starts back.
			a.log.Info("scaling", "service", l.Service, "version", l.Version, "from", l.Instances, "to", d.Desired,
				"panic", d.Panic, "reason", d.Reason, "queued", res.Queued, "dropped", res.Dropped,
				"stopped", res.Stopped, "draining", res.Draining, "held_back", res.HeldBack)
			if a.obs != nil {
				a.obs.Decided(l, d, res)
			}
		}
		if a.obs != nil {
			a.obs.Counts(l, d)
		}
	}
	for id, tr := range a.versions {
		if !seen[id] {
			delete(a.versions, id)
			if a.obs != nil {
				a.obs.Forget(tr.load)
			}
		}
	}
}

// forget drops every version's samples and their series.
func (a *Autoscaler) forget() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, tr := range a.versions {
		delete(a.versions, id)
		if a.obs != nil {
			a.obs.Forget(tr.load)
		}
	}
}
