package core

import (
	"fmt"
	"strings"
)

// Several replicas on a shared runtime (docs/architecture.md, "Several
// replicas"): each replica that does not lead reports its load to the one
// that does, every second and at once when a request waits for a version
// with no ready instance; the leader answers what the replica must know of
// the instances it alone manages. The times are durations, not instants, so
// the replicas' clocks need not agree.

// LoadReport is one replica's load, as it sends it to the leader.
type LoadReport struct {
	// Replica is the sender's identity (its --replica-id).
	Replica string `json:"replica"`
	// Versions lists the versions with requests in flight or waiting, or
	// handed an instance lately.
	Versions []ReportedVersion `json:"versions"`
	// Instances lists the instances with requests in flight, or handed one
	// lately.
	Instances []ReportedInstance `json:"instances"`
	// Rollouts carries this replica's cumulative request counts of the
	// versions of the services the leader's rollouts judge (LoadReply's
	// Rollouts), so that the leader judges on every replica's requests.
	Rollouts []RolloutCounts `json:"rollouts,omitempty"`
	// Mirrors carries this replica's mirror state of every service whose
	// route has a mirror setting, so that the leader's report covers
	// every replica.
	Mirrors []MirrorState `json:"mirrors,omitempty"`
}

// RolloutCounts is one version's cumulative requests on one replica, since
// that replica began counting its service: requests, 5xx answers, and the
// latencies as counts per bucket of the log-linear histogram of
// package latency (by bucket index; empty buckets left out).
type RolloutCounts struct {
	Service  string        `json:"service"`
	Version  int           `json:"version"`
	Requests int64         `json:"requests"`
	Errors   int64         `json:"errors"`
	Latency  map[int]int64 `json:"latency_buckets,omitempty"`
}

// ReportedVersion is one version's load on one replica.
type ReportedVersion struct {
	VersionID int64 `json:"version_id"`
	// InFlight counts requests at instances; Waiting requests waiting for
	// one.
	InFlight int64 `json:"in_flight"`
	Waiting  int64 `json:"waiting"`
	// Requests counts every request handed an instance since the replica
	// started (the leader takes differences, for a rate).
	Requests uint64 `json:"requests"`
}

// ReportedInstance is one instance's load on one replica.
type ReportedInstance struct {
	ID       string `json:"id"`
	InFlight int64  `json:"in_flight"`
	// IdleMS is how long ago, in milliseconds, the replica handed the
	// instance its last request.
	IdleMS int64 `json:"idle_ms"`
}

// LoadReply is the leader's answer to a LoadReport.
type LoadReply struct {
	// Leader is the leader's identity.
	Leader string `json:"leader"`
	// Withheld lists the instances that must get no new request: the
	// leader is draining or stopping them, or found them failing.
	Withheld []string `json:"withheld"`
	// Backoffs lists the versions whose starts are backing off after
	// failures; requests for them get 503 at once, as on the leader.
	Backoffs []VersionBackoff `json:"backoffs"`
	// Ready lists the ready instances of the versions the report said
	// requests wait for, in case the runtime's ready event was missed.
	Ready []ReadyInstance `json:"ready"`
	// IgnoredVersions lists reported versions the leader does not know:
	// deleted, or created so recently that its change feed has not brought
	// them yet. Their load counts from the next report that names them
	// after the leader learns of them.
	IgnoredVersions []int64 `json:"ignored_versions,omitempty"`
	// Rollouts names the services with a rollout the leader judges: a
	// follower counts their requests and reports them (LoadReport's
	// Rollouts).
	Rollouts []string `json:"rollouts,omitempty"`
}

// VersionBackoff is a version whose starts are held back.
type VersionBackoff struct {
	VersionID int64 `json:"version_id"`
	// Failures counts failed starts in a row; LastFailure is the last one.
	Failures    int    `json:"failures"`
	LastFailure string `json:"last_failure"`
	// RetryInMS is how long, in milliseconds, until the next start may be
	// tried.
	RetryInMS int64 `json:"retry_in_ms"`
}

// ReadyInstance is an instance that takes requests.
type ReadyInstance struct {
	ID        string `json:"id"`
	VersionID int64  `json:"version_id"`
	Addr      string `json:"addr"`
	// Proxied: a userland proxy accepts connections before the process
	// does (runtime.Instance.Proxied).
	Proxied bool `json:"proxied,omitempty"`
}

// MaxReplicaIDLen bounds a replica's identity.
const MaxReplicaIDLen = 200

// CheckReplicaID reports whether id can name a replica: 1 to
// MaxReplicaIDLen printable characters without spaces (a lease holder is
// "<replica-id> <admin-url>").
func CheckReplicaID(id string) error {
	if id == "" || len(id) > MaxReplicaIDLen {
		return fmt.Errorf("a replica ID has 1 to %d characters, got %d", MaxReplicaIDLen, len(id))
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("a replica ID has no spaces or control characters, got %q", id)
		}
	}
	return nil
}

// Validate checks a report: an ErrInvalid naming the first field at fault.
func (r LoadReport) Validate() error {
	if err := CheckReplicaID(r.Replica); err != nil {
		return Invalidf("replica", "%v", err)
	}
	seenV := make(map[int64]bool, len(r.Versions))
	for i, v := range r.Versions {
		field := fmt.Sprintf("versions[%d]", i)
		switch {
		case v.VersionID <= 0:
			return Invalidf(field+".version_id", "version_id must be a positive version ID, got %d", v.VersionID)
		case seenV[v.VersionID]:
			return Invalidf(field+".version_id", "version %d is reported twice", v.VersionID)
		case v.InFlight < 0 || v.Waiting < 0:
			return Invalidf(field, "in_flight and waiting must not be negative, got %d and %d", v.InFlight, v.Waiting)
		}
		seenV[v.VersionID] = true
	}
	seenI := make(map[string]bool, len(r.Instances))
	for i, in := range r.Instances {
		field := fmt.Sprintf("instances[%d]", i)
		switch {
		case in.ID == "" || len(in.ID) > 63 || strings.ContainsAny(in.ID, " \t\r\n/"):
			return Invalidf(field+".id", "id must be an instance ID (a DNS label of at most 63 characters), got %q", in.ID)
		case seenI[in.ID]:
			return Invalidf(field+".id", "instance %s is reported twice", in.ID)
		case in.InFlight < 0 || in.IdleMS < 0:
			return Invalidf(field, "in_flight and idle_ms must not be negative, got %d and %d", in.InFlight, in.IdleMS)
		}
		seenI[in.ID] = true
	}
	return nil
}
