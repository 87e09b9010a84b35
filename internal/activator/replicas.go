package activator

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// Several replicas. Over a runtime whose instances every replica sees
// (runtime.Shared: a cluster), one replica leads and the others follow:
//
//   - the leader behaves as a lone activator does: it starts, scales,
//     reaps, replaces and removes instances, and adopts, when its term
//     begins, every instance the runtime lists (Lead);
//   - a follower never asks the runtime to start, stop, pause or thaw
//     anything. It mirrors the instances the leader manages (the runtime's
//     ready events, the periodic re-list, and the leader's replies) and
//     hands them to its router with the same limits; a request that finds
//     nothing ready waits, and the follower tells the leader at once
//     (Demand, Report);
//   - the leader takes a follower's report (ReceiveLoad) as load of its
//     own: waiting requests make it start a version's first instance, once
//     whoever asks; in-flight requests count for the autoscaler, the
//     reaper and draining; its reply tells the follower which instances to
//     stop using, which versions back off, and which are ready.
//
// Over a runtime that is not shared, an activator always leads and none of
// this happens.

// reportRecent is how long an instance or a version that was handed a
// request stays in a follower's reports after it, so that a report lost in
// transit costs nothing.
const reportRecent = 10 * time.Second

// Shared reports whether the runtime's instances are shared by replicas.
func (a *Activator) Shared() bool { return a.shared }

// Leading reports whether this activator manages the instances: always
// over a runtime that is not shared; between Lead and Follow over one that
// is.
func (a *Activator) Leading() bool { return a.leading.Load() }

// Lead makes this activator the one that manages the instances, for a term
// of the election (package leader): it forgets what the followers reported
// to an earlier leader, counts every instance as just used (the reports of
// the other replicas are a second away), and adopts every instance the
// runtime lists that it does not know, the ones an earlier leader started.
// It does nothing over a runtime that is not shared.
func (a *Activator) Lead(ctx context.Context) error {
	if !a.shared {
		return nil
	}
	a.remote.reset()
	a.leading.Store(true)
	now := a.now().UnixNano()
	for _, vs := range a.allVersions() {
		vs.mu.Lock()
		for _, in := range vs.instances {
			in.withheld = false // this replica decides now
			atLeast(&in.lastRequest, now)
			if !in.announced && in.state.visible() && in.state != Stopping {
				// An earlier leader started it: this one reports on it now.
				in.announced = true
				a.emit(time.Time{}, core.EventInstanceAdopted, &vs.ver, in.id, "adopted from an earlier leader", "state", string(in.state))
			}
		}
		vs.broadcast() // waiting requests may now start what they wait for
		vs.mu.Unlock()
	}
	a.holdSingletons()
	a.log.Info("leading: this replica starts, scales and removes instances now")
	return a.Reconcile(ctx)
}

// holdSingletons gives each singleton service's token to the instance
// this replica knew as a follower (an earlier leader started it, and
// adopt, which takes the token, never saw it): the first start of another
// version then waits for its removal. A second one, which a single leader
// never makes, is stopped; one being stopped holds the token only if
// nothing else does, until it is gone.
func (a *Activator) holdSingletons() {
	for _, stopping := range []bool{false, true} {
		for _, vs := range a.allVersions() {
			vs.mu.Lock()
			if vs.policy.Singleton {
				for _, in := range append([]*instance(nil), vs.instances...) {
					if !in.state.visible() || (in.state == Stopping) != stopping {
						continue
					}
					if !a.trySingleton(in) && !stopping {
						a.move(in, Stopping, "singleton: another instance of the service runs")
					}
				}
			}
			vs.mu.Unlock()
		}
	}
}

// Follow ends a term: the activator keeps its instances, and the loops of
// the leader (reaper, liveness, Scale) stop acting; starts already asked of
// the runtime finish, and the next leader adopts what they made. Scale-ups
// that had not begun are dropped. It does nothing over a runtime that is
// not shared.
func (a *Activator) Follow() {
	if !a.shared || !a.leading.Swap(false) {
		return
	}
	for _, vs := range a.allVersions() {
		vs.mu.Lock()
		for _, in := range append([]*instance(nil), vs.instances...) {
			if in.state == Queued {
				a.retire(in, "this replica stopped leading")
			}
		}
		vs.broadcast()
		vs.mu.Unlock()
	}
	a.remote.reset()
	a.log.Info("following: another replica manages the instances")
}

// Demand receives a value when, on a follower, a request starts waiting
// for a version with no ready instance: the leader should hear of it at
// once rather than at the next periodic report.
func (a *Activator) Demand() <-chan struct{} { return a.demand }

// await is provide on a follower: it starts and thaws nothing, and tells
// the leader through Demand when nothing is ready; the request then waits
// for an instance to be mirrored. A version whose starts back off on the
// leader (as its replies say) answers 503 at once. Caller holds vs.mu.
func (a *Activator) await(vs *versionState) (cold bool, err error) {
	if now := a.now(); vs.backoff.active(now) {
		return false, a.backoffErr(vs, now)
	}
	for _, in := range vs.instances {
		if in.state.serves() && !in.withheld {
			return false, nil // busy: the autoscaler hears of it in the next report
		}
	}
	select {
	case a.demand <- struct{}{}:
	default: // a report is due already
	}
	return true, nil
}

// Report is this replica's load for the leader: the versions and the
// instances with requests in flight or waiting, or handed one in the last
// reportRecent.
func (a *Activator) Report(replica string) core.LoadReport {
	now := a.now()
	recent := now.Add(-reportRecent).UnixNano()
	r := core.LoadReport{Replica: replica, Versions: []core.ReportedVersion{}, Instances: []core.ReportedInstance{}}
	for _, vs := range a.allVersions() {
		vs.mu.Lock()
		v := core.ReportedVersion{VersionID: vs.id, Waiting: int64(vs.waiters), Requests: vs.requests.Load()}
		active := vs.waiters > 0
		for _, in := range vs.instances {
			n, last := in.inflight.Load(), in.lastRequest.Load()
			v.InFlight += n
			if n > 0 || last >= recent {
				r.Instances = append(r.Instances, core.ReportedInstance{ID: in.id, InFlight: n,
					IdleMS: max(0, now.UnixNano()-last) / int64(time.Millisecond)})
				active = true
			}
		}
		vs.mu.Unlock()
		if active {
			r.Versions = append(r.Versions, v)
		}
	}
	return r
}

// ApplyReply takes in what the leader answered to a report: instances to
// stop using (withheld) or to use again, the versions that back off, and
// the ready instances of the versions requests wait for. A leader ignores
// it.
func (a *Activator) ApplyReply(r core.LoadReply) {
	if a.leading.Load() {
		return
	}
	now := a.now()
	withheld := make(map[string]bool, len(r.Withheld))
	for _, id := range r.Withheld {
		withheld[id] = true
	}
	backoffs := make(map[int64]core.VersionBackoff, len(r.Backoffs))
	for _, b := range r.Backoffs {
		backoffs[b.VersionID] = b
	}
	for _, vs := range a.allVersions() {
		vs.mu.Lock()
		changed := false
		for _, in := range vs.instances {
			if w := withheld[in.id]; w != in.withheld {
				in.withheld, changed = w, true
			}
		}
		if b, ok := backoffs[vs.id]; ok {
			vs.backoff = backoff{failures: b.Failures, last: b.LastFailure,
				until: now.Add(time.Duration(b.RetryInMS) * time.Millisecond)}
			changed = true
		} else if vs.backoff != (backoff{}) {
			vs.backoff, changed = backoff{}, true
		}
		if changed {
			vs.broadcast()
		}
		vs.mu.Unlock()
	}
	for _, ri := range r.Ready {
		a.mirror(runtime.Instance{ID: ri.ID, VersionID: ri.VersionID, Addr: ri.Addr, Proxied: ri.Proxied,
			State: runtime.StateRunning}, true)
	}
}

// ReceiveLoad records another replica's report and answers what that
// replica must know (see core.LoadReply). Waiting requests are treated as
// local ones: with nothing that runs or will soon, the version's first
// instance starts, once, however many replicas ask. An error wrapping
// core.ErrConflict when this replica does not lead.
func (a *Activator) ReceiveLoad(r core.LoadReport) (core.LoadReply, error) {
	if !a.leading.Load() || !a.shared {
		return core.LoadReply{}, core.Conflictf("this replica does not lead; the leader is the holder of the lease")
	}
	now := a.now()
	reply := core.LoadReply{Withheld: []string{}, Backoffs: []core.VersionBackoff{}, Ready: []core.ReadyInstance{}}
	known := make(map[int64]*versionState, len(r.Versions))
	for _, v := range r.Versions {
		if vs := a.lookup(v.VersionID); vs != nil {
			known[v.VersionID] = vs
		} else {
			reply.IgnoredVersions = append(reply.IgnoredVersions, v.VersionID)
		}
	}
	for id, n := range a.remote.record(r, now, func(id int64) bool { return known[id] != nil }) {
		known[id].remoteRequests.Add(n)
	}
	for _, ri := range r.Instances {
		if in := a.known(ri.ID); in != nil {
			atLeast(&in.lastRequest, now.Add(-time.Duration(ri.IdleMS)*time.Millisecond).UnixNano())
		}
	}
	for _, v := range r.Versions {
		vs := known[v.VersionID]
		if vs == nil || v.Waiting == 0 {
			continue
		}
		vs.mu.Lock()
		if !vs.gone && !a.closing.Load() {
			_, _ = a.provide(vs) // a backoff is in the reply
			for _, in := range vs.instances {
				if in.state == Ready {
					reply.Ready = append(reply.Ready, core.ReadyInstance{ID: in.id, VersionID: vs.id, Addr: in.addr, Proxied: in.proxied})
				}
			}
		}
		vs.mu.Unlock()
	}
	for _, vs := range a.allVersions() {
		vs.mu.Lock()
		for _, in := range append([]*instance(nil), vs.instances...) {
			switch in.state {
			case Draining:
				if in.inflight.Load() == 0 && a.drainedOut(in) {
					a.retire(in, in.why)
				}
				reply.Withheld = append(reply.Withheld, in.id)
			case Suspect, Pausing, Paused, Waking, Stopping:
				reply.Withheld = append(reply.Withheld, in.id)
			}
		}
		if b := vs.backoff; b.active(now) {
			reply.Backoffs = append(reply.Backoffs, core.VersionBackoff{VersionID: vs.id, Failures: b.failures,
				LastFailure: b.last, RetryInMS: b.until.Sub(now).Milliseconds()})
		}
		vs.mu.Unlock()
	}
	return reply, nil
}

// mirror adds, on a follower, an instance the leader manages: one the
// runtime or the leader reported ready takes requests at once; one found
// running by a re-list is probed first (it may still be starting). It
// reports whether the instance is in the registry now.
func (a *Activator) mirror(ri runtime.Instance, ready bool) bool {
	vs := a.lookup(ri.VersionID)
	if vs == nil || a.leading.Load() {
		return false
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if in := a.known(ri.ID); in != nil {
		if ready {
			a.promote(in, ri)
		}
		return true
	}
	switch {
	case vs.gone || a.closing.Load():
		return false
	case ri.State == runtime.StatePaused && ri.Addr != "":
		in := a.add(vs, ri.ID, Paused, "")
		in.addr, in.proxied, in.startedAt, in.adopted = ri.Addr, ri.Proxied, ri.StartedAt, true
		return true
	case ri.State != runtime.StateRunning || ri.Addr == "":
		return false
	}
	in := a.add(vs, ri.ID, Starting, "")
	in.addr, in.proxied, in.startedAt, in.adopted = ri.Addr, ri.Proxied, ri.StartedAt, true
	if ready {
		a.move(in, Ready, "")
		a.log.Debug("mirrored a ready instance", "instance", in.id, "service", vs.ver.Service, "version", vs.ver.Number)
	} else {
		a.adoptRunning(in, ri)
	}
	return true
}

// promote marks a mirrored instance that was being probed ready, because
// the runtime or the leader says it is. Caller holds in.vs.mu.
func (a *Activator) promote(in *instance, ri runtime.Instance) {
	if in.state != Starting || !in.adopted {
		return
	}
	if ri.Addr != "" {
		in.addr, in.proxied = ri.Addr, ri.Proxied
	}
	if in.cancel != nil {
		in.cancel() // the probe; it finds the instance settled
		in.cancel = nil
	}
	a.move(in, Ready, "")
}

// readyElsewhere handles the ready event of an instance this replica does
// not know: another replica started it. A follower mirrors it; a leader
// adopts it (probed) if its version is known, and leaves the rest to the
// re-list, whose rules decide what an unknown instance is.
func (a *Activator) readyElsewhere(e runtime.Event) {
	ri := e.Instance
	ri.ID = e.InstanceID
	if ri.State == "" {
		ri.State = runtime.StateRunning
	}
	if ri.Addr == "" || ri.VersionID == 0 {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			ctx, cancel := context.WithTimeout(a.life, 5*time.Second)
			got, err := a.rt.Inspect(ctx, e.InstanceID)
			cancel()
			if err == nil && got.Addr != "" && got.VersionID != 0 {
				a.readyElsewhere(runtime.Event{Kind: e.Kind, InstanceID: e.InstanceID, Instance: got})
			}
		}()
		return
	}
	if !a.leading.Load() {
		a.mirror(ri, true)
		return
	}
	if a.lookup(ri.VersionID) != nil {
		a.adopt(ri)
	}
}

// busy reports whether in has requests in flight here or, by their latest
// reports, on other replicas.
func (a *Activator) busy(in *instance, now time.Time) bool {
	return in.inflight.Load() > 0 || a.remote.inflight(in.id, now) > 0
}

// remove takes an idle instance out of service: at once, unless other
// replicas may be handing it requests; then it drains first, so they learn
// of it before it stops (drainedOut). It reports whether it drains. Caller
// holds in.vs.mu.
func (a *Activator) remove(in *instance, why string) (draining bool) {
	if (in.state == Ready || in.state == Suspect) && a.remote.live(a.now()) {
		a.drain(in, why)
		return true
	}
	a.retire(in, why)
	return false
}

// drainedOut reports whether the other replicas are done with a draining
// instance: each replica that reports has applied a reply sent after the
// drain began (so it hands the instance nothing new) and reported nothing
// in flight on it since. With no other replica it holds at once. Caller
// holds in.vs.mu.
func (a *Activator) drainedOut(in *instance) bool {
	return a.remote.drained(in.id, in.drainedAt, a.now())
}

// atLeast raises v to n, if it is lower.
func atLeast(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if cur >= n || v.CompareAndSwap(cur, n) {
			return
		}
	}
}

// remotes is, on a leader, the latest report of every other replica. A
// report older than ttl no longer counts: that replica is gone, or cut off.
type remotes struct {
	ttl time.Duration

	mu sync.Mutex
	by map[string]*replicaLoad
}

type replicaLoad struct {
	received time.Time // when its latest report came
	// replied is when the reply to its latest report was made; told is
	// when the reply it had applied before sending its latest report was.
	replied, told time.Time
	versions      map[int64]core.ReportedVersion
	instances     map[string]int64 // in flight, by instance
	// requests is the cumulative request count it last reported, by
	// version, from which the leader takes differences.
	requests map[int64]uint64
}

func newRemotes(ttl time.Duration) *remotes {
	return &remotes{ttl: ttl, by: map[string]*replicaLoad{}}
}

func (m *remotes) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.by = map[string]*replicaLoad{}
}

// record keeps r as its replica's latest report, and returns, by version
// for which known holds, the requests it counted since its previous one.
func (m *remotes) record(r core.LoadReport, now time.Time, known func(int64) bool) map[int64]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, l := range m.by { // forget replicas long gone
		if now.Sub(l.received) > 10*m.ttl {
			delete(m.by, id)
		}
	}
	l := m.by[r.Replica]
	if l == nil || now.Sub(l.received) > m.ttl {
		// New, or back after a gap: its earlier replies may not have
		// reached it.
		prev := map[int64]uint64{}
		if l != nil {
			prev = l.requests
		}
		l = &replicaLoad{requests: prev}
		m.by[r.Replica] = l
	}
	l.received, l.told, l.replied = now, l.replied, now
	l.versions = make(map[int64]core.ReportedVersion, len(r.Versions))
	l.instances = make(map[string]int64, len(r.Instances))
	deltas := map[int64]uint64{}
	for _, v := range r.Versions {
		if !known(v.VersionID) {
			continue
		}
		l.versions[v.VersionID] = v
		prev, seen := l.requests[v.VersionID]
		switch {
		case !seen: // the first count is where differences start
		case v.Requests >= prev:
			deltas[v.VersionID] = v.Requests - prev
		default: // the replica restarted
			deltas[v.VersionID] = v.Requests
		}
		l.requests[v.VersionID] = v.Requests
	}
	for _, in := range r.Instances {
		if in.InFlight > 0 {
			l.instances[in.ID] = in.InFlight
		}
	}
	return deltas
}

// each calls f for every replica whose report still counts. Caller holds
// m.mu.
func (m *remotes) each(now time.Time, f func(*replicaLoad)) {
	for _, l := range m.by {
		if now.Sub(l.received) <= m.ttl {
			f(l)
		}
	}
}

// live reports whether any other replica's report counts.
func (m *remotes) live(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	found := false
	m.each(now, func(*replicaLoad) { found = true })
	return found
}

// load sums the other replicas' in-flight and waiting requests of version
// id.
func (m *remotes) load(id int64, now time.Time) (inflight, waiting int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.each(now, func(l *replicaLoad) {
		v := l.versions[id]
		inflight += v.InFlight
		waiting += v.Waiting
	})
	return inflight, waiting
}

// waiting sums the other replicas' requests waiting for version id.
func (m *remotes) waiting(id int64, now time.Time) int64 {
	_, w := m.load(id, now)
	return w
}

// inflight sums the other replicas' requests in flight at instance id.
func (m *remotes) inflight(id string, now time.Time) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	m.each(now, func(l *replicaLoad) { n += l.instances[id] })
	return n
}

// drained reports whether every replica that counts has been told of a
// drain that began at since and has nothing in flight at instance id.
func (m *remotes) drained(id string, since, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok := true
	m.each(now, func(l *replicaLoad) {
		if !l.told.After(since) || l.instances[id] > 0 {
			ok = false
		}
	})
	return ok
}
