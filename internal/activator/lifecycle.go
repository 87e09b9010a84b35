package activator

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// Run reaps idle instances, follows runtime events, probes liveness and
// re-lists the runtime periodically, until ctx is done. Call Reconcile once
// before serving, to adopt the instances of an earlier run, and Shutdown
// after Run returns. On a follower (replicas.go) it only mirrors: events
// and re-lists bring the instances the leader manages; it reaps and probes
// nothing.
func (a *Activator) Run(ctx context.Context) error {
	var events <-chan runtime.Event
	var watchErr <-chan error
	w, canWatch := a.rt.(runtime.Watcher)
	watch := func() {
		if canWatch {
			events, watchErr = w.Watch(ctx)
		}
	}
	watch()
	if canWatch {
		// List after the watch began: what happened between the caller's
		// first Reconcile (or a start made before Run) and the watch (an
		// instance that died, say) is not missed until the next resync.
		if err := a.Reconcile(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("list after watch failed", "err", err)
		}
	}
	reap := time.NewTicker(a.cfg.ReapInterval)
	defer reap.Stop()
	resync := time.NewTicker(a.cfg.ResyncInterval)
	defer resync.Stop()
	live := time.NewTicker(time.Second)
	defer live.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reap.C:
			a.Reap(a.now())
		case <-live.C:
			a.checkLiveness(a.now())
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

// handleEvent brings an instance's state in line with what the runtime
// reports happened to it: a process that exited or a container removed
// behind Wisp's back is dropped (the next request or the autoscaler starts
// another), and one frozen or thawed by hand is marked so (a request thaws
// a frozen one). Events of what Wisp itself did find the instance in the
// state of that operation and change nothing. On a shared runtime, an
// instance another replica started becomes known by its ready event.
func (a *Activator) handleEvent(e runtime.Event) {
	in := a.known(e.InstanceID)
	if in == nil {
		if e.Kind == runtime.EventReady && a.shared {
			a.readyElsewhere(e)
		}
		return
	}
	vs := in.vs
	vs.mu.Lock()
	defer vs.mu.Unlock()
	switch e.Kind {
	case runtime.EventReady:
		if !a.leading.Load() {
			a.promote(in, e.Instance)
		}
	case runtime.EventOOM:
		if !in.oom && in.state != Stopping {
			a.emit(time.Time{}, core.EventInstanceOOM, &vs.ver, in.id, "killed for memory (out of memory)")
		}
		in.oom = true
	case runtime.EventDied, runtime.EventRemoved:
		why := "its container was removed outside Wisp"
		if e.Kind == runtime.EventDied {
			why = fmt.Sprintf("its process exited with code %d", e.ExitCode)
		}
		if in.oom {
			why += " after running out of memory (OOM)"
		}
		if e.Kind == runtime.EventDied && in.state != Stopping && !in.exited {
			in.exited, in.exitCode = true, e.ExitCode
		}
		switch in.state {
		case Ready, Suspect, Draining, Paused, Spare:
			if a.leading.Load() { // the leader counts it, not every replica
				a.log.Warn("instance gone", "instance", in.id, "service", vs.ver.Service, "version", vs.ver.Number, "why", why)
				a.metrics.lost(&vs.ver, in.oom)
			}
			a.retire(in, why)
		case Creating, Pausing, Waking:
			a.retire(in, why) // its operation removes it when it ends
		}
		// Starting: the readiness probe sees the exit and reports it.
	case runtime.EventPaused:
		if in.state == Ready || in.state == Suspect {
			a.move(in, Paused, "frozen outside Wisp")
			if !a.leading.Load() {
				break // the leader thaws it when requests want it
			}
			if in.inflight.Load() > 0 {
				// Requests are stuck in it: thaw it now, not when the next
				// one finds nothing else ready.
				a.log.Warn("instance frozen outside Wisp with requests in flight; thawing it", "instance", in.id)
				a.beginWake(in)
			} else {
				a.log.Warn("instance frozen outside Wisp; the next request thaws it", "instance", in.id)
			}
		}
	case runtime.EventUnpaused:
		if in.state == Paused {
			// Make sure: a late event of an earlier thaw of Wisp's must not
			// mark a frozen instance ready.
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				ctx, cancel := context.WithTimeout(a.life, 5*time.Second)
				ri, err := a.rt.Inspect(ctx, in.id)
				cancel()
				vs.mu.Lock()
				defer vs.mu.Unlock()
				if err == nil && ri.State == runtime.StateRunning && in.state == Paused {
					a.log.Info("instance thawed outside Wisp", "instance", in.id)
					in.lastRequest.Store(a.now().UnixNano())
					a.move(in, Ready, "")
				}
			}()
		}
	}
}

// Reap pauses and removes idle instances as of now (see the package doc).
// Only a leader reaps.
func (a *Activator) Reap(now time.Time) {
	if !a.leading.Load() {
		return
	}
	for _, vs := range a.allVersions() {
		vs.mu.Lock()
		a.reapVersion(vs, now)
		vs.mu.Unlock()
	}
}

// reapVersion: caller holds vs.mu.
func (a *Activator) reapVersion(vs *versionState, now time.Time) {
	pol := vs.policy
	live := vs.count(State.counts)
	// Standbys: instances idle for idle_timeout that would leave the
	// version with fewer than standby are paused instead of removed; awake
	// counts those not paused, so that min_instances stay awake.
	standby := a.standbyOf(vs)
	least := a.minOf(vs, now)
	// A version that lost its traffic lately keeps one instance, paused,
	// past idle_timeout (policy.keep_previous).
	previous := a.previousOf(vs, now)
	keep := max(least, standby, previous)
	awake := vs.count(func(s State) bool { return s.counts() && s != Pausing && s != Paused })
	for _, in := range append([]*instance(nil), vs.instances...) {
		if in.state == Draining && in.inflight.Load() == 0 && a.drainedOut(in) {
			// The replicas that used it went quiet, or away.
			a.retire(in, in.why)
			continue
		}
		if a.busy(in, now) || in.state != Ready && in.state != Paused {
			continue
		}
		// lastRequest includes the requests other replicas reported.
		idle := now.Sub(time.Unix(0, in.lastRequest.Load()))
		switch {
		case idle >= pol.IdleTimeout.Std() && live > keep:
			// With nothing in flight and under the lock Acquire takes, no
			// request can be handed it from here on; other replicas drain
			// it first (remove).
			live--
			if in.state != Paused {
				awake--
			}
			in.idleFor = idle
			a.remove(in, "idle for "+idle.Round(time.Millisecond).String())
		case previous > 0 && in.state == Ready && a.pauser != nil && !a.shared && awake > least:
			// The kept previous instance, paused at once: no request
			// reaches it until traffic comes back (sync.go thaws it).
			awake--
			a.beginPause(in, idle, "paused: kept for a rollback ("+"keep_previous "+pol.KeepPrevious.String()+")")
		case idle >= pol.IdleTimeout.Std() && in.state == Ready && standby > 0 && awake > least:
			// Kept as a standby: paused even when pause_after would not
			// have paused it (0, or at or above idle_timeout).
			awake--
			a.beginPause(in, idle, "paused as a standby: idle for "+seconds(idle)+" s")
		case in.state == Ready && a.pauser != nil && !a.shared && pol.PauseAfter > 0 && pol.PauseAfter < pol.IdleTimeout &&
			idle >= pol.PauseAfter.Std():
			// Not on a shared runtime: other replicas would keep sending
			// requests to a frozen instance until its event reached them
			// (and Kubernetes cannot pause anyway).
			a.beginPause(in, idle, "paused: idle for "+seconds(idle)+" s")
		}
	}
	a.topUpStandby(vs, standby, now)
}

// standbyOf returns how many standbys vs keeps: its policy's, for a version
// that gets traffic, where instances can be paused (not on a shared
// runtime, see reapVersion); else 0. Caller holds vs.mu.
func (a *Activator) standbyOf(vs *versionState) int {
	if !vs.routable || vs.gone || a.pauser == nil || a.shared {
		return 0
	}
	return vs.policy.Standby
}

// minOf returns the min_instances that applies to vs at now: the policy's
// (min_instances_schedule included) for a version that gets traffic, else
// 0. Caller holds vs.mu.
func (a *Activator) minOf(vs *versionState, now time.Time) int {
	if !vs.routable || vs.gone {
		return 0
	}
	return vs.policy.MinInstancesAt(now)
}

// previousOf returns how many instances vs keeps as the previous version
// (policy.keep_previous): 1 within the window after it lost its traffic,
// else 0; never for a singleton, whose previous instance must stop before
// another starts. Caller holds vs.mu.
func (a *Activator) previousOf(vs *versionState, now time.Time) int {
	kp := vs.policy.KeepPrevious.Std()
	if vs.routable || vs.gone || vs.policy.Singleton || kp == 0 || vs.unroutedAt.IsZero() || !now.Before(vs.unroutedAt.Add(kp)) {
		return 0
	}
	return 1
}

// topUpStandby queues the starts that bring a version with fewer than
// standby instances up to standby; each is paused as soon as it is ready
// (runStart), unless a request wants it. Not while the version's starts
// back off, or at shutdown. Caller holds vs.mu.
func (a *Activator) topUpStandby(vs *versionState, standby int, now time.Time) {
	if standby == 0 || a.closing.Load() || vs.backoff.active(now) {
		return
	}
	for n := vs.count(State.counts); n < standby; n++ {
		a.queueStart(vs, core.StartStandby)
		vs.instances[len(vs.instances)-1].standby = true
	}
}

// Scale brings the version to n instances: it queues the missing starts (each
// instance takes requests as soon as it is ready), or removes the excess:
// queued starts first, then idle instances, least recently used first, and
// then busy ones, which drain: they get no new request and stop when their
// last one ends, or after StopGrace. It returns what it did; a follower
// does nothing.
func (a *Activator) Scale(versionID int64, n int) core.ScaleResult {
	var res core.ScaleResult
	vs := a.lookup(versionID)
	if vs == nil || a.closing.Load() || !a.leading.Load() {
		return res
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.gone {
		return res
	}
	current := vs.count(State.counts)
	if current < n {
		if vs.backoff.active(a.now()) {
			res.HeldBack = true
			return res
		}
		for ; current < n; current++ {
			// The starts up to min_instances are for it; the rest are the
			// autoscaler's.
			reason := core.StartAutoscaler
			if current < a.minOf(vs, a.now()) {
				reason = core.StartMinInstances
			}
			a.queueStart(vs, reason)
			res.Queued++
		}
		return res
	}
	excess := current - n
	for i := len(vs.instances) - 1; i >= 0 && excess > 0; i-- {
		if in := vs.instances[i]; in.state == Queued {
			a.retire(in, "scaled down before it started")
			res.Dropped++
			excess--
		}
	}
	var idle, busy []*instance
	now := a.now()
	for _, in := range vs.instances {
		switch {
		case in.state != Ready && in.state != Suspect && in.state != Paused:
		case !a.busy(in, now):
			idle = append(idle, in)
		default:
			busy = append(busy, in)
		}
	}
	sortByLastRequest(idle)
	sort.Slice(busy, func(i, j int) bool { return busy[i].inflight.Load() < busy[j].inflight.Load() })
	for _, in := range idle {
		if excess == 0 {
			break
		}
		if a.remove(in, "scaled down") {
			res.Draining++
		} else {
			res.Stopped++
		}
		excess--
	}
	for _, in := range busy {
		if excess == 0 {
			break
		}
		a.drain(in, "scaled down")
		res.Draining++
		excess--
	}
	return res
}

// drain moves a busy instance to draining: it is stopped when its last
// request ends (Release) and the other replicas are done with it
// (drainedOut), or after StopGrace. Caller holds in.vs.mu.
func (a *Activator) drain(in *instance, why string) {
	a.move(in, Draining, why)
	in.drainedAt = a.now()
	vs := in.vs
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case <-time.After(a.cfg.StopGrace):
		case <-a.life.Done():
		}
		vs.mu.Lock()
		defer vs.mu.Unlock()
		if in.state == Draining {
			a.retire(in, fmt.Sprintf("scaled down; %d request(s) still in flight after the stop grace of %s", in.inflight.Load(), a.cfg.StopGrace))
		}
	}()
}

// Reconcile makes the activator's view match the runtime: instances of known
// versions are adopted (running ones are probed before they take requests),
// others removed, and instances that vanished dropped. What the runtime
// keeps for versions that are not known (runtime.VersionRemover) is
// removed.
func (a *Activator) Reconcile(ctx context.Context) error {
	began := a.now()
	list, err := a.rt.List(ctx)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(list))
	adopted, removed := 0, 0
	for _, ri := range list {
		seen[ri.ID] = true
		if a.known(ri.ID) != nil {
			continue
		}
		switch {
		case !a.leading.Load(): // a follower only mirrors what it may use
			if a.mirror(ri, false) {
				adopted++
			}
		case a.adopt(ri):
			adopted++
		default:
			removed++
		}
	}
	lost := 0
	for _, vs := range a.allVersions() {
		vs.mu.Lock()
		for _, in := range append([]*instance(nil), vs.instances...) {
			switch in.state {
			case Ready, Suspect, Draining, Paused, Spare:
				if !seen[in.id] && in.settled.Before(began) {
					a.retire(in, "the runtime no longer has it")
					lost++
				}
			}
		}
		vs.mu.Unlock()
	}
	versions := 0
	if a.vr != nil {
		ids, err := a.vr.Versions(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if a.lookup(id) == nil {
				a.removeVersion(id)
				versions++
			}
		}
	}
	if adopted+removed+lost+versions > 0 {
		a.log.Info("reconciled with the runtime", "adopted", adopted, "removed", removed, "lost", lost, "versions_removed", versions)
	}
	return nil
}

// adopt takes an instance the registry does not know into it: a running or
// paused one of a known version as an instance (running ones are probed
// first), a created one as its version's spare, anything else to be
// removed. It reports whether it adopted ri.
func (a *Activator) adopt(ri runtime.Instance) bool {
	vs := a.lookup(ri.VersionID)
	if vs == nil {
		a.orphans.mu.Lock()
		defer a.orphans.mu.Unlock()
		if a.known(ri.ID) == nil {
			a.add(a.orphans, ri.ID, Stopping, "it belongs to no known version")
		}
		return false
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	switch {
	case a.known(ri.ID) != nil: // adopted meanwhile
		return true
	case vs.gone:
		a.add(vs, ri.ID, Stopping, "its version was deleted")
		return false
	case vs.policy.Singleton && ri.State == runtime.StateCreated:
		a.add(vs, ri.ID, Stopping, "a singleton keeps no spare")
		return false
	case ri.State == runtime.StateCreated && a.pc != nil && vs.routable && !a.closing.Load() &&
		vs.first(Spare) == nil && vs.first(Creating) == nil:
		a.add(vs, ri.ID, Spare, "")
		a.log.Info("adopted spare instance", "instance", ri.ID, "service", vs.ver.Service, "version", vs.ver.Number)
		return true
	case (ri.State == runtime.StateRunning || ri.State == runtime.StatePaused) && ri.Addr != "":
		s := Starting
		if ri.State == runtime.StatePaused {
			s = Paused
		}
		in := a.add(vs, ri.ID, s, "")
		if vs.policy.Singleton && !a.trySingleton(in) {
			a.move(in, Stopping, "singleton: another instance of the service runs")
			return false
		}
		in.addr, in.proxied, in.startedAt, in.adopted = ri.Addr, ri.Proxied, ri.StartedAt, true
		in.announced = true
		a.weigh(in, vs.background) // its role may have changed while Wisp was down
		a.emit(time.Time{}, core.EventInstanceAdopted, &vs.ver, in.id, "adopted ("+string(ri.State)+"), started by an earlier run",
			"state", string(ri.State))
		if s == Starting {
			a.adoptRunning(in, ri)
		}
		a.log.Info("adopted instance", "instance", ri.ID, "service", vs.ver.Service, "version", vs.ver.Number, "state", s)
		return true
	}
	a.add(vs, ri.ID, Stopping, "not running: "+string(ri.State))
	return false
}

// Shutdown stops every instance (or, with KeepInstances, leaves them for the
// next start to adopt), cancels starts in progress, and waits for the
// background work to end. Call it after the router has drained. On a
// shared runtime it stops nothing: the other replicas keep using the
// instances, and the next leader adopts them.
func (a *Activator) Shutdown(ctx context.Context) error {
	a.closing.Store(true) // no new starts or spares
	if a.shared {
		a.leading.Store(false) // every removal below only forgets
	}
	keep := a.cfg.KeepInstances && !a.shared
	n := 0
	for _, vs := range append(a.allVersions(), a.orphans) {
		vs.mu.Lock()
		for _, in := range append([]*instance(nil), vs.instances...) {
			switch {
			case in.state == Queued || in.state == Starting:
				a.retire(in, "shutdown") // half started: never kept
			case !keep:
				a.retire(in, "shutdown")
			default:
				n++
			}
		}
		vs.mu.Unlock()
	}
	if keep && n > 0 {
		a.log.Info("keeping instances for the next start to adopt", "count", n)
	}
	a.endLife()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func sortByLastRequest(l []*instance) {
	sort.Slice(l, func(i, j int) bool { return l[i].lastRequest.Load() < l[j].lastRequest.Load() })
}
