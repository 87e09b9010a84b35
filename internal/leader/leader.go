// Package leader elects one replica, among the Wisp processes that share a
// store, to run the loops that must not run twice: adoption and garbage
// collection, the reaper, scale decisions.
//
// The election is a lease kept in the store: a named row with a holder and
// an expiry on the store's own clock. The leader renews it every Renew; a
// replica takes it only once it has expired. A leader that cannot renew
// (killed, frozen, cut off from the store) stops leading on its own before
// its lease can expire, so two replicas never lead at once as long as their
// clocks run at the same rate; a killed leader is replaced within TTL+Renew.
package leader

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// Lease is the store's side of the election.
type Lease interface {
	// AcquireLease takes the lease name for holder, or renews it when holder
	// has it, for ttl on the store's clock. It reports whether holder holds
	// the lease after the call; false when another holder's lease has not
	// expired.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder has it, so another replica
	// can take it at once.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Config configures an Elector.
type Config struct {
	Lease  Lease
	Name   string // the lease's name, e.g. "wisp-leader"
	Holder string // this replica's identity, unique among the replicas
	// TTL is how long a lease lasts without renewal (default 10s).
	TTL time.Duration
	// Renew is how often the leader renews, and a follower tries (default TTL/5).
	Renew  time.Duration
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultTTL  = 10 * time.Second
	DefaultName = "wisp-leader"
)

// Elector runs the election for one replica.
type Elector struct {
	cfg     Config
	leading atomic.Bool
}

// New returns an Elector.
func New(cfg Config) (*Elector, error) {
	if cfg.Lease == nil || cfg.Holder == "" {
		return nil, errors.New("leader: an elector needs a lease and a holder identity")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Renew <= 0 {
		cfg.Renew = cfg.TTL / 5
	}
	if cfg.Renew*2 >= cfg.TTL {
		return nil, errors.New("leader: renew must be well under the TTL (at most a half)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Elector{cfg: cfg}, nil
}

// Leading reports whether this replica leads now.
func (e *Elector) Leading() bool { return e.leading.Load() }

// Run takes part in the election until ctx is done. Each time this replica
// becomes leader it calls lead with a context that ends when leadership
// ends, and waits for lead to return before it competes again. At the end
// it releases the lease if it holds it.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	t := time.NewTicker(e.cfg.Renew)
	defer t.Stop()
	// A ticker that fired while this replica led must not start a term
	// after ctx is done, so ctx is checked before every try.
	for ctx.Err() == nil {
		ok, err := e.try(ctx)
		if ok {
			e.term(ctx, lead)
		} else if err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("leader election: cannot reach the lease", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return nil
}

// try asks for the lease once, bounded by Renew.
func (e *Elector) try(ctx context.Context) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Renew)
	defer cancel()
	return e.cfg.Lease.AcquireLease(cctx, e.cfg.Name, e.cfg.Holder, e.cfg.TTL)
}

// term is one term as leader: lead runs while renewals succeed. The lease
// is safe until (start of the last successful renewal) + TTL; the term
// ends a margin of one Renew before that, or as soon as a renewal says
// another replica holds it.
func (e *Elector) term(ctx context.Context, lead func(ctx context.Context)) {
	began := e.cfg.Now()
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	e.leading.Store(true)
	e.cfg.Logger.Info("this replica leads", "holder", e.cfg.Holder)
	go func() {
		defer close(done)
		lead(lctx)
	}()
	safeUntil := began.Add(e.cfg.TTL - e.cfg.Renew)
	t := time.NewTicker(e.cfg.Renew)
	reason := ""
loop:
	for {
		select {
		case <-ctx.Done():
			reason = "shutting down"
			break loop
		case <-done:
			reason = "the leader's loops returned"
			break loop
		case <-t.C:
		}
		sent := e.cfg.Now()
		if !sent.Before(safeUntil) {
			reason = "the lease could not be renewed in time"
			break loop
		}
		// A renewal may take until safeUntil; past it the lease may be
		// another's.
		rctx, rcancel := context.WithDeadline(ctx, safeUntil)
		ok, err := e.cfg.Lease.AcquireLease(rctx, e.cfg.Name, e.cfg.Holder, e.cfg.TTL)
		rcancel()
		switch {
		case err == nil && ok:
			safeUntil = sent.Add(e.cfg.TTL - e.cfg.Renew)
		case err == nil:
			reason = "another replica holds the lease"
			break loop
		default:
			if !e.cfg.Now().Before(safeUntil) {
				reason = "the lease could not be renewed in time: " + err.Error()
				break loop
			}
			e.cfg.Logger.Warn("leader: renewing the lease failed; retrying", "err", err)
		}
	}
	t.Stop()
	e.leading.Store(false)
	cancel()
	<-done
	e.cfg.Logger.Info("this replica stopped leading", "holder", e.cfg.Holder, "reason", reason)
	if ctx.Err() != nil {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := e.cfg.Lease.ReleaseLease(rctx, e.cfg.Name, e.cfg.Holder); err != nil {
			e.cfg.Logger.Warn("leader: releasing the lease failed; another replica takes it when it expires", "err", err)
		}
		rcancel()
	}
}
