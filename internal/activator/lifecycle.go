package activator

import (
	"context"
	"errors"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// Run reaps idle instances, follows runtime events and re-lists the runtime
// periodically, until ctx is done. Call Reconcile once before serving, to
// adopt the instances of an earlier run, and Shutdown after Run returns.
func (a *Activator) Run(ctx context.Context) error {
	a.mu.Lock()
	a.baseCtx = ctx
	a.mu.Unlock()
	var events <-chan runtime.Event
	var watchErr <-chan error
	w, canWatch := a.rt.(runtime.Watcher)
	watch := func() {
		if canWatch {
			events, watchErr = w.Watch(ctx)
		}
	}
	watch()
	reap := time.NewTicker(a.cfg.ReapInterval)
	defer reap.Stop()
	resync := time.NewTicker(a.cfg.ResyncInterval)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reap.C:
			a.Reap(a.now())
		case <-resync.C:
			if err := a.Reconcile(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("re-list failed", "err", err)
			}
		case e := <-events:
			a.handleEvent(e)
		case err := <-watchErr:
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("runtime event stream ended; re-listing and watching again", "err", err)
			events, watchErr = nil, nil
			select { // no busy loop when the stream fails at once
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			if err := a.Reconcile(ctx); err != nil {
				a.log.Warn("re-list failed", "err", err)
			}
			watch()
		}
	}
}

// handleEvent drops an instance that died or was removed behind our back;
// the next request starts a new one.
func (a *Activator) handleEvent(e runtime.Event) {
	a.mu.Lock()
	_, spare := a.spares[e.InstanceID]
	a.mu.Unlock()
	if spare && e.Kind == runtime.EventRemoved {
		a.dropSpare(e.InstanceID)
		return
	}
	a.mu.Lock()
	inst := a.byID[e.InstanceID]
	var p *pool
	if inst != nil {
		p = a.pools[inst.versionID]
	}
	a.mu.Unlock()
	if inst == nil || p == nil {
		return
	}
	p.mu.Lock()
	p.remove(inst)
	p.mu.Unlock()
	a.forget(inst.id)
	a.log.Warn("instance gone", "instance", inst.id, "event", string(e.Kind), "exit_code", e.ExitCode)
	if e.Kind == runtime.EventDied {
		a.stopAsync(inst.id, "it exited") // remove the dead container
	}
}

// Reap pauses and removes idle instances as of now (see the package doc).
func (a *Activator) Reap(now time.Time) {
	a.mu.Lock()
	pools := make([]*pool, 0, len(a.pools))
	for _, p := range a.pools {
		pools = append(pools, p)
	}
	a.mu.Unlock()
	for _, p := range pools {
		a.reapPool(p, now)
	}
}

func (a *Activator) reapPool(p *pool, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pol := p.policy
	live := len(p.instances)
	for _, inst := range append([]*instance(nil), p.instances...) {
		if inst.inflight.Load() > 0 || inst.state == core.InstanceWaking {
			continue
		}
		idle := now.Sub(time.Unix(0, inst.lastRequest.Load()))
		switch {
		case p.gone || idle >= pol.IdleTimeout.Std() && live > pol.MinInstances:
			// Removed from the pool under the lock: no request can pick it
			// from here on, and none is in flight.
			p.remove(inst)
			a.forget(inst.id)
			live--
			why := "idle for " + idle.Round(time.Millisecond).String()
			if p.gone {
				why = "its version is gone"
			}
			a.stopAsync(inst.id, why)
		case a.pauser != nil && pol.PauseAfter > 0 && idle >= pol.PauseAfter.Std() && pol.PauseAfter < pol.IdleTimeout &&
			inst.state == core.InstanceReady:
			inst.state = core.InstancePaused
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.pause(inst)
			}()
		}
	}
}

func (a *Activator) pause(inst *instance) {
	inst.opMu.Lock()
	defer inst.opMu.Unlock()
	ctx, cancel := context.WithTimeout(a.ctx(), 10*time.Second)
	defer cancel()
	if err := a.pauser.Pause(ctx, inst.id); err != nil {
		// Still running: a later wake will find it so and succeed.
		a.log.Warn("pause failed", "instance", inst.id, "err", err)
		return
	}
	a.log.Debug("instance paused", "instance", inst.id)
}

// Sync tells the activator the current services and versions: policies are
// updated, and instances of versions that no longer exist are removed.
func (a *Activator) Sync(states []core.ServiceState) {
	live := map[int64]core.ScalingPolicy{}
	routable := map[int64]bool{} // a share of traffic or a tag
	for _, s := range states {
		numbers := map[int]int64{}
		for _, v := range s.Versions {
			live[v.ID] = s.Service.Policy
			numbers[v.Number] = v.ID
		}
		if t := s.Traffic; t != nil {
			for _, w := range t.Weights {
				if w.Percent > 0 {
					routable[numbers[w.Version]] = true
				}
			}
			for _, n := range t.Tags {
				routable[numbers[n]] = true
			}
		}
	}
	// Lock order: a pool's lock may be held when taking a.mu, never the
	// reverse; so collect under a.mu, then visit each pool.
	a.mu.Lock()
	a.live = map[int64]bool{}
	for id := range live {
		a.live[id] = true
	}
	var gone, kept []*pool
	for id, p := range a.pools {
		if _, ok := live[id]; ok {
			kept = append(kept, p)
			continue
		}
		delete(a.pools, id)
		gone = append(gone, p)
	}
	a.mu.Unlock()
	for _, p := range kept {
		p.mu.Lock()
		p.policy = live[p.version.ID]
		p.idle = !routable[p.version.ID]
		if id := p.spare; id != "" && p.idle {
			p.spare = ""
			a.forgetSpare(id)
			a.stopAsync(id, "its version has no traffic")
		}
		p.mu.Unlock()
	}
	for _, p := range gone {
		p.mu.Lock()
		p.gone = true
		for _, inst := range append([]*instance(nil), p.instances...) {
			p.remove(inst)
			a.forget(inst.id)
			a.stopAsync(inst.id, "its version was deleted")
		}
		if id := p.spare; id != "" {
			p.spare = ""
			a.forgetSpare(id)
			a.stopAsync(id, "its version was deleted")
		}
		p.mu.Unlock()
	}
}

// Reconcile makes the activator's view match the runtime: instances of known
// versions are adopted, others removed, and instances that vanished dropped.
func (a *Activator) Reconcile(ctx context.Context) error {
	list, err := a.rt.List(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	adopted, removed := 0, 0
	for _, in := range list {
		seen[in.ID] = true
		a.mu.Lock()
		_, known := a.byID[in.ID]
		_, spare := a.spares[in.ID]
		busy := a.pending[in.ID]
		a.mu.Unlock()
		if known || busy || spare {
			continue
		}
		if in.State == runtime.StateCreated && a.pc != nil {
			if a.adoptSpare(ctx, in) {
				adopted++
				continue
			}
		}
		if in.State != runtime.StateRunning && in.State != runtime.StatePaused || in.Addr == "" {
			a.stopAsync(in.ID, "not running: "+string(in.State))
			removed++
			continue
		}
		p, v, err := a.poolOf(ctx, in.VersionID)
		if errors.Is(err, core.ErrNotFound) {
			a.stopAsync(in.ID, "it belongs to no known version")
			removed++
			continue
		}
		if err != nil {
			return err
		}
		now := a.now()
		inst := &instance{id: in.ID, addr: in.Addr, service: v.Service, versionID: v.ID, version: v.Number,
			startedAt: in.StartedAt, state: core.InstanceReady}
		if in.State == runtime.StatePaused {
			inst.state = core.InstancePaused
		}
		inst.lastRequest.Store(now.UnixNano())
		p.mu.Lock()
		p.instances = append(p.instances, inst)
		close(p.freed)
		p.freed = make(chan struct{})
		p.mu.Unlock()
		a.mu.Lock()
		a.byID[in.ID] = inst
		a.mu.Unlock()
		adopted++
		a.log.Info("adopted instance", "instance", in.ID, "service", v.Service, "version", v.Number, "state", inst.state)
	}
	// Instances we hold that the runtime no longer has.
	a.mu.Lock()
	var lost []*instance
	for id, inst := range a.byID {
		if !seen[id] && !a.pending[id] {
			lost = append(lost, inst)
		}
	}
	var lostSpares []string
	for id := range a.spares {
		if !seen[id] {
			lostSpares = append(lostSpares, id)
		}
	}
	a.mu.Unlock()
	for _, id := range lostSpares {
		a.dropSpare(id)
	}
	for _, inst := range lost {
		a.handleEvent(runtime.Event{Kind: runtime.EventRemoved, InstanceID: inst.id})
	}
	if adopted+removed+len(lost) > 0 {
		a.log.Info("reconciled with the runtime", "adopted", adopted, "removed", removed, "lost", len(lost))
	}
	return nil
}

// poolOf returns the pool of the version with the global id, from the
// catalog: core.ErrNotFound when the version is unknown or deleted.
func (a *Activator) poolOf(ctx context.Context, id int64) (*pool, core.Version, error) {
	v, err := a.catalog.GetVersionByID(ctx, id)
	if err != nil {
		return nil, v, err
	}
	sv, err := a.catalog.GetService(ctx, v.Service)
	if err != nil {
		return nil, v, err
	}
	p := a.poolFor(&v, sv.Policy)
	if p == nil {
		return nil, v, core.NotFoundf("version %d of %s was deleted", v.Number, v.Service)
	}
	return p, v, nil
}

// Shutdown stops every instance (or, with KeepInstances, leaves them for
// the next start to adopt) and waits for starts and stops in flight. Call
// it after the router has drained.
func (a *Activator) Shutdown(ctx context.Context) error {
	a.closing.Store(true) // no new spares; one being made is removed
	a.mu.Lock()
	var all []string
	for id := range a.byID {
		all = append(all, id)
	}
	for id := range a.spares {
		all = append(all, id)
	}
	pools := make([]*pool, 0, len(a.pools))
	for _, p := range a.pools {
		pools = append(pools, p)
	}
	a.mu.Unlock()
	for _, p := range pools {
		p.mu.Lock()
		if p.start != nil {
			p.start.cancel()
		}
		p.mu.Unlock()
	}
	if !a.cfg.KeepInstances {
		for _, id := range all {
			a.stopAsync(id, "shutdown")
		}
	} else if len(all) > 0 {
		a.log.Info("keeping instances for the next start to adopt", "count", len(all))
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
