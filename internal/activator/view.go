package activator

import (
	"sort"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Instances describes the instances of service (all services when ""),
// with a row for a version whose starts are backing off.
func (a *Activator) Instances(service string) []core.InstanceInfo {
	out := []core.InstanceInfo{}
	now := a.now()
	for _, vs := range a.versionsOf(service) {
		vs.mu.Lock()
		v := vs.ver
		for _, in := range vs.instances {
			if !in.state.visible() || in.ahead {
				continue
			}
			info := core.InstanceInfo{ID: in.id, Service: v.Service, Version: v.Number, VersionID: v.ID,
				State: string(in.state), Address: in.addr, StartedAt: in.startedAt, InFlight: in.inflight.Load()}
			if ns := in.lastRequest.Load(); ns != 0 && !in.startedAt.IsZero() {
				info.LastRequestAt = time.Unix(0, ns)
			}
			switch {
			case in.state == Suspect || in.state == Draining || in.state == Stopping:
				info.Message = in.why
			case in.withheld:
				info.Message = "the leader is removing it or found it failing: it gets no new request"
			}
			out = append(out, info)
		}
		if b := vs.backoff; b.active(now) {
			until := b.until
			out = append(out, core.InstanceInfo{Service: v.Service, Version: v.Number, VersionID: v.ID, State: core.InstanceBackoff,
				Message: b.last, RetryAt: &until})
		}
		vs.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		if out[i].Version != out[j].Version {
			return out[i].Version < out[j].Version
		}
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// versionsOf returns the versions of service, or every version for "".
func (a *Activator) versionsOf(service string) []*versionState {
	if service == "" {
		return a.allVersions()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*versionState, 0, len(a.byService[service]))
	for _, vs := range a.byService[service] {
		out = append(out, vs)
	}
	return out
}

// Load reports the live load of every version that has instances or
// requests waiting, or keeps min_instances: the others have nothing for the
// autoscaler to decide (it never scales from zero). On a leader it is the
// load of every replica: its own plus what the others reported.
func (a *Activator) Load() []core.VersionLoad {
	var out []core.VersionLoad
	now := a.now()
	for _, vs := range a.allVersions() {
		inflight, waiting := a.remote.load(vs.id, now)
		vs.mu.Lock()
		l := core.VersionLoad{VersionID: vs.id, Service: vs.ver.Service, Version: vs.ver.Number, Policy: vs.policy,
			Concurrency: int64(vs.waiters) + inflight + waiting, Requests: vs.requests.Load() + vs.remoteRequests.Load(),
			Instances: vs.count(State.counts)}
		for _, in := range vs.instances {
			l.Concurrency += in.inflight.Load()
		}
		l.Policy.Standby = a.standbyOf(vs) // what applies here (core.VersionLoad)
		// The min_instances of now, by the activator's clock: 0 without
		// traffic, else the schedule's or the plain one.
		l.Policy.MinInstances, l.Policy.MinInstancesSchedule = a.minOf(vs, now), nil
		keep := l.Policy.MinInstances > 0
		vs.mu.Unlock()
		if l.Instances > 0 || l.Concurrency > 0 || keep {
			out = append(out, l)
		}
	}
	return out
}
