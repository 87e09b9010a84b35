package activator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Lease is one request's hold on an instance; Release it when the request
// ends.
type Lease struct {
	InstanceID string
	Addr       string
	// ColdStart is how long the request waited for an instance to start or
	// wake; 0 when one was running.
	ColdStart time.Duration
	// QueueWait is how long it waited for a free slot of a running
	// instance (max_concurrency), with no start involved.
	QueueWait time.Duration

	a    *Activator
	in   *instance
	once sync.Once
}

// Release returns the instance's capacity. A draining instance whose last
// request this was is stopped.
func (l *Lease) Release() {
	l.once.Do(func() {
		in := l.in
		in.lastRequest.Store(l.a.now().UnixNano())
		left := in.inflight.Add(-1)
		vs := in.vs
		vs.mu.Lock()
		if vs.waiters > 0 {
			vs.broadcast()
		}
		if in.state == Draining && left == 0 && l.a.drainedOut(in) {
			l.a.retire(in, in.why)
		}
		vs.mu.Unlock()
	})
}

// Fail reports that the instance could not be reached (its address refused
// the connection): it is removed at once, so the caller can acquire again
// and get another.
func (l *Lease) Fail() {
	vs := l.in.vs
	vs.mu.Lock()
	defer vs.mu.Unlock()
	switch l.in.state {
	case Ready, Suspect, Draining:
		l.a.log.Warn("instance unreachable; replacing it", "instance", l.in.id)
		l.a.retire(l.in, "it refused a connection")
	}
}

// Suspect reports that the instance failed a request (it timed out, broke
// the connection or answered garbage): it gets no request until a health
// probe passes, and is replaced if none does within SuspectTimeout.
func (l *Lease) Suspect(reason string) {
	l.a.suspect(l.in, reason)
}

// picker chooses the instance a request gets among those eligible says
// may take one more, or returns nil.
type picker func(all []*instance, eligible func(*instance) bool) *instance

// powerOfTwo picks, of two instances chosen at random, the one with fewer
// requests in flight ("power of two choices": nearly as balanced as the
// least loaded of all, without every request looking at every instance),
// and falls back to the least loaded eligible one when neither may take it.
func powerOfTwo(all []*instance, eligible func(*instance) bool) *instance {
	n := len(all)
	switch n {
	case 0:
		return nil
	case 1:
		if eligible(all[0]) {
			return all[0]
		}
		return nil
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := all[i], all[j]
	okA, okB := eligible(a), eligible(b)
	switch {
	case okA && okB:
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case okA:
		return a
	case okB:
		return b
	}
	var best *instance
	for _, in := range all {
		if eligible(in) && (best == nil || in.inflight.Load() < best.inflight.Load()) {
			best = in
		}
	}
	return best
}

// eligible reports whether in may take one more request now. Caller holds
// in.vs.mu.
func (vs *versionState) eligible(in *instance) bool {
	limit := int64(vs.ver.MaxConcurrency)
	return in.state.serves() && !in.withheld && (limit == 0 || in.inflight.Load() < limit)
}

// Acquire returns a lease on a ready instance of v, starting or waking one
// when needed, and waiting at most WaitTimeout (and no longer than ctx).
// Errors: core.ErrNotFound (the version was deleted), core.ErrUnavailable
// (a start failed or is backing off, too many waiting, nothing ready in
// time; errors of a backoff also carry RetryAfter) or ctx's error.
func (a *Activator) Acquire(ctx context.Context, v *core.Version) (*Lease, error) {
	vs := a.lookup(v.ID)
	if vs == nil {
		return nil, core.NotFoundf("version %d of %s was deleted", v.Number, v.Service)
	}
	began := a.now()
	var deadline <-chan time.Time
	cold := false
	vs.mu.Lock()
	for {
		if vs.gone {
			vs.mu.Unlock()
			return nil, core.NotFoundf("version %d of %s was deleted", v.Number, v.Service)
		}
		if a.closing.Load() {
			vs.mu.Unlock()
			return nil, core.Unavailablef("wisp is shutting down")
		}
		if in := a.pick(vs.instances, vs.eligible); in != nil {
			in.inflight.Add(1)
			in.lastRequest.Store(a.now().UnixNano())
			vs.requests.Add(1)
			vs.mu.Unlock()
			l := &Lease{InstanceID: in.id, Addr: in.addr, a: a, in: in}
			if deadline != nil {
				waited := a.now().Sub(began)
				if cold {
					l.ColdStart = waited
				} else {
					l.QueueWait = waited
				}
				a.metrics.queueWait.WithLabelValues(v.Service, strconv.Itoa(v.Number)).Observe(waited.Seconds())
			}
			return l, nil
		}
		if vs.waiters >= a.cfg.MaxWaiters {
			vs.mu.Unlock()
			return nil, core.Unavailablef("%d requests are already waiting for version %d of %s; retry shortly", a.cfg.MaxWaiters, v.Number, v.Service)
		}
		starting, err := a.provide(vs)
		if err != nil {
			vs.mu.Unlock()
			return nil, err
		}
		cold = cold || starting
		if deadline == nil {
			t := time.NewTimer(a.cfg.WaitTimeout)
			defer t.Stop()
			deadline = t.C
		}
		ch := vs.waitChan()
		vs.waiters++
		if a.cfg.Queueing != nil {
			a.cfg.Queueing()
		}
		vs.mu.Unlock()
		select {
		case <-ch:
			err = nil
		case <-ctx.Done():
			err = ctx.Err()
		case <-deadline:
			err = core.Unavailablef("no instance of version %d of %s was ready within %s; retry shortly", v.Number, v.Service, a.cfg.WaitTimeout)
		}
		vs.mu.Lock()
		vs.waiters--
		if err != nil {
			if vs.waiters == 0 {
				a.cancelUnwanted(vs)
			}
			vs.mu.Unlock()
			return nil, err
		}
	}
}

// provide makes capacity come for a request that found none, and reports
// whether the request waits for an instance to start or wake (a cold start)
// rather than for a running one (a busy one to free a slot, or one adopted
// from an earlier run to pass its probe). A paused instance is thawed; with
// no instance that runs or will soon, one is started, unless the version's
// starts are backing off. A follower starts and thaws nothing: it asks
// the leader (await). Caller holds vs.mu.
func (a *Activator) provide(vs *versionState) (cold bool, err error) {
	if !a.leading.Load() {
		return a.await(vs)
	}
	if vs.first(Waking) != nil {
		return true, nil
	}
	if in := vs.first(Pausing); in != nil {
		in.wakeAfterPause = true
		return true, nil
	}
	if in := vs.first(Paused); in != nil {
		a.beginWake(in)
		return true, nil
	}
	if vs.hasProspect() {
		if vs.count(State.serves) > 0 {
			return false, nil
		}
		for _, in := range vs.instances {
			if in.state == Starting && !in.adopted {
				return true, nil
			}
		}
		return false, nil
	}
	if now := a.now(); vs.backoff.active(now) {
		return false, a.backoffErr(vs, now)
	}
	a.startNow(vs)
	return true, nil
}

// hasProspect reports whether vs has an instance that serves or will soon
// without anything more being started: one ready, starting, or suspect and
// not yet failing its health probe. Queued scale-ups are not prospects: they
// wait for a start slot, maybe behind other versions' starts. Caller holds
// vs.mu.
func (vs *versionState) hasProspect() bool {
	for _, in := range vs.instances {
		switch in.state {
		case Ready, Starting, Waking, Pausing, Paused:
			return true
		case Suspect:
			if !in.unhealthy {
				return true
			}
		}
	}
	return false
}

// cancelUnwanted cancels the starts made for waiting requests once none
// waits any more (a cold start's work is shared by its waiters and
// cancelled only when all have gone, here and on the replicas that
// reported waiting). Caller holds vs.mu.
func (a *Activator) cancelUnwanted(vs *versionState) {
	if a.remote.waiting(vs.id, a.now()) > 0 {
		return
	}
	for _, in := range vs.instances {
		if in.state == Starting && in.onDemand && in.cancel != nil {
			in.abort = "no request waits for it any more"
			in.cancel()
		}
	}
}

// backoffErr is the answer to a request for a version whose starts are
// backing off. Caller holds vs.mu.
func (a *Activator) backoffErr(vs *versionState, now time.Time) error {
	wait := vs.backoff.until.Sub(now)
	return &retryError{
		msg: fmt.Sprintf("version %d of %s failed to start %d time(s) in a row (last: %s); the next try is in %s",
			vs.ver.Number, vs.ver.Service, vs.backoff.failures, vs.backoff.last, wait.Round(100*time.Millisecond)),
		after: wait,
	}
}

// retryError is a core.ErrUnavailable that says when to try again.
type retryError struct {
	msg   string
	after time.Duration
}

func (e *retryError) Error() string { return e.msg }

// Unwrap makes errors.Is(err, core.ErrUnavailable) hold.
func (e *retryError) Unwrap() error { return core.ErrUnavailable }

// RetryAfter is how long the caller should wait before trying again.
func (e *retryError) RetryAfter() time.Duration { return e.after }
