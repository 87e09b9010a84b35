package router

import (
	"github.com/wisp-run/wisp/internal/core"
)

// Snapshot is an immutable routing table: everything a request needs to pick
// a version, computed once per admin change so requests do no such work.
type Snapshot struct {
	services map[string]*serviceRoute
}

type serviceRoute struct {
	name     string
	policy   core.ScalingPolicy
	versions map[int]*core.Version
	tags     map[string]*core.Version
	// split lists the versions with a share above 0% with cumulative
	// percents (the last is 100); empty when the service has no traffic.
	split  []share
	sticky bool
	// cookie is the name of the sticky cookie of this service.
	cookie string
	// metrics holds each version's metric children (filled by Swap).
	metrics map[*core.Version]*versionMetrics
}

type share struct {
	cum int
	v   *core.Version
}

// NewSnapshot builds a snapshot from the services' states.
func NewSnapshot(states []core.ServiceState) *Snapshot {
	s := &Snapshot{services: make(map[string]*serviceRoute, len(states))}
	for _, st := range states {
		sr := &serviceRoute{
			name:     st.Service.Name,
			policy:   st.Service.Policy,
			versions: make(map[int]*core.Version, len(st.Versions)),
			tags:     map[string]*core.Version{},
			cookie:   "wisp-version-" + st.Service.Name,
			metrics:  map[*core.Version]*versionMetrics{},
		}
		for i := range st.Versions {
			v := st.Versions[i]
			sr.versions[v.Number] = &v
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
		}
		s.services[sr.name] = sr
	}
	return s
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
