package activator

import (
	"context"
	"time"
)

// Singletons (policy.singleton): at most one instance of the service runs
// across all its versions. A start holds the service's token from before
// the runtime is asked to start it until the runtime has removed it (the
// instance is gone), so the old instance of a traffic switch is stopped
// before the new one starts, and the requests for the new one wait
// meanwhile (they wait for the start as for any cold start). Starts that
// want the token queue for it first come, first served; the one at the head
// asks the holder to go once the holder has settled (ready, suspect or
// paused: a start in progress is left to finish, or the two versions of a
// switch could cancel each other's starts for ever): idle, it is removed;
// busy, it drains (no new request, stopped after its last one or the stop
// grace). Spares are never created for a singleton: a created container
// could be started past the token. The token counts a paused instance as
// running.

// singleToken is one singleton service's token. Guarded by Activator.singleMu.
type singleToken struct {
	holder *instance
	queue  []*instance
}

// singlePoll is how often a start waiting for the token looks again.
const singlePoll = 10 * time.Millisecond

// takeSingleton waits until in holds its service's token, asking the
// holder to go when in is next. No lock held.
func (a *Activator) takeSingleton(ctx context.Context, in *instance) error {
	service := in.vs.ver.Service
	tick := time.NewTicker(singlePoll)
	defer tick.Stop()
	for {
		a.singleMu.Lock()
		tok := a.singles[service]
		if tok == nil {
			tok = &singleToken{}
			a.singles[service] = tok
		}
		if tok.holder == in {
			a.singleMu.Unlock()
			return nil
		}
		queued := false
		for _, q := range tok.queue {
			queued = queued || q == in
		}
		if !queued {
			tok.queue = append(tok.queue, in)
		}
		head := tok.queue[0] == in
		if tok.holder == nil && head {
			tok.holder, tok.queue = in, tok.queue[1:]
			a.singleMu.Unlock()
			return nil
		}
		holder := tok.holder
		a.singleMu.Unlock()
		if holder != nil && head {
			a.evictSingleton(holder)
		}
		select {
		case <-ctx.Done():
			a.leaveSingleQueue(service, in)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// trySingleton gives in the token if nobody holds it (an adopted
// instance). Caller holds in.vs.mu.
func (a *Activator) trySingleton(in *instance) bool {
	a.singleMu.Lock()
	defer a.singleMu.Unlock()
	tok := a.singles[in.vs.ver.Service]
	if tok == nil {
		tok = &singleToken{}
		a.singles[in.vs.ver.Service] = tok
	}
	if tok.holder != nil && tok.holder != in {
		return false
	}
	tok.holder = in
	return true
}

func (a *Activator) leaveSingleQueue(service string, in *instance) {
	a.singleMu.Lock()
	defer a.singleMu.Unlock()
	tok := a.singles[service]
	if tok == nil {
		return
	}
	for i, q := range tok.queue {
		if q == in {
			tok.queue = append(tok.queue[:i], tok.queue[i+1:]...)
			break
		}
	}
}

// releaseSingleton returns in's token, if it holds one: in is gone.
// Caller holds in.vs.mu (singleMu comes after every version's lock).
func (a *Activator) releaseSingleton(in *instance) {
	a.singleMu.Lock()
	defer a.singleMu.Unlock()
	if tok := a.singles[in.vs.ver.Service]; tok != nil && tok.holder == in {
		tok.holder = nil
		if len(tok.queue) == 0 {
			delete(a.singles, in.vs.ver.Service)
		}
	}
}

// evictSingleton asks the holder of a token to go, for another start of
// its service, once it has settled.
func (a *Activator) evictSingleton(h *instance) {
	vs := h.vs
	vs.mu.Lock()
	defer vs.mu.Unlock()
	const why = "singleton: another instance of the service must start"
	switch h.state {
	case Ready, Suspect:
		if h.inflight.Load() > 0 {
			a.drain(h, why)
		} else {
			a.retire(h, why)
		}
	case Paused:
		a.retire(h, why)
	}
}
