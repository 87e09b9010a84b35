package activator

import (
	"context"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// The activator learns which versions exist, their policies and whether
// they get traffic from the store's state, through the daemon: Apply for
// one service that changed, Remove for one that was deleted, Sync for all
// of them (at start-up and as a periodic safety net). Each costs time in
// proportion to what it is given, not to how many services exist.

// Apply records the current state of one service: its versions (new ones
// become known, ones no longer listed are deleted and their instances
// removed), its policy and its traffic.
func (a *Activator) Apply(s core.ServiceState) {
	a.mu.Lock()
	wakes := a.applyLocked(s, nil)
	a.mu.Unlock()
	a.awaitWakes(wakes)
}

// awaitWakes waits, a bounded time, for the thaws of kept previous
// instances whose version got its traffic back (applyLocked): the daemon
// applies the activator before the router, so a rollback's first request
// finds the instance ready, not waking. No lock held.
func (a *Activator) awaitWakes(wakes []<-chan struct{}) {
	if len(wakes) == 0 {
		return
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for _, w := range wakes {
		select {
		case <-w:
		case <-t.C:
			return
		}
	}
}

// Remove forgets a deleted service and removes its instances.
func (a *Activator) Remove(service string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, vs := range a.byService[service] {
		a.forget(vs)
	}
	delete(a.byService, service)
}

// Sync records the state of every service; services not listed are
// deleted.
func (a *Activator) Sync(states []core.ServiceState) {
	a.mu.Lock()
	var wakes []<-chan struct{}
	defer func() { a.mu.Unlock(); a.awaitWakes(wakes) }()
	listed := make(map[string]bool, len(states))
	for _, s := range states {
		listed[s.Service.Name] = true
		wakes = a.applyLocked(s, wakes)
	}
	for name, versions := range a.byService {
		if !listed[name] {
			for _, vs := range versions {
				a.forget(vs)
			}
			delete(a.byService, name)
		}
	}
}

// applyLocked: caller holds a.mu. It returns wakes with the thaws it began
// of kept previous instances (policy.keep_previous) appended.
func (a *Activator) applyLocked(s core.ServiceState, wakes []<-chan struct{}) []<-chan struct{} {
	name := s.Service.Name
	old := a.byService[name]
	next := make(map[int64]*versionState, len(s.Versions))
	routable := routableVersions(s)
	for i := range s.Versions {
		v := s.Versions[i]
		vs := old[v.ID]
		if vs == nil {
			vs = &versionState{id: v.ID, ver: v}
			a.versions.Store(v.ID, vs)
		}
		next[v.ID] = vs
		vs.mu.Lock()
		vs.ver = v // immutable in the store; kept as given
		vs.policy = s.Service.Policy
		was := vs.routable
		vs.routable = routable[v.Number]
		if bg := mirrorOnly(s, v.Number); bg != vs.background {
			vs.background = bg
			a.reweigh(vs)
		}
		switch {
		case was && !vs.routable:
			vs.unroutedAt = a.now()
		case !was && vs.routable && !vs.unroutedAt.IsZero():
			vs.unroutedAt = time.Time{}
			// Traffic came back (a rollback): thaw the kept instance now,
			// before the router sends it requests.
			if in := vs.first(Paused); in != nil && vs.first(Ready) == nil && a.leading.Load() && !a.closing.Load() {
				wakes = append(wakes, a.beginWake(in))
			}
		}
		if vs.policy.Standby > 0 && (a.pauser == nil || a.shared) && !vs.standbyNoted {
			vs.standbyNoted = true
			a.log.Info("policy.standby is ignored: the runtime cannot pause instances, or several replicas share them",
				"service", v.Service, "version", v.Number, "standby", vs.policy.Standby)
		}
		if !vs.routable {
			for _, in := range append([]*instance(nil), vs.instances...) {
				if in.state == Spare || in.state == Creating {
					a.retire(in, "its version has no traffic")
				}
			}
		}
		vs.broadcast()
		vs.mu.Unlock()
	}
	for id, vs := range old {
		if next[id] == nil {
			a.forget(vs)
		}
	}
	a.byService[name] = next
	return wakes
}

// forget deletes a version: requests for it get "deleted", and its
// instances are removed. Caller holds a.mu.
func (a *Activator) forget(vs *versionState) {
	a.versions.Delete(vs.id)
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.gone = true
	for _, in := range append([]*instance(nil), vs.instances...) {
		a.retire(in, "its version was deleted")
	}
	a.metrics.forget(&vs.ver)
	vs.broadcast()
	a.removeVersion(vs.id)
}

// removeVersion removes, in the background, what the runtime keeps for a
// deleted version besides its instances (a Deployment and a Service on
// Kubernetes).
func (a *Activator) removeVersion(id int64) {
	if a.vr == nil {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		// Past shutdown: what a deleted version leaves would stay.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.life), 30*time.Second)
		defer cancel()
		if err := a.vr.RemoveVersion(ctx, id); err != nil {
			a.log.Warn("could not remove what the runtime keeps for a deleted version; the next re-list tries again", "version_id", id, "err", err)
		}
	}()
}

// routableVersions returns the numbers of the versions that get a share of
// s's traffic or carry a tag.
func routableVersions(s core.ServiceState) map[int]bool {
	if s.Traffic == nil {
		return map[int]bool{}
	}
	return s.Traffic.Routable()
}
