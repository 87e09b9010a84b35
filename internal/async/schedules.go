package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // IANA zones even where the host has none (a scratch image)

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/queue"
	"github.com/wisp-run/wisp/internal/schedule"
)

// Schedules fire cron schedules as async calls. Every replica runs the
// loop; a run is recorded with a compare-and-swap of the schedule's record
// and submitted with an idempotency key made of the schedule and its due
// time, so that replicas racing for a run, or a restart between the submit
// and the record, make one call.
type Schedules struct {
	calls *Calls
	table queue.Table
	log   *slog.Logger
	now   func() time.Time

	runs *prometheus.CounterVec // schedule, result: fired, skipped, missed
	lag  prometheus.Histogram

	wake chan struct{} // a schedule changed here: look again now
	mu   sync.Mutex    // serialises this replica's firing
}

// Schedule defaults and bounds.
const (
	scheduleGrace  = time.Second // a due time handled within this is on time
	keptRuns       = 20
	maxNextN       = 100
	scheduleMaxNap = time.Second // how long the loop sleeps at most, to see others' changes
)

// NewSchedules opens the schedules' table.
func NewSchedules(ctx context.Context, calls *Calls, reg prometheus.Registerer, logger *slog.Logger) (*Schedules, error) {
	s := &Schedules{calls: calls, log: logger.With("component", "schedules"), now: calls.cfg.Now, wake: make(chan struct{}, 1)}
	var err error
	if s.table, err = calls.cfg.Queue.Table(ctx, "schedules", 0); err != nil {
		return nil, err
	}
	s.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wisp_schedule_runs_total",
		Help: "Due times of schedules by result: fired (a call was made), skipped (concurrency forbid, or misfire skip after downtime), missed (due times passed while no replica ran).",
	}, []string{"schedule", "result"})
	s.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wisp_schedule_lag_seconds",
		Help:    "How late a schedule's run was submitted after its due time.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 300},
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{s.runs, s.lag} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// compiled is a schedule with its parsed parts.
type compiled struct {
	sch         schedule.Schedule
	loc         *time.Location
	misfire     schedule.Misfire
	concurrency schedule.Concurrency
}

func compile(def *core.Schedule) (compiled, error) {
	var c compiled
	var err error
	if c.sch, err = schedule.Parse(def.Cron); err != nil {
		return c, err
	}
	if def.TZ == "" {
		c.loc = time.UTC
	} else if c.loc, err = time.LoadLocation(def.TZ); err != nil || def.TZ == "Local" {
		return c, core.Invalidf("tz", "unknown time zone %q; use an IANA name such as Europe/Paris or UTC", def.TZ)
	}
	if c.misfire, err = schedule.ParseMisfire(def.Misfire); err != nil {
		return c, err
	}
	if c.concurrency, err = schedule.ParseConcurrency(def.Concurrency); err != nil {
		return c, err
	}
	def.Cron, def.Misfire, def.Concurrency = c.sch.String(), string(c.misfire), string(c.concurrency)
	return c, nil
}

// Create validates and stores a schedule; its first run is its first due
// time after now.
func (s *Schedules) Create(ctx context.Context, def core.Schedule) (core.Schedule, error) {
	if err := core.ValidateObjectName("schedule", def.Name); err != nil {
		return def, err
	}
	if def.Service == "" {
		return def, core.Invalidf("service", "a schedule needs the service it calls (service)")
	}
	if !s.calls.Known(def.Service) {
		return def, core.NotFoundf("no service named %q", def.Service)
	}
	if def.Method == "" {
		def.Method = http.MethodPost
	}
	def.Method = strings.ToUpper(def.Method)
	if !isToken(def.Method) {
		return def, core.Invalidf("method", "method %q is not an HTTP method", def.Method)
	}
	if def.Path == "" {
		def.Path = "/"
	}
	if !strings.HasPrefix(def.Path, "/") {
		return def, core.Invalidf("path", "path %q must start with /", def.Path)
	}
	if len(def.Body) > int(s.calls.cfg.MaxRequest) {
		return def, core.TooLargef("a schedule's body may be at most %d bytes", s.calls.cfg.MaxRequest)
	}
	c, err := compile(&def)
	if err != nil {
		return def, err
	}
	def.CreatedAt = s.now().UTC()
	def.LastFire, def.Runs, def.Next = nil, nil, nil
	raw, err := json.Marshal(def)
	if err != nil {
		return def, err
	}
	if _, err := s.table.Create(ctx, def.Name, raw); err != nil {
		if errors.Is(err, core.ErrAlreadyExists) {
			return def, core.AlreadyExistsf("a schedule named %q exists; change it (wisp schedule suspend/resume) or delete it first", def.Name)
		}
		return def, err
	}
	s.poke()
	withNext(&def, c, s.now())
	return def, nil
}

func (s *Schedules) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func withNext(def *core.Schedule, c compiled, now time.Time) {
	def.Next = nil
	if def.Suspend {
		return
	}
	after := now
	if def.LastFire != nil && def.LastFire.After(after) {
		after = *def.LastFire
	}
	if n := c.sch.Next(after, c.loc); !n.IsZero() {
		def.Next = &n
	}
}

func (s *Schedules) read(ctx context.Context, name string) (*core.Schedule, uint64, error) {
	raw, rev, err := s.table.Get(ctx, name)
	if errors.Is(err, core.ErrNotFound) {
		return nil, 0, core.NotFoundf("no schedule named %q", name)
	}
	if err != nil {
		return nil, 0, err
	}
	var def core.Schedule
	if err := json.Unmarshal(raw, &def); err != nil {
		return nil, 0, fmt.Errorf("schedule record %s: %w", name, err)
	}
	return &def, rev, nil
}

// Get returns a schedule with its next fire time and the states of its
// recent runs' calls.
func (s *Schedules) Get(ctx context.Context, name string) (core.Schedule, error) {
	def, _, err := s.read(ctx, name)
	if err != nil {
		return core.Schedule{}, err
	}
	c, err := compile(def)
	if err == nil {
		withNext(def, c, s.now())
	}
	for i := range def.Runs {
		r := &def.Runs[i]
		if r.CallID == "" {
			continue
		}
		if call, err := s.calls.Get(ctx, r.CallID); err == nil {
			r.State = call.State
			if n := len(call.Attempts); n > 0 {
				r.DurationMS = call.Attempts[n-1].DurationMS
			}
		}
	}
	return *def, nil
}

// List returns every schedule by name, with its next fire time.
func (s *Schedules) List(ctx context.Context) ([]core.Schedule, error) {
	keys, err := s.table.Keys(ctx, ">")
	if err != nil {
		return nil, err
	}
	sort.Strings(keys)
	out := make([]core.Schedule, 0, len(keys))
	now := s.now()
	for _, k := range keys {
		def, _, err := s.read(ctx, k)
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if c, err := compile(def); err == nil {
			withNext(def, c, now)
		}
		out = append(out, *def)
	}
	return out, nil
}

// Update changes a schedule.
func (s *Schedules) Update(ctx context.Context, name string, p core.SchedulePatch) (core.Schedule, error) {
	for range 10 {
		def, rev, err := s.read(ctx, name)
		if err != nil {
			return core.Schedule{}, err
		}
		wasSuspended := def.Suspend
		if p.Suspend != nil {
			def.Suspend = *p.Suspend
		}
		if p.Cron != nil {
			def.Cron = *p.Cron
		}
		if p.TZ != nil {
			def.TZ = *p.TZ
		}
		if p.Misfire != nil {
			def.Misfire = *p.Misfire
		}
		if p.Concurrency != nil {
			def.Concurrency = *p.Concurrency
		}
		c, err := compile(def)
		if err != nil {
			return *def, err
		}
		if wasSuspended && !def.Suspend {
			// Resuming does not fire what was due while suspended.
			now := s.now().UTC()
			def.LastFire = &now
		}
		raw, err := json.Marshal(def)
		if err != nil {
			return *def, err
		}
		if _, err := s.table.Update(ctx, name, raw, rev); errors.Is(err, core.ErrPreconditionFailed) {
			continue
		} else if err != nil {
			return *def, err
		}
		s.poke()
		withNext(def, c, s.now())
		return *def, nil
	}
	return core.Schedule{}, core.Unavailablef("schedule %q kept changing under the update; try again", name)
}

// Delete removes a schedule; calls it made stay.
func (s *Schedules) Delete(ctx context.Context, name string) error {
	if _, _, err := s.read(ctx, name); err != nil {
		return err
	}
	return s.table.Delete(ctx, name)
}

// NextN returns a schedule's next n fire times (at most 100).
func (s *Schedules) NextN(ctx context.Context, name string, n int) ([]time.Time, error) {
	if n < 1 || n > maxNextN {
		return nil, core.Invalidf("n", "n must be between 1 and %d, got %d", maxNextN, n)
	}
	def, _, err := s.read(ctx, name)
	if err != nil {
		return nil, err
	}
	c, err := compile(def)
	if err != nil {
		return nil, err
	}
	return c.sch.NextN(s.now(), c.loc, n), nil
}

// RunNow fires a schedule at once, whatever its time, suspension and
// concurrency policy, and returns the call's ID.
func (s *Schedules) RunNow(ctx context.Context, name string) (string, error) {
	for range 10 {
		def, rev, err := s.read(ctx, name)
		if err != nil {
			return "", err
		}
		now := s.now().UTC()
		id, _, err := s.calls.SubmitCall(ctx, s.callFor(def, now, "manual:"+NewID(now)))
		if err != nil {
			return "", err
		}
		def.Runs = prependRun(def.Runs, core.ScheduleRun{At: now, FiredAt: now, CallID: id, State: core.CallQueued, Note: "run by hand"})
		if err := s.write(ctx, def, rev); errors.Is(err, core.ErrPreconditionFailed) {
			continue
		} else if err != nil {
			return id, err
		}
		return id, nil
	}
	return "", core.Unavailablef("schedule %q kept changing; try again", name)
}

func (s *Schedules) write(ctx context.Context, def *core.Schedule, rev uint64) error {
	def.Next = nil
	raw, err := json.Marshal(def)
	if err != nil {
		return err
	}
	_, err = s.table.Update(ctx, def.Name, raw, rev)
	return err
}

func prependRun(runs []core.ScheduleRun, r core.ScheduleRun) []core.ScheduleRun {
	out := append([]core.ScheduleRun{r}, runs...)
	if len(out) > keptRuns {
		out = out[:keptRuns]
	}
	return out
}

func (s *Schedules) callFor(def *core.Schedule, at time.Time, key string) *core.Call {
	h := def.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Wisp-Schedule", def.Name)
	h.Set("Wisp-Scheduled-For", at.UTC().Format(time.RFC3339Nano))
	return &core.Call{Service: def.Service, Origin: "schedule:" + def.Name,
		Request:        core.CallRequest{Method: def.Method, Path: def.Path, Header: h, Body: []byte(def.Body)},
		IdempotencyKey: "schedule:" + def.Name + ":" + def.CreatedAt.Format(time.RFC3339Nano) + ":" + key}
}

// Run fires due schedules until ctx ends.
func (s *Schedules) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
		next := s.tick(ctx)
		nap := scheduleMaxNap
		if !next.IsZero() {
			nap = min(nap, max(time.Until(next), time.Millisecond))
		}
		t.Reset(nap)
	}
}

// tick handles every due schedule and returns the earliest next due time.
func (s *Schedules) tick(ctx context.Context) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, err := s.table.Keys(ctx, ">")
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("read the schedules", "err", err)
		}
		return time.Time{}
	}
	var earliest time.Time
	for _, k := range keys {
		next := s.handle(ctx, k)
		if !next.IsZero() && (earliest.IsZero() || next.Before(earliest)) {
			earliest = next
		}
	}
	return earliest
}

// handle fires schedule name if a run is due and returns its next due time.
func (s *Schedules) handle(ctx context.Context, name string) time.Time {
	def, rev, err := s.read(ctx, name)
	if err != nil {
		return time.Time{}
	}
	c, err := compile(def)
	if err != nil || def.Suspend {
		return time.Time{}
	}
	now := s.now()
	last := def.CreatedAt
	if def.LastFire != nil {
		last = *def.LastFire
	}
	fire, missed, ok := schedule.Due(c.sch, c.loc, last, now, c.misfire, scheduleGrace)
	if fire.IsZero() {
		return c.sch.Next(last, c.loc)
	}
	run := core.ScheduleRun{At: fire, FiredAt: now.UTC(), State: "skipped"}
	switch {
	case !ok:
		run.Note = fmt.Sprintf("%d due time(s) passed while Wisp was down; not run (misfire skip)", missed)
		s.runs.WithLabelValues(name, "missed").Add(float64(missed))
	default:
		running := s.runningCalls(ctx, def)
		start, cancelRunning := schedule.Admit(c.concurrency, len(running))
		if !start {
			run.Note = "the previous run is still going (concurrency forbid)"
			s.runs.WithLabelValues(name, "skipped").Inc()
			break
		}
		if cancelRunning {
			for _, id := range running {
				s.calls.Cancel(ctx, id, "replaced by the run due "+fire.UTC().Format(time.RFC3339))
			}
		}
		id, _, err := s.calls.SubmitCall(ctx, s.callFor(def, fire, fire.UTC().Format(time.RFC3339Nano)))
		if errors.Is(err, core.ErrNotFound) {
			run.Note = fmt.Sprintf("service %q does not exist", def.Service)
			break
		}
		if err != nil {
			s.log.Warn("fire a schedule", "schedule", name, "err", err)
			return now.Add(time.Second) // not recorded: tried again
		}
		run.CallID, run.State = id, core.CallQueued
		if missed > 0 {
			run.Note = fmt.Sprintf("%d due time(s) passed while Wisp was down; run once (misfire run-once)", missed)
			s.runs.WithLabelValues(name, "missed").Add(float64(missed))
		}
		s.runs.WithLabelValues(name, "fired").Inc()
		s.lag.Observe(now.Sub(fire).Seconds())
	}
	f := fire.UTC()
	def.LastFire = &f
	def.Runs = prependRun(def.Runs, run)
	if err := s.write(ctx, def, rev); err != nil && !errors.Is(err, core.ErrPreconditionFailed) {
		s.log.Warn("record a schedule's run", "schedule", name, "err", err)
	}
	return c.sch.Next(fire, c.loc)
}

// runningCalls returns the IDs of the schedule's recent calls that are not
// done.
func (s *Schedules) runningCalls(ctx context.Context, def *core.Schedule) []string {
	var ids []string
	for _, r := range def.Runs {
		if r.CallID == "" {
			continue
		}
		call, err := s.calls.Get(ctx, r.CallID)
		if err == nil && !call.Done() {
			ids = append(ids, r.CallID)
		}
	}
	return ids
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2), as a
// method must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c) {
			continue
		}
		return false
	}
	return true
}
