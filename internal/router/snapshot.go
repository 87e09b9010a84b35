package router

import (
	"github.com/wisp-run/wisp/internal/core"
)

// Snapshot is an immutable routing table: everything a request needs to pick
// a version, computed once per admin change so requests do no such work.
//
// It is split into shards by a hash of the service name, so that a change
// of one service copies one shard's map and the array of shard pointers,
// and shares everything else with the snapshot before it (copy on write):
// applying a change costs the same with 10 services or 10,000.
type Snapshot struct {
	shards [snapshotShards]*shard // nil: no service hashes there
}

const snapshotShards = 256

type shard struct {
	services map[string]*serviceRoute
}

func shardOf(name string) int {
	// FNV-1a, 32 bits, inline: no allocation on the request path.
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return int(h % snapshotShards)
}

// lookup returns the route of service name, or nil.
func (s *Snapshot) lookup(name string) *serviceRoute {
	if sh := s.shards[shardOf(name)]; sh != nil {
		return sh.services[name]
	}
	return nil
}

// each calls fn for every service route.
func (s *Snapshot) each(fn func(*serviceRoute)) {
	for _, sh := range s.shards {
		if sh != nil {
			for _, sr := range sh.services {
				fn(sr)
			}
		}
	}
}

// with returns a copy of s in which the given routes replace (or add) the
// routes of their services and the services named in drop are gone. Only
// the shards they hash to are copied.
func (s *Snapshot) with(routes []*serviceRoute, drop []string) *Snapshot {
	next := &Snapshot{shards: s.shards}
	copied := map[int]bool{}
	edit := func(name string) map[string]*serviceRoute {
		i := shardOf(name)
		if !copied[i] {
			copied[i] = true
			m := map[string]*serviceRoute{}
			if old := s.shards[i]; old != nil {
				m = make(map[string]*serviceRoute, len(old.services)+1)
				for k, v := range old.services {
					m[k] = v
				}
			}
			next.shards[i] = &shard{services: m}
		}
		return next.shards[i].services
	}
	for _, sr := range routes {
		edit(sr.name)[sr.name] = sr
	}
	for _, name := range drop {
		delete(edit(name), name)
	}
	for i := range copied {
		if len(next.shards[i].services) == 0 {
			next.shards[i] = nil
		}
	}
	return next
}

type serviceRoute struct {
	name     string
	versions map[int]*core.Version
	tags     map[string]*core.Version
	// split lists the versions with a share above 0% with cumulative
	// percents (the last is 100); empty when the service has no traffic.
	split []share
	// rules are the traffic entry's request rules, compiled (rules.go).
	rules []rule
	// mirror is the traffic entry's mirror, compiled (mirror.go); nil
	// when off.
	mirror *mirrorRoute
	sticky bool
	// cookie is the name of the sticky cookie of this service.
	cookie string
	// metrics holds each version's metric children, looked up on the
	// version's first request (most of 10,000 services are idle, and their
	// children were most of the daemon's memory).
	metrics map[*core.Version]*metricsSlot
	// logRequests: the policy has request_logs on; reqLog is then its
	// state, set by the router (nil when it writes no request logs).
	logRequests bool
	reqLog      *requestLog
}

type share struct {
	cum int
	v   *core.Version
}

// NewSnapshot builds a snapshot from the services' states.
func NewSnapshot(states []core.ServiceState) *Snapshot {
	routes := make([]*serviceRoute, len(states))
	for i, st := range states {
		routes[i] = newRoute(st)
	}
	return (&Snapshot{}).with(routes, nil)
}

func newRoute(st core.ServiceState) *serviceRoute {
	sr := &serviceRoute{
		name:        st.Service.Name,
		versions:    make(map[int]*core.Version, len(st.Versions)),
		tags:        map[string]*core.Version{},
		cookie:      "wisp-version-" + st.Service.Name,
		logRequests: st.Service.Policy.RequestLogs,
		metrics:     make(map[*core.Version]*metricsSlot, len(st.Versions)),
	}
	for i := range st.Versions {
		v := st.Versions[i]
		sr.versions[v.Number] = &v
		sr.metrics[&v] = &metricsSlot{}
	}
	if t := st.Traffic; t != nil {
		sr.sticky = t.Sticky
		cum := 0
		for _, w := range t.Weights {
			v := sr.versions[w.Version]
			if w.Percent <= 0 || v == nil {
				continue
			}
			cum += w.Percent
			sr.split = append(sr.split, share{cum: cum, v: v})
		}
		for tag, n := range t.Tags {
			if v := sr.versions[n]; v != nil {
				sr.tags[tag] = v
			}
		}
		sr.rules = compileRules(t.Rules, sr, t.Tags)
		sr.mirror = compileMirror(t.Mirror, sr)
	}
	return sr
}

// pick returns the version for a uniform random n in [0, total).
func (sr *serviceRoute) pick(n int) *core.Version {
	for _, sh := range sr.split {
		if n < sh.cum {
			return sh.v
		}
	}
	return sr.split[len(sr.split)-1].v
}

// total is the sum of the shares (100 unless versions were deleted).
func (sr *serviceRoute) total() int {
	if len(sr.split) == 0 {
		return 0
	}
	return sr.split[len(sr.split)-1].cum
}

// inSplit reports whether v currently gets a share of the traffic.
func (sr *serviceRoute) inSplit(v *core.Version) bool {
	for _, sh := range sr.split {
		if sh.v == v {
			return true
		}
	}
	return false
}
