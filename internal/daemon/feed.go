package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// feed applies the store's changes to the data plane: it follows the
// store's change feed (the pattern of an informer: list, then watch, with
// a periodic resync as the safety net) and, for every service that changed,
// reads that service's state in one transaction and applies it to the
// activator and then to the router. A change made by anyone (a handler, a
// build, another replica, a hand-edited database) reaches the router the
// same way, in time proportional to what changed.
//
// Sync gives the admin API read-your-writes: it returns once every change
// committed before the call is live.
type feed struct {
	st     feedStore
	apply  []applier // the activator first, so the router never routes to a version it does not know
	log    *slog.Logger
	resync time.Duration
	batch  int

	mu       sync.Mutex
	applied  int64         // the revision the data plane reflects
	advanced chan struct{} // closed and replaced when applied moves
	lastErr  error         // why the last catch-up failed, nil after a success
	// kick asks Run to catch up now: a Sync that finds the store ahead
	// does not wait for the store's watch to fire (another replica's
	// commit reaches it a moment later).
	kick chan struct{}
}

// feedStore is what feed needs of the store.
type feedStore interface {
	Revision(ctx context.Context) (int64, error)
	ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error)
	Watch(ctx context.Context) <-chan struct{}
	ServiceState(ctx context.Context, name string) (core.ServiceState, error)
	ServiceStates(ctx context.Context) ([]core.ServiceState, int64, error)
}

// applier is one part of the data plane that follows the store.
type applier interface {
	// Apply records the new state of some services; Remove forgets deleted
	// ones; Replace records the state of all of them.
	Apply(states []core.ServiceState)
	Remove(names []string)
	Replace(states []core.ServiceState)
}

// Defaults of the feed.
const (
	defaultResync = 10 * time.Minute
	feedBatch     = 1000
)

func newFeed(st feedStore, logger *slog.Logger, apply ...applier) *feed {
	return &feed{st: st, apply: apply, log: logger.With("component", "feed"), resync: defaultResync, batch: feedBatch,
		advanced: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// Load reads every service's state and applies it: at start-up, before the
// router serves, and as the periodic safety net.
func (f *feed) Load(ctx context.Context) error {
	states, rev, err := f.st.ServiceStates(ctx)
	if err != nil {
		return fmt.Errorf("load the state of every service: %w", err)
	}
	for _, a := range f.apply {
		a.Replace(states)
	}
	f.advance(rev, nil)
	return nil
}

// Run follows the feed until ctx is done.
func (f *feed) Run(ctx context.Context) error {
	watch := f.st.Watch(ctx)
	resync := time.NewTicker(f.resync)
	defer resync.Stop()
	// Catch up once at once: changes committed between Load and the
	// watch would otherwise wait for the next one.
	now := make(chan time.Time, 1)
	now <- time.Time{}
	var retry <-chan time.Time = now
	failures := 0
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-watch:
			if !ok {
				return nil // the store closed
			}
			err = f.catchUp(ctx)
		case <-retry:
			err = f.catchUp(ctx)
		case <-f.kick:
			err = f.catchUp(ctx)
		case <-resync.C:
			if err = f.Load(ctx); err == nil {
				err = f.catchUp(ctx)
			}
		}
		retry = nil
		switch {
		case err == nil:
			if failures > 0 {
				f.log.Info("applying the store's changes again", "after_failures", failures)
			}
			failures = 0
		case ctx.Err() != nil:
			return nil
		default:
			// Not applied: try again soon (a watch may not fire again).
			failures++
			f.advance(-1, err)
			if failures == 1 {
				f.log.Error("cannot apply the store's changes; the router serves the last state it has and retries", "err", err)
			}
			retry = time.After(min(time.Second<<min(failures-1, 4), 10*time.Second))
		}
	}
}

// catchUp applies every change after the applied revision.
func (f *feed) catchUp(ctx context.Context) error {
	for {
		f.mu.Lock()
		after := f.applied
		f.mu.Unlock()
		changes, err := f.st.ChangesSince(ctx, after, f.batch)
		if errors.Is(err, store.ErrCompacted) {
			f.log.Warn("the store pruned changes this replica had not applied; reloading every service", "applied", after)
			return f.Load(ctx)
		}
		if err != nil {
			return fmt.Errorf("read changes after revision %d: %w", after, err)
		}
		if len(changes) == 0 {
			return nil
		}
		seen := make(map[string]bool, len(changes))
		var states []core.ServiceState
		var removed []string
		for _, c := range changes {
			if seen[c.Service] {
				continue
			}
			seen[c.Service] = true
			s, err := f.st.ServiceState(ctx, c.Service)
			switch {
			case errors.Is(err, core.ErrNotFound):
				removed = append(removed, c.Service)
			case err != nil:
				return fmt.Errorf("read the state of service %q: %w", c.Service, err)
			default:
				states = append(states, s)
			}
		}
		for _, a := range f.apply {
			if len(states) > 0 {
				a.Apply(states)
			}
			if len(removed) > 0 {
				a.Remove(removed)
			}
		}
		f.advance(changes[len(changes)-1].Revision, nil)
		if len(changes) < f.batch {
			return nil
		}
	}
}

// advance records rev as applied (rev -1: only the error) and wakes Sync.
func (f *feed) advance(rev int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr = err
	if rev > f.applied {
		f.applied = rev
	}
	close(f.advanced)
	f.advanced = make(chan struct{})
}

// Sync returns once every change committed before the call is applied, or
// when ctx ends, with the reason it is not. Its callers bound it (the API's
// SyncTimeout, the build runner's).
func (f *feed) Sync(ctx context.Context) error {
	rev, err := f.st.Revision(ctx)
	if err != nil {
		return fmt.Errorf("read the store's revision: %w", err)
	}
	kicked := false
	for {
		f.mu.Lock()
		applied, ch, lastErr := f.applied, f.advanced, f.lastErr
		f.mu.Unlock()
		if applied >= rev {
			return nil
		}
		if !kicked { // once: a catch-up that fails backs off as it would
			kicked = true
			select {
			case f.kick <- struct{}{}:
			default: // a catch-up is asked for already
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("revision %d is not applied yet (applied: %d): %w", rev, applied, lastErr)
			}
			return fmt.Errorf("revision %d is not applied yet (applied: %d): %w", rev, applied, ctx.Err())
		}
	}
}
