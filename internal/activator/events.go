package activator

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Platform events (docs/events.md). The activator tells what happens to
// instances through Config.Events, one core.LogEntry of kind platform per
// event. Only a leader emits them: it is the one that starts, pauses and
// removes instances, so followers, which only mirror, never duplicate one.

// EventSink receives platform events. Append must never block (the logs
// store queues, and drops when behind).
type EventSink interface {
	Append(e core.LogEntry)
}

type discard struct{}

func (discard) Append(core.LogEntry) {}

// replaceWindow is how long a lost instance makes the next start of its
// version a replacement (reason replace) rather than a first request's or
// the autoscaler's.
const replaceWindow = 30 * time.Second

// emit sends a platform event about instance id (may be "") of v, timed at
// (the zero time: now), if this activator leads.
func (a *Activator) emit(at time.Time, event string, v *core.Version, id, msg string, fields ...string) {
	if !a.leading.Load() {
		return
	}
	e := core.PlatformEvent(event, v.Service, v.Number, id, msg, fields...)
	if at.IsZero() {
		at = a.now()
	}
	e.Time = at
	a.events.Append(e)
}

// startReason returns why the next start of vs happens: a replacement if
// an instance was lost lately, else def. Caller holds vs.mu.
func (a *Activator) startReason(vs *versionState, def string) string {
	if vs.replaceDue > 0 && a.now().Before(vs.replaceBy) {
		vs.replaceDue--
		return core.StartReplace
	}
	vs.replaceDue = 0
	return def
}

// Removal reasons (the reason field of instance.removed).
const (
	removedIdle           = "idle"
	removedScaleDown      = "scale-down"
	removedDrained        = "drained"
	removedVersionDeleted = "version-deleted"
	removedNoTraffic      = "no-traffic"
	removedShutdown       = "shutdown"
	removedSuspect        = "suspect"
	removedLiveness       = "liveness"
	removedUnreachable    = "unreachable"
	removedExited         = "exited"
	removedOutside        = "removed-outside"
	removedLost           = "lost"
	removedStartFailed    = "start-failed"
	removedUnwanted       = "unwanted"
	removedReplaced       = "replaced"
	removedWakeFailed     = "wake-failed"
	removedUnknown        = "unknown-version"
	removedLeader         = "not-leading"
	removedOther          = "other"
)

// removalReasons maps the beginning of a why of this package to its
// removal reason; the first match wins.
var removalReasons = []struct{ prefix, reason string }{
	{"idle for", removedIdle},
	{"scaled down; ", removedDrained},
	{"scaled down", removedScaleDown},
	{"its version was deleted", removedVersionDeleted},
	{"its version has no traffic", removedNoTraffic},
	{"shutdown", removedShutdown},
	{"start cancelled: wisp is shutting down", removedShutdown},
	{"it failed a request", removedSuspect},
	{"its liveness probe failed", removedLiveness},
	{"it refused a connection", removedUnreachable},
	{"its process exited", removedExited},
	{"its container was removed outside Wisp", removedOutside},
	{"the runtime no longer has it", removedLost},
	{"start failed", removedStartFailed},
	{"adopted, but did not become ready", removedStartFailed},
	{"the spare failed to start", removedStartFailed},
	{"the spare could not be created", removedStartFailed},
	{"no request waits for it any more", removedUnwanted},
	{"start cancelled: no request waits", removedUnwanted},
	{"a request started an instance at once", removedReplaced},
	{"it could not be thawed", removedWakeFailed},
	{"it belongs to no known version", removedUnknown},
	{"not running: ", removedUnknown},
	{"this replica stopped leading", removedLeader},
}

// removalReason classifies why an instance is removed.
func removalReason(why string) string {
	for _, r := range removalReasons {
		if strings.HasPrefix(why, r.prefix) {
			return r.reason
		}
	}
	return removedOther
}

// failed reports whether a removal for reason leaves a hole that the next
// start fills (a replacement).
func failed(reason string) bool {
	switch reason {
	case removedSuspect, removedLiveness, removedUnreachable, removedExited, removedOutside, removedLost:
		return true
	}
	return false
}

// removedMessage is the sentence of an instance.removed event.
func removedMessage(reason, why string, idle time.Duration) string {
	if reason == removedIdle {
		return fmt.Sprintf("removed: idle for %s s", seconds(idle))
	}
	if why == "" {
		return "removed: " + reason
	}
	return "removed: " + why
}

// seconds formats d as seconds, to the millisecond, for a message.
func seconds(d time.Duration) string {
	// From whole milliseconds: Duration.Seconds adds the fraction to the
	// whole seconds, which prints 1.14 s as 1.1400000000000001.
	return strconv.FormatFloat(float64(d.Round(time.Millisecond).Milliseconds())/1000, 'f', -1, 64)
}
