package core

import (
	"time"
)

// Service is a named, routable thing reached at <name>.<domain>. It owns
// versions, traffic and a scaling policy.
type Service struct {
	ID     int64         `json:"id"`
	Name   string        `json:"name"`
	Host   string        `json:"host"` // <name>.<domain>; filled in by the API
	URL    string        `json:"url"`  // where the router serves it; filled in by the API
	Policy ScalingPolicy `json:"policy"`
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// HostFor returns the host name at which the router serves service name.
func HostFor(name, domain string) string { return name + "." + domain }

// ScalingPolicy says how many instances each version of a service may run and
// when idle ones are paused and removed. Changing it never creates a version.
type ScalingPolicy struct {
	// MinInstances is kept running per version that carries traffic, even when
	// idle. 0 allows scale to zero. Default 0.
	MinInstances int `json:"min_instances"`
	// MinInstancesSchedule varies MinInstances by time window (MinWindow):
	// while windows hold, the highest of their Min applies instead of
	// MinInstances (a window may ask for fewer); outside every window,
	// MinInstances. Read when the autoscaler decides and the reaper reaps.
	// At most MaxMinWindows windows, each Min at most MaxInstances.
	MinInstancesSchedule []MinWindow `json:"min_instances_schedule"`
	// Standby is how many paused instances are kept per version that carries
	// traffic and would otherwise be at zero: an idle instance that would be
	// removed is paused instead while the version has no more than Standby,
	// and a version with none starts them and pauses each once it is ready.
	// A standby costs memory (its resident memory stays), not CPU; a request
	// thaws it in milliseconds instead of a cold start. It is paused at
	// idle_timeout when pause_after has not paused it earlier (pause_after 0
	// or at or above idle_timeout included). It counts toward MaxInstances,
	// and it is ignored where instances cannot be paused (Kubernetes). Between
	// 0 and MaxStandby, and at most MaxInstances. Default 0.
	Standby int `json:"standby"`
	// MaxInstances bounds instances per version. Default 10.
	MaxInstances int `json:"max_instances"`
	// KeepPrevious: after traffic moves away from a version (no weight, no
	// tag), one of its instances is kept, paused where the runtime can
	// pause, for this long even past IdleTimeout, and thawed as soon as
	// traffic comes back, so that a rollback meets no cold start. After
	// it the instance goes as any idle one. 0 turns it off. Between 0 and
	// 24h. Default 10m. No effect on a Singleton (its previous instance
	// must stop before the new version starts).
	KeepPrevious Duration `json:"keep_previous"`
	// Singleton: at most one instance of the service runs, across all its
	// versions, at every instant: a start waits until every other instance
	// of the service is removed (requests wait meanwhile), and
	// MaxInstances is 1 (set so when singleton is turned on without it).
	// Standby must be 0. Default false.
	Singleton bool `json:"singleton"`
	// TargetConcurrency is the number of in-flight requests per instance the
	// autoscaler aims for. Default 10.
	TargetConcurrency int `json:"target_concurrency"`
	// TargetRPS, when above 0, makes the autoscaler aim for this many
	// requests per second per instance instead of TargetConcurrency: better
	// for short requests, where concurrency stays low. Default 0 (off).
	TargetRPS int `json:"target_rps"`
	// IdleTimeout: an instance with no request for this long is stopped and
	// removed (scale to zero). At least 1s. Default 5m.
	IdleTimeout Duration `json:"idle_timeout"`
	// PauseAfter: an instance with no request for this long is paused (frozen)
	// until the next request. 0 disables pausing; a value at or above
	// IdleTimeout means the instance is removed before it would be paused.
	// Default 30s.
	PauseAfter Duration `json:"pause_after"`
	// RequestLogs writes one log entry of kind request per request the
	// router serves (docs/events.md), sampled above the daemon's
	// --request-log-rate. Default false.
	RequestLogs bool `json:"request_logs"`
	// LogMaxBytes bounds the bytes of the service's log stream that are
	// kept; the oldest entries go first. Between 1 MiB and 10 GiB. Default
	// 50 MiB.
	LogMaxBytes int64 `json:"log_max_bytes"`
	// LogMaxAge: log entries older than this are removed. Between 1m and
	// 90 days (2160h). Default 168h (7 days).
	LogMaxAge Duration `json:"log_max_age"`
	// AsyncConcurrency is how many async calls of the service are
	// dispatched at once by each replica, separately from sync
	// traffic. Between 1 and 1000. Default 10.
	AsyncConcurrency int `json:"async_concurrency"`
	// MaxAttempts is how many times an async call is attempted before it
	// is dead. Between 1 and 100. Default 5.
	MaxAttempts int `json:"max_attempts"`
	// MinBackoff is the delay before an async call's first retry; the
	// delay doubles per attempt (exponential backoff with jitter). Between
	// 10ms and 1h. Default 1s.
	MinBackoff Duration `json:"min_backoff"`
	// MaxBackoff caps the retry delay. Between 10ms and 24h, and at least
	// MinBackoff. Default 5m.
	MaxBackoff Duration `json:"max_backoff"`
	// MaxAge: an async call that has not succeeded this long after it was
	// submitted is dead. Between 1s and 168h (7 days). Default 24h.
	MaxAge Duration `json:"max_age"`
}

// Retention returns the log retention the policy asks for.
func (p ScalingPolicy) Retention() LogRetention {
	return LogRetention{MaxBytes: p.LogMaxBytes, MaxAge: p.LogMaxAge.Std()}
}

// Policy defaults and bounds, documented in docs/api.md.
const (
	DefaultMaxInstances      = 10
	DefaultTargetConcurrency = 10
	DefaultIdleTimeout       = Duration(5 * time.Minute)
	DefaultPauseAfter        = Duration(30 * time.Second)

	MaxInstancesLimit      = 1000
	MaxStandby             = 16 // paused instances hold memory: a cap keeps a typo from filling the host
	DefaultKeepPrevious    = Duration(10 * time.Minute)
	MaxKeepPrevious        = Duration(24 * time.Hour)
	MaxTargetConcurrency   = 10000
	MaxTargetRPS           = 1000000
	MinIdleTimeout         = Duration(time.Second)
	MaxPolicyDuration      = Duration(7 * 24 * time.Hour)
	maxPolicyDurationLabel = "168h"

	MinLogMaxBytes = 1 << 20
	MaxLogMaxBytes = 10 << 30
	MinLogMaxAge   = Duration(time.Minute)
	MaxLogMaxAge   = Duration(90 * 24 * time.Hour)

	DefaultAsyncConcurrency = 10
	DefaultMaxAttempts      = 5
	DefaultMinBackoff       = Duration(time.Second)
	DefaultMaxBackoff       = Duration(5 * time.Minute)
	DefaultMaxAge           = Duration(24 * time.Hour)

	MaxAsyncConcurrency = 1000
	MaxMaxAttempts      = 100
	MinBackoffLimit     = Duration(10 * time.Millisecond) // the least min_backoff and max_backoff
	MaxMinBackoff       = Duration(time.Hour)
	MaxMaxBackoff       = Duration(24 * time.Hour)
	MinMaxAge           = Duration(time.Second)
	MaxMaxAge           = Duration(7 * 24 * time.Hour)
)

// DefaultPolicy returns the policy of a service created without one.
func DefaultPolicy() ScalingPolicy {
	return ScalingPolicy{
		MaxInstances:      DefaultMaxInstances,
		TargetConcurrency: DefaultTargetConcurrency,
		IdleTimeout:       DefaultIdleTimeout,
		PauseAfter:        DefaultPauseAfter,
		LogMaxBytes:       DefaultLogMaxBytes,
		LogMaxAge:         Duration(DefaultLogMaxAge),
		AsyncConcurrency:  DefaultAsyncConcurrency,
		MaxAttempts:       DefaultMaxAttempts,
		MinBackoff:        DefaultMinBackoff,
		MaxBackoff:        DefaultMaxBackoff,
		MaxAge:            DefaultMaxAge,
		KeepPrevious:      DefaultKeepPrevious,
	}
}

// Validate checks the policy's bounds. Fields are named as in JSON.
func (p ScalingPolicy) Validate() error {
	switch {
	case p.MinInstances < 0:
		return Invalidf("policy.min_instances", "min_instances must be 0 or more, got %d", p.MinInstances)
	case p.MaxInstances < 1 || p.MaxInstances > MaxInstancesLimit:
		return Invalidf("policy.max_instances", "max_instances must be between 1 and %d, got %d", MaxInstancesLimit, p.MaxInstances)
	case p.MinInstances > p.MaxInstances:
		return Invalidf("policy.min_instances", "min_instances (%d) must not exceed max_instances (%d)", p.MinInstances, p.MaxInstances)
	case p.Standby < 0 || p.Standby > MaxStandby:
		return Invalidf("policy.standby", "standby must be between 0 and %d, got %d", MaxStandby, p.Standby)
	case p.Standby > p.MaxInstances:
		return Invalidf("policy.standby", "standby (%d) must not exceed max_instances (%d): standbys count as instances", p.Standby, p.MaxInstances)
	case p.KeepPrevious < 0 || p.KeepPrevious > MaxKeepPrevious:
		return Invalidf("policy.keep_previous", "keep_previous must be between 0 (off) and 24h, got %s", p.KeepPrevious)
	case p.Singleton && p.MaxInstances != 1:
		return Invalidf("policy.max_instances", "singleton allows one instance: max_instances must be 1, got %d (policy.singleton and policy.max_instances conflict)", p.MaxInstances)
	case p.Singleton && p.Standby != 0:
		return Invalidf("policy.standby", "singleton allows one instance: standby must be 0, got %d (policy.singleton and policy.standby conflict)", p.Standby)
	case p.TargetConcurrency < 1 || p.TargetConcurrency > MaxTargetConcurrency:
		return Invalidf("policy.target_concurrency", "target_concurrency must be between 1 and %d, got %d", MaxTargetConcurrency, p.TargetConcurrency)
	case p.TargetRPS < 0 || p.TargetRPS > MaxTargetRPS:
		return Invalidf("policy.target_rps", "target_rps must be between 0 (use target_concurrency) and %d, got %d", MaxTargetRPS, p.TargetRPS)
	case p.IdleTimeout < MinIdleTimeout || p.IdleTimeout > MaxPolicyDuration:
		return Invalidf("policy.idle_timeout", "idle_timeout must be between 1s and %s, got %s", maxPolicyDurationLabel, p.IdleTimeout)
	case p.PauseAfter < 0 || p.PauseAfter > MaxPolicyDuration:
		return Invalidf("policy.pause_after", "pause_after must be between 0 (never pause) and %s, got %s", maxPolicyDurationLabel, p.PauseAfter)
	case p.LogMaxBytes < MinLogMaxBytes || p.LogMaxBytes > MaxLogMaxBytes:
		return Invalidf("policy.log_max_bytes", "log_max_bytes must be between 1 MiB (%d) and 10 GiB (%d), got %d", int64(MinLogMaxBytes), int64(MaxLogMaxBytes), p.LogMaxBytes)
	case p.LogMaxAge < MinLogMaxAge || p.LogMaxAge > MaxLogMaxAge:
		return Invalidf("policy.log_max_age", "log_max_age must be between 1m and 2160h (90 days), got %s", p.LogMaxAge)
	case p.AsyncConcurrency < 1 || p.AsyncConcurrency > MaxAsyncConcurrency:
		return Invalidf("policy.async_concurrency", "async_concurrency must be between 1 and %d, got %d", MaxAsyncConcurrency, p.AsyncConcurrency)
	case p.MaxAttempts < 1 || p.MaxAttempts > MaxMaxAttempts:
		return Invalidf("policy.max_attempts", "max_attempts must be between 1 and %d, got %d", MaxMaxAttempts, p.MaxAttempts)
	case p.MinBackoff < MinBackoffLimit || p.MinBackoff > MaxMinBackoff:
		return Invalidf("policy.min_backoff", "min_backoff must be between 10ms and 1h, got %s", p.MinBackoff)
	case p.MaxBackoff < MinBackoffLimit || p.MaxBackoff > MaxMaxBackoff:
		return Invalidf("policy.max_backoff", "max_backoff must be between 10ms and 24h, got %s", p.MaxBackoff)
	case p.MaxBackoff < p.MinBackoff:
		return Invalidf("policy.max_backoff", "max_backoff (%s) must not be below min_backoff (%s)", p.MaxBackoff, p.MinBackoff)
	case p.MaxAge < MinMaxAge || p.MaxAge > MaxMaxAge:
		return Invalidf("policy.max_age", "max_age must be between 1s and 168h (7 days), got %s", p.MaxAge)
	}
	return validateSchedule(p)
}

// PolicyPatch changes some fields of a ScalingPolicy; nil fields stay as they are.
type PolicyPatch struct {
	MinInstances *int `json:"min_instances,omitempty"`
	MaxInstances *int `json:"max_instances,omitempty"`
	Standby      *int `json:"standby,omitempty"`
	// MinInstancesSchedule replaces the schedule; an empty list removes it.
	MinInstancesSchedule *[]MinWindow `json:"min_instances_schedule,omitempty"`
	KeepPrevious         *Duration    `json:"keep_previous,omitempty"`
	Singleton            *bool        `json:"singleton,omitempty"`
	TargetConcurrency    *int         `json:"target_concurrency,omitempty"`
	TargetRPS            *int         `json:"target_rps,omitempty"`
	IdleTimeout          *Duration    `json:"idle_timeout,omitempty"`
	PauseAfter           *Duration    `json:"pause_after,omitempty"`
	RequestLogs          *bool        `json:"request_logs,omitempty"`
	LogMaxBytes          *int64       `json:"log_max_bytes,omitempty"`
	LogMaxAge            *Duration    `json:"log_max_age,omitempty"`
	AsyncConcurrency     *int         `json:"async_concurrency,omitempty"`
	MaxAttempts          *int         `json:"max_attempts,omitempty"`
	MinBackoff           *Duration    `json:"min_backoff,omitempty"`
	MaxBackoff           *Duration    `json:"max_backoff,omitempty"`
	MaxAge               *Duration    `json:"max_age,omitempty"`
}

// Apply returns p with the patch's fields set. It does not validate.
func (pp PolicyPatch) Apply(p ScalingPolicy) ScalingPolicy {
	if pp.MinInstances != nil {
		p.MinInstances = *pp.MinInstances
	}
	if pp.MaxInstances != nil {
		p.MaxInstances = *pp.MaxInstances
	}
	if pp.Standby != nil {
		p.Standby = *pp.Standby
	}
	if pp.MinInstancesSchedule != nil {
		p.MinInstancesSchedule = append([]MinWindow(nil), *pp.MinInstancesSchedule...)
		if len(p.MinInstancesSchedule) == 0 {
			p.MinInstancesSchedule = nil
		}
	}
	if pp.KeepPrevious != nil {
		p.KeepPrevious = *pp.KeepPrevious
	}
	if pp.Singleton != nil {
		p.Singleton = *pp.Singleton
		if p.Singleton && pp.MaxInstances == nil {
			// Turning singleton on implies one instance; an explicit
			// max_instances above 1 with it is refused by Validate.
			p.MaxInstances = 1
		}
	}
	if pp.TargetConcurrency != nil {
		p.TargetConcurrency = *pp.TargetConcurrency
	}
	if pp.TargetRPS != nil {
		p.TargetRPS = *pp.TargetRPS
	}
	if pp.IdleTimeout != nil {
		p.IdleTimeout = *pp.IdleTimeout
	}
	if pp.PauseAfter != nil {
		p.PauseAfter = *pp.PauseAfter
	}
	if pp.RequestLogs != nil {
		p.RequestLogs = *pp.RequestLogs
	}
	if pp.LogMaxBytes != nil {
		p.LogMaxBytes = *pp.LogMaxBytes
	}
	if pp.LogMaxAge != nil {
		p.LogMaxAge = *pp.LogMaxAge
	}
	if pp.AsyncConcurrency != nil {
		p.AsyncConcurrency = *pp.AsyncConcurrency
	}
	if pp.MaxAttempts != nil {
		p.MaxAttempts = *pp.MaxAttempts
	}
	if pp.MinBackoff != nil {
		p.MinBackoff = *pp.MinBackoff
	}
	if pp.MaxBackoff != nil {
		p.MaxBackoff = *pp.MaxBackoff
	}
	if pp.MaxAge != nil {
		p.MaxAge = *pp.MaxAge
	}
	return p
}

// IsEmpty reports whether the patch changes nothing.
func (pp PolicyPatch) IsEmpty() bool {
	return pp == PolicyPatch{}
}
