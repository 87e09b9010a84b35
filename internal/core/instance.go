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

// Instance states as Wisp reports them.
const (
	InstanceStarting = "starting"
	InstanceReady    = "ready"
	InstancePaused   = "paused"
	InstanceWaking   = "waking"
	InstanceStopping = "stopping"
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
}

// VersionLoad is the live load of one version, as the autoscaler samples it.
type VersionLoad struct {
	VersionID int64
	Service   string
	Version   int
	Policy    ScalingPolicy
	// Concurrency is requests in flight at instances plus requests waiting
	// for one.
	Concurrency int64
	// Requests counts every request handed an instance, since the start.
	Requests uint64
	// Instances counts instances, starting ones included.
	Instances int
}
