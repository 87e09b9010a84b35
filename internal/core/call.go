package core

import (
	"net/http"
	"time"
)

// Async call states (docs/async.md).
const (
	CallQueued    = "queued"    // stored, waiting for its first or next attempt
	CallRunning   = "running"   // an attempt is being sent
	CallSucceeded = "succeeded" // answered 2xx or 3xx: done
	CallFailed    = "failed"    // answered 4xx other than 408 and 429: done, not retried
	CallDead      = "dead"      // out of attempts or past max_age: kept for inspection and retry
)

// CallStates lists the states in the order a call moves through them.
var CallStates = []string{CallQueued, CallRunning, CallSucceeded, CallFailed, CallDead}

// Call is one async invocation of a service: the request that was handed
// off, every attempt to deliver it, and the answer.
type Call struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	State   string `json:"state"`
	// Origin says who submitted it: "api" (an async request), "trigger:<name>"
	// or "schedule:<name>".
	Origin   string      `json:"origin,omitempty"`
	Request  CallRequest `json:"request"`
	Callback string      `json:"callback,omitempty"`
	// IdempotencyKey is the client's key, if it sent one.
	IdempotencyKey string        `json:"idempotency_key,omitempty"`
	Attempts       []CallAttempt `json:"attempts"`
	// RetriedAttempts counts the attempts made before the call was last
	// replayed (POST /v1/calls/{id}/retry): a replay gets a fresh budget.
	RetriedAttempts int           `json:"retried_attempts,omitempty"`
	Response        *CallResponse `json:"response,omitempty"`
	// Error says why the call is dead or failed, in words.
	Error       string    `json:"error,omitempty"`
	SubmittedAt time.Time `json:"submitted_at"`
	// NextAttemptAt is when a queued call that failed is tried again.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	// CallbackStatus is the status the callback URL answered (0: not yet
	// or none), CallbackError why it could not be delivered.
	CallbackStatus int    `json:"callback_status,omitempty"`
	CallbackError  string `json:"callback_error,omitempty"`
}

// Done reports whether the call will not be attempted again on its own.
func (c *Call) Done() bool {
	return c.State == CallSucceeded || c.State == CallFailed || c.State == CallDead
}

// CallRequest is the request an async call sends.
type CallRequest struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Query  string      `json:"query,omitempty"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
}

// CallAttempt is one delivery of a call.
type CallAttempt struct {
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Status is the HTTP status the service answered; 0 when the attempt
	// did not get one (the daemon stopped during it).
	Status     int     `json:"status,omitempty"`
	DurationMS float64 `json:"duration_ms,omitempty"`
	Version    int     `json:"version,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// CallResponse is what the service answered to the last attempt.
type CallResponse struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
	// Truncated: the body was longer than the kept size (docs/async.md).
	Truncated bool `json:"truncated,omitempty"`
}

// Trigger calls a service for every CloudEvent published on subjects that
// match Subject and pass Filters (docs/async.md).
type Trigger struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	// Subject is a NATS subject pattern ("orders.>"). Events sent to
	// POST /v1/events go to the subject named by its ?subject= or else
	// events.<type>.
	Subject string `json:"subject"`
	// Tag pins the calls to a tag or version ("canary", "v3"); empty: the
	// traffic split.
	Tag string `json:"tag,omitempty"`
	// Path is the path the events are POSTed to; default "/".
	Path string `json:"path,omitempty"`
	// Filters on CloudEvents attributes: "type=com.example.created" (exact)
	// or "source^=/orders/" (prefix) on type, source or subject; all must
	// match.
	Filters   []string  `json:"filters,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Deliveries are the trigger's most recent calls (GET of one trigger).
	Deliveries []Call `json:"deliveries,omitempty"`
}

// Schedule calls a service on a cron schedule (docs/async.md).
type Schedule struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	// Cron is a 5-field cron spec or a descriptor (@hourly, @every 30s).
	Cron string `json:"cron"`
	// TZ is an IANA time zone; default UTC.
	TZ     string      `json:"tz,omitempty"`
	Method string      `json:"method,omitempty"` // default POST
	Path   string      `json:"path,omitempty"`   // default "/"
	Header http.Header `json:"header,omitempty"`
	Body   string      `json:"body,omitempty"`
	// Misfire is "run-once" (default: after downtime, fire once) or
	// "skip"; Concurrency "allow" (default), "forbid" or "replace".
	Misfire     string    `json:"misfire,omitempty"`
	Concurrency string    `json:"concurrency,omitempty"`
	Suspend     bool      `json:"suspend,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	// LastFire is the latest due time that was handled (fired or skipped).
	LastFire *time.Time `json:"last_fire,omitempty"`
	// Next is the next fire time (computed when read).
	Next *time.Time `json:"next,omitempty"`
	// Runs are the most recent runs, newest first.
	Runs []ScheduleRun `json:"runs,omitempty"`
}

// SchedulePatch changes a schedule; nil fields stay.
type SchedulePatch struct {
	Suspend     *bool   `json:"suspend,omitempty"`
	Cron        *string `json:"cron,omitempty"`
	TZ          *string `json:"tz,omitempty"`
	Misfire     *string `json:"misfire,omitempty"`
	Concurrency *string `json:"concurrency,omitempty"`
}

// ScheduleRun is one firing of a schedule.
type ScheduleRun struct {
	// At is the due time it fired for; FiredAt when it did.
	At      time.Time `json:"at"`
	FiredAt time.Time `json:"fired_at"`
	// CallID names the async call it made ("" when skipped).
	CallID string `json:"call_id,omitempty"`
	// State is the call's state when read, or "skipped".
	State      string  `json:"state"`
	DurationMS float64 `json:"duration_ms,omitempty"`
	// Note says why it was skipped or what else happened (a missed run).
	Note string `json:"note,omitempty"`
}
