package core

import "time"

// ServiceState is everything the data plane needs to know about one service:
// the service with its policy, its versions and its current traffic (nil when
// it has none yet).
type ServiceState struct {
	Service  Service
	Versions []Version
	Traffic  *TrafficEntry
}

// Instance states as Wisp reports them (docs/runtime.md says what each
// means).
const (
	InstanceQueued   = "queued"   // a scale-up start waiting for a start slot
	InstanceStarting = "starting" // being started, or adopted and being probed
	InstanceReady    = "ready"    // takes requests
	InstanceSuspect  = "suspect"  // failed a request; gets none until a probe passes
	InstanceDraining = "draining" // chosen to go: gets no new requests, stops when idle
	InstancePausing  = "pausing"  // being frozen
	InstancePaused   = "paused"   // frozen; the next request thaws it
	InstanceWaking   = "waking"   // being thawed
	InstanceStopping = "stopping" // being stopped and removed
	// InstanceBackoff is not an instance: it stands for a version whose
	// starts keep failing and are held back until RetryAt.
	InstanceBackoff = "backoff"
)

// InstanceInfo describes one running instance of a version.
type InstanceInfo struct {
	ID            string    `json:"id"`
	Service       string    `json:"service"`
	Version       int       `json:"version"`
	VersionID     int64     `json:"version_id"`
	State         string    `json:"state"`
	Address       string    `json:"address"`
	StartedAt     time.Time `json:"started_at"`
	LastRequestAt time.Time `json:"last_request_at"`
	InFlight      int64     `json:"in_flight"`
	// Message says why the instance is in its state, when that is not
	// plain (suspect, draining, backoff: the last failure).
	Message string `json:"message,omitempty"`
	// RetryAt is when a version in backoff may start again.
	RetryAt *time.Time `json:"retry_at,omitempty"`
}

// ScaleResult is what a request to change a version's instance count did,
// as opposed to what was asked.
type ScaleResult struct {
	// Queued starts added; Dropped queued starts removed before they began.
	Queued, Dropped int
	// Stopped idle instances; Draining busy ones that stop when their
	// requests end (or at the stop grace).
	Stopped, Draining int
	// HeldBack is true when starts were not added because the version's
	// starts are backing off after failures.
	HeldBack bool
}

// VersionLoad is the live load of one version, as the autoscaler samples it.
type VersionLoad struct {
	VersionID int64
	Service   string
	Version   int
	// Policy is the service's policy, except that Standby is the number of
	// standbys that apply to this version: 0 when it carries no traffic or
	// its instances cannot be paused, and MinInstances is the one that
	// applies now (0 without traffic; min_instances_schedule resolved, the
	// schedule itself left out).
	Policy ScalingPolicy
	// Concurrency is requests in flight at instances plus requests waiting
	// for one.
	Concurrency int64
	// Requests counts every request handed an instance, since the start.
	Requests uint64
	// Instances counts instances, starting ones included.
	Instances int
}
