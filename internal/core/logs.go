package core

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// LogKind says where a log entry comes from.
type LogKind string

// Log kinds.
const (
	// LogApp is a line an instance wrote to stdout or stderr.
	LogApp LogKind = "app"
	// LogPlatform is something Wisp did or saw (an Event below).
	LogPlatform LogKind = "platform"
	// LogRequest is one request the router served (policy.request_logs).
	LogRequest LogKind = "request"
)

// ParseLogKind checks a kind named by a user.
func ParseLogKind(s string) (LogKind, error) {
	switch k := LogKind(s); k {
	case LogApp, LogPlatform, LogRequest:
		return k, nil
	}
	return "", Invalidf("kind", "kind %q is not one of app, platform, request", s)
}

// LogEntry is one entry of a service's log stream: an instance's output, a
// platform event or a request line. Entries of one service are numbered in
// the order they were stored (Seq, from 1); a follower resumes after the
// last Seq it saw.
type LogEntry struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     LogKind   `json:"kind"`
	Service  string    `json:"service"`
	Version  int       `json:"version,omitempty"`
	Instance string    `json:"instance,omitempty"`
	// Stream is "stdout" or "stderr" for app lines.
	Stream string `json:"stream,omitempty"`
	// Event names a platform event (EventInstanceStarting, …).
	Event string `json:"event,omitempty"`
	// Message is the line itself (app), or a sentence a person reads
	// (platform, request).
	Message string `json:"message"`
	// Fields are the event's or request's details, by name (for example
	// "reason", "duration_ms", "exit_code"; "method", "status").
	Fields map[string]string `json:"fields,omitempty"`
}

// Platform events. Each is one LogEntry of kind LogPlatform with the
// fields listed, and counts in wisp_platform_events_total{service,event}.
const (
	// EventInstanceStarting: fields reason (one of the StartReason values).
	EventInstanceStarting = "instance.starting"
	// EventInstanceAdopted: an instance an earlier run left, taken over.
	EventInstanceAdopted = "instance.adopted"
	// EventInstanceReady: fields duration_ms (from asking the runtime).
	EventInstanceReady = "instance.ready"
	// EventInstanceStartFailed: fields error.
	EventInstanceStartFailed = "instance.start_failed"
	// EventInstancePaused: fields idle_ms.
	EventInstancePaused = "instance.paused"
	// EventInstanceWoken: fields duration_ms.
	EventInstanceWoken = "instance.woken"
	// EventInstanceRemoved: fields reason (idle, scale-down, version
	// deleted, replaced, shutdown …), idle_ms when idle.
	EventInstanceRemoved = "instance.removed"
	// EventInstanceExited: fields exit_code, last_output.
	EventInstanceExited = "instance.exited"
	// EventInstanceOOM: the instance was killed for memory.
	EventInstanceOOM = "instance.oom"
	// EventReadinessFailed: fields error.
	EventReadinessFailed = "instance.readiness_failed"
	// EventBackoff: a version's starts back off; fields failures, retry_in_ms.
	EventBackoff = "version.backoff"
	// EventTrafficChanged: fields by (api, cli, dashboard, rollback, build),
	// traffic (the new weights, "1=90,2=10"), entry.
	EventTrafficChanged = "traffic.changed"
	// Rollout events (docs/rollouts.md): fields rollout, to, step,
	// percent; a check's requests, error_rate and p99_ms with step,
	// failed, succeeded and paused; by with the actions of a person.
	EventRolloutStarted   = "rollout.started"
	EventRolloutStep      = "rollout.step"
	EventRolloutFailed    = "rollout.failed"
	EventRolloutSucceeded = "rollout.succeeded"
	EventRolloutPaused    = "rollout.paused"
	EventRolloutResumed   = "rollout.resumed"
	EventRolloutAborted   = "rollout.aborted"
	// EventBuildStarted and EventBuildFinished: fields build, result.
	EventBuildStarted  = "build.started"
	EventBuildFinished = "build.finished"
)

// ClientHeader is the request header that names who makes a change through
// the admin API: "cli" (the CLI), "dashboard"; absent or anything else is
// "api". EventTrafficChanged reports it as its by field.
const ClientHeader = "Wisp-Client"

// Why an instance starts (the reason field of EventInstanceStarting).
const (
	StartFirstRequest = "first-request"
	StartAutoscaler   = "autoscaler"
	StartMinInstances = "min-instances"
	StartStandby      = "standby"
	StartRollout      = "rollout"
	StartReplace      = "replace"
)

// PlatformEvent returns a platform event entry of service and version,
// timed now, with fields given as name, value pairs.
func PlatformEvent(event, service string, version int, instance, message string, fields ...string) LogEntry {
	e := LogEntry{Time: time.Now(), Kind: LogPlatform, Service: service, Version: version,
		Instance: instance, Event: event, Message: message}
	if len(fields) > 0 {
		e.Fields = make(map[string]string, len(fields)/2)
		for i := 0; i+1 < len(fields); i += 2 {
			e.Fields[fields[i]] = fields[i+1]
		}
	}
	return e
}

// Millis formats d as whole milliseconds for a field.
func Millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// LogQuery selects entries of one service.
type LogQuery struct {
	Service  string
	Version  int    // 0: all
	Instance string // "": all
	// Kinds: empty means every kind.
	Kinds []LogKind
	// Since and Until bound Time (zero: unbounded); Since inclusive, Until
	// exclusive.
	Since, Until time.Time
	// AfterSeq returns entries with Seq above it only (a follow resumed).
	AfterSeq uint64
	// Tail keeps the last Tail entries of those matched (0: all).
	Tail int
	// Contains keeps entries whose Message contains it (case-sensitive).
	Contains string
	// Follow keeps the stream open for new entries.
	Follow bool
}

// Matches reports whether e passes the query's filters (not Tail or Follow).
func (q LogQuery) Matches(e LogEntry) bool {
	if q.Version != 0 && e.Version != q.Version {
		return false
	}
	if q.Instance != "" && e.Instance != q.Instance {
		return false
	}
	if len(q.Kinds) > 0 {
		ok := false
		for _, k := range q.Kinds {
			ok = ok || k == e.Kind
		}
		if !ok {
			return false
		}
	}
	if !q.Since.IsZero() && e.Time.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !e.Time.Before(q.Until) {
		return false
	}
	if e.Seq <= q.AfterSeq {
		return false
	}
	return q.Contains == "" || strings.Contains(e.Message, q.Contains)
}

// LogRetention bounds what is kept of one service's log stream.
type LogRetention struct {
	MaxBytes int64
	MaxAge   time.Duration
}

// Log retention defaults (per service).
const (
	DefaultLogMaxBytes = 50 << 20
	DefaultLogMaxAge   = 7 * 24 * time.Hour
)

// Validate checks the bounds.
func (r LogRetention) Validate() error {
	if r.MaxBytes < 1<<20 {
		return fmt.Errorf("log retention of %d bytes is below the minimum of 1 MiB", r.MaxBytes)
	}
	if r.MaxAge < time.Minute {
		return fmt.Errorf("log retention of %s is below the minimum of 1m", r.MaxAge)
	}
	return nil
}

// TrafficSummary writes a split (the traffic field of EventTrafficChanged) as "1=90,2=10", followed by the tags, if
// any, as " canary=2,beta=3" (by name).
func TrafficSummary(t Traffic) string {
	var b strings.Builder
	for i, w := range t.Weights {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(w.Version) + "=" + strconv.Itoa(w.Percent))
	}
	if len(t.Tags) > 0 {
		names := make([]string, 0, len(t.Tags))
		for n := range t.Tags {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			if i == 0 {
				b.WriteByte(' ')
			} else {
				b.WriteByte(',')
			}
			b.WriteString(n + "=" + strconv.Itoa(t.Tags[n]))
		}
	}
	return b.String()
}
