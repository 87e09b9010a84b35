package activator

import (
	"context"
	"errors"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// CPU weights (runtime.Weigher): the instances of a version that only
// receives mirrored copies (traffic.mirror, and no weight, tag or rule)
// run with a low CPU weight, so that on a busy machine the copies, whose
// answers are only compared, do not take CPU from the primary's answers.
// make bench-proxy measured the need: at half load on two cores, a 10%
// mirror slowed the primary's p50 by a median 0.22 ms with the mirror's
// container at the default weight, and by 0.05 ms (within noise) with it
// low. The weight changes when the version's role does: set on an instance
// that becomes ready, and on every instance when the traffic entry makes
// the version mirror-only or gives it traffic again. Only the leader
// calls the runtime.

// mirrorOnly reports whether version n of s gets nothing but mirrored
// copies.
func mirrorOnly(s core.ServiceState, n int) bool {
	t := s.Traffic
	return t != nil && t.Mirror != nil && t.Mirror.Version == n && !t.Served()[n]
}

// reweigh sets the weight of every instance of vs the runtime runs to
// vs.background. Caller holds vs.mu.
func (a *Activator) reweigh(vs *versionState) {
	for _, in := range vs.instances {
		switch in.state {
		case Ready, Suspect, Draining, Paused, Pausing, Waking:
			a.weigh(in, vs.background)
		}
	}
}

// weigh sets in's CPU weight in the background; an instance already gone
// is no error. Caller holds in.vs.mu.
func (a *Activator) weigh(in *instance, background bool) {
	if a.weigher == nil || !a.leading.Load() || a.closing.Load() {
		return
	}
	id := in.id
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(a.life, 10*time.Second)
		defer cancel()
		err := a.weigher.SetBackground(ctx, id, background)
		switch {
		case err == nil:
			a.log.Debug("instance CPU weight set", "instance", id, "background", background)
		case errors.Is(err, core.ErrNotFound) || ctx.Err() != nil:
		default:
			a.log.Warn("could not set the instance's CPU weight", "instance", id, "background", background, "err", err)
		}
	}()
}
