package router

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Request logs (docs/events.md). A service whose policy has request_logs on
// gets one log entry of kind request per request; its route then carries a
// *requestLog, and a service without it pays one nil check per request.
//
// Above Config.RequestLogRate lines per second per service, lines are
// sampled: a token bucket (one second of burst) admits lines, the others
// are counted, and the next line written carries the count in its field
// skipped. The bucket is a GCRA (generic cell rate algorithm): one atomic
// "theoretical arrival time" moved by compare-and-swap, so no lock.

// RequestLogSink receives request log entries. Append must never block.
type RequestLogSink interface {
	Append(e core.LogEntry)
}

// DefaultRequestLogRate is the lines per second per service written before
// sampling begins.
const DefaultRequestLogRate = 100

// requestLog is the request log state of one service: its rate limiter and
// what was skipped. It is kept across changes of the service's route.
type requestLog struct {
	interval int64 // nanoseconds between lines at the rate
	burst    int64 // nanoseconds of lines that may come at once
	tat      atomic.Int64
	skipped  atomic.Int64
}

func newRequestLog(rate float64) *requestLog {
	if rate <= 0 {
		rate = DefaultRequestLogRate
	}
	iv := int64(float64(time.Second) / rate)
	if iv < 1 {
		iv = 1
	}
	return &requestLog{interval: iv, burst: int64(time.Second)}
}

// admit reports whether a line at now (unix nanoseconds) is written, and
// how many were skipped since the last one written.
func (l *requestLog) admit(now int64) (ok bool, skipped int64) {
	for {
		tat := l.tat.Load()
		next := max(tat, now) + l.interval
		if next-now > l.burst+l.interval {
			l.skipped.Add(1)
			return false, 0
		}
		if l.tat.CompareAndSwap(tat, next) {
			return true, l.skipped.Swap(0)
		}
	}
}

// logRequest writes the request line of a request to sr's service, if its
// limiter admits it.
func (r *Router) logRequest(sr *serviceRoute, v *core.Version, method, path string, status int, start time.Time, lease *Lease) {
	now := time.Now()
	ok, skipped := sr.reqLog.admit(now.UnixNano())
	if !ok {
		return
	}
	d := now.Sub(start)
	e := core.LogEntry{Time: start, Kind: core.LogRequest, Service: sr.name, Instance: lease.Instance,
		Fields: make(map[string]string, 9)}
	e.Fields["method"] = method
	e.Fields["path"] = path
	e.Fields["status"] = strconv.Itoa(status)
	e.Fields["duration_ms"] = core.Millis(d)
	if v != nil {
		e.Version = v.Number
		e.Fields["version"] = strconv.Itoa(v.Number)
	}
	e.Fields["instance"] = lease.Instance
	e.Fields["cold"] = strconv.FormatBool(lease.ColdStart > 0)
	if lease.ColdStart > 0 {
		e.Fields["cold_ms"] = core.Millis(lease.ColdStart)
	}
	e.Fields["queue_ms"] = core.Millis(lease.QueueWait)
	if skipped > 0 {
		e.Fields["skipped"] = strconv.FormatInt(skipped, 10)
	}
	e.Message = method + " " + path + " " + strconv.Itoa(status) + " " + strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	r.cfg.RequestLogs.Append(e)
}

// keepRequestLogs gives next the request log state of prev when both log
// requests, so a change of the service neither resets its rate nor loses
// its skipped count.
func keepRequestLogs(prev, next *serviceRoute) {
	if prev != nil && prev.reqLog != nil && next.reqLog != nil {
		next.reqLog = prev.reqLog
	}
}
