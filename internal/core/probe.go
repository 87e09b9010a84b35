package core

import (
	"strings"
	"time"
)

// Probe is a liveness check of a version's instances, like a Kubernetes
// liveness probe: every Period, Wisp GETs Path (which must answer 2xx or
// 3xx within Timeout) or, without a Path, connects to the port; after
// FailureThreshold failures in a row the instance is replaced. A TCP check
// only shows that something accepts connections (the kernel does that
// even for a frozen process); an HTTP path shows the process answers.
type Probe struct {
	Path             string   `json:"path,omitempty"`
	Period           Duration `json:"period,omitempty"`
	Timeout          Duration `json:"timeout,omitempty"`
	FailureThreshold int      `json:"failure_threshold,omitempty"`
}

// Probe defaults and bounds.
const (
	DefaultProbePeriod    = Duration(10 * time.Second)
	DefaultProbeTimeout   = Duration(time.Second)
	DefaultProbeThreshold = 3
	maxProbeThreshold     = 100
)

// WithDefaults fills the fields that have defaults.
func (p Probe) WithDefaults() Probe {
	if p.Period == 0 {
		p.Period = DefaultProbePeriod
	}
	if p.Timeout == 0 {
		p.Timeout = min(DefaultProbeTimeout, p.Period)
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultProbeThreshold
	}
	return p
}

// Validate checks a probe after WithDefaults; field is its JSON name.
func (p Probe) Validate(field string) error {
	switch {
	case p.Period < Duration(time.Second) || p.Period > Duration(time.Hour):
		return Invalidf(field+".period", "%s.period must be between 1s and 1h, got %s", field, p.Period)
	case p.Timeout < Duration(10*time.Millisecond) || p.Timeout > p.Period:
		return Invalidf(field+".timeout", "%s.timeout must be between 10ms and the period (%s), got %s", field, p.Period, p.Timeout)
	case p.FailureThreshold < 1 || p.FailureThreshold > maxProbeThreshold:
		return Invalidf(field+".failure_threshold", "%s.failure_threshold must be between 1 and %d, got %d", field, maxProbeThreshold, p.FailureThreshold)
	}
	if path := p.Path; path != "" {
		if len(path) > maxReadinessPath || path[0] != '/' || strings.ContainsFunc(path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return Invalidf(field+".path", "%s.path %q must be an absolute URL path like \"/healthz\", without spaces", field, truncate(path, 80))
		}
	}
	return nil
}
