package rollout

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/latency"
	"github.com/wisp-run/wisp/internal/store"
)

// fakeStore keeps one service's rollout and traffic history in memory,
// applying updates the way store.UpdateRollout's contract says.
type fakeStore struct {
	mu      sync.Mutex
	r       core.Rollout
	history []core.TrafficEntry
}

func newFakeStore(t *testing.T, spec core.RolloutSpec, weights ...core.Weight) *fakeStore {
	t.Helper()
	f := &fakeStore{history: []core.TrafficEntry{{ID: 1, Service: "web", Traffic: core.Traffic{Weights: weights, Tags: map[string]int{"old": 1}}}}}
	cur := f.history[0]
	r, err := core.NewRollout("web", spec, &cur, nil, func(int) bool { return true }, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r.ID = 3
	f.append(r.StepTraffic(cur.Traffic))
	r.LastEntry = f.cur().ID
	f.r = r
	return f
}

func (f *fakeStore) cur() core.TrafficEntry { return f.history[len(f.history)-1] }

func (f *fakeStore) append(t core.Traffic) int64 {
	id := f.cur().ID + 1
	f.history = append(f.history, core.TrafficEntry{ID: id, Service: "web", Traffic: t})
	return id
}

func (f *fakeStore) ActiveRollouts(context.Context) ([]core.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.r.State.Active() {
		return []core.Rollout{f.r}, nil
	}
	return nil, nil
}

func (f *fakeStore) UpdateRollout(_ context.Context, _ string, fn store.RolloutUpdate) (core.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	before := f.history[0]
	next, t, err := fn(f.r, f.cur(), &before)
	if err != nil {
		return f.r, err
	}
	if t != nil {
		next.LastEntry = f.append(*t)
	}
	f.r = next.Normalize()
	return f.r, nil
}

func (f *fakeStore) state() (core.Rollout, []core.TrafficEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.r, append([]core.TrafficEntry(nil), f.history...)
}

type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) Append(le core.LogEntry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, le.Event)
}

func spec(steps ...int) core.RolloutSpec {
	return core.RolloutSpec{To: 2, Steps: steps, Interval: core.Duration(time.Second), MinRequests: 20}
}

// drive runs the controller for d, with load sending n requests of each
// version every tick (status from statusOf) before each tick.
func drive(t *testing.T, c *Controller, rec *Recorder, d time.Duration, load func(rec *Recorder)) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(DefaultTick) {
		if load != nil {
			load(rec)
		}
		c.Tick(t.Context())
	}
}

func steady(errEvery int, latency time.Duration) func(rec *Recorder) {
	i := 0
	return func(rec *Recorder) {
		for range 10 {
			i++
			status := 200
			if errEvery > 0 && i%errEvery == 0 {
				status = 500
			}
			rec.ObserveRequest("web", 2, status, latency)
			rec.ObserveRequest("web", 1, 200, 10*time.Millisecond)
		}
	}
}

func newController(t *testing.T, st Store, ev EventSink) (*Controller, *Recorder) {
	t.Helper()
	rec := NewRecorder()
	c, err := New(Config{Store: st, Recorder: rec, Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

func messages(h []core.TrafficEntry) []string {
	var out []string
	for _, e := range h[1:] {
		out = append(out, e.Message)
	}
	return out
}

func TestHealthyRolloutReachesFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFakeStore(t, spec(10, 50, 100), core.Weight{Version: 1, Percent: 100})
		ev := &events{}
		c, rec := newController(t, st, ev)
		start := time.Now()
		drive(t, c, rec, 5*time.Second, steady(0, 5*time.Millisecond))
		r, h := st.state()
		if r.State != core.RolloutSucceeded {
			t.Fatalf("state %s (%s), want succeeded", r.State, r.Reason)
		}
		want := []string{"rollout 3: step 1/3, 10% to version 2", "rollout 3: step 2/3, 50% to version 2", "rollout 3: step 3/3, 100% to version 2"}
		if diff := cmp.Diff(want, messages(h)); diff != "" {
			t.Errorf("history (-want +got):\n%s", diff)
		}
		last := h[len(h)-1].Traffic
		if diff := cmp.Diff(core.Traffic{Weights: []core.Weight{{Version: 2, Percent: 100}}, Tags: map[string]int{"old": 1}, Message: want[2]}, last); diff != "" {
			t.Errorf("last entry keeps the others' fields (-want +got):\n%s", diff)
		}
		if r.Check == nil || r.Check.Result != core.CheckPassed || r.Check.Requests < 20 {
			t.Errorf("last check %+v", r.Check)
		}
		// Three steps of 1 s, each judged within a tick of its end (the
		// first window starts a tick late).
		if took := r.UpdatedAt; !took.IsZero() && took.Sub(start) > 4*time.Second {
			t.Errorf("took %s", took.Sub(start))
		}
		if diff := cmp.Diff([]string{core.EventRolloutStep, core.EventRolloutStep, core.EventRolloutSucceeded}, ev.list); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestFailingRolloutRollsBackAtFirstCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFakeStore(t, spec(5, 50, 100), core.Weight{Version: 1, Percent: 100})
		ev := &events{}
		c, rec := newController(t, st, ev)
		start := time.Now()
		var failedAt time.Time
		for time.Since(start) < 3*time.Second && failedAt.IsZero() {
			steady(5, 5*time.Millisecond)(rec)
			c.Tick(t.Context())
			if r, _ := st.state(); r.State == core.RolloutFailed {
				failedAt = time.Now()
			}
			time.Sleep(DefaultTick)
		}
		r, h := st.state()
		if r.State != core.RolloutFailed {
			t.Fatalf("state %s, want failed", r.State)
		}
		if took := failedAt.Sub(start); took > time.Second+2*DefaultTick {
			t.Errorf("failed after %s, want within one interval and a tick", took)
		}
		last := h[len(h)-1]
		if !strings.HasPrefix(last.Message, "rollout 3 failed at step 1 (5%): error rate 20% over ") || !strings.HasSuffix(last.Message, " requests > 1%") {
			t.Errorf("rollback message %q", last.Message)
		}
		if diff := cmp.Diff(h[0].Weights, last.Weights); diff != "" {
			t.Errorf("rollback does not restore the entry before (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{core.EventRolloutFailed}, ev.list); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestTooLittleTrafficWaitsThenPauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFakeStore(t, spec(50, 100), core.Weight{Version: 1, Percent: 100})
		c, rec := newController(t, st, &events{})
		drive(t, c, rec, 3*time.Second, func(rec *Recorder) { rec.ObserveRequest("web", 2, 200, time.Millisecond) })
		r, _ := st.state()
		if r.State != core.RolloutRunning || r.Check == nil || r.Check.Result != core.CheckWaiting || r.Step != 1 {
			t.Fatalf("after 3 s with 12 requests: %s at step %d, check %+v; want running and waiting at step 1", r.State, r.Step, r.Check)
		}
		if !strings.Contains(r.Reason, "waiting for traffic: ") || !strings.Contains(r.Reason, "of 20 requests to version 2") {
			t.Errorf("reason %q", r.Reason)
		}
		drive(t, c, rec, time.Duration(core.RolloutWaitIntervals)*time.Second, nil)
		if r, _ = st.state(); r.State != core.RolloutPaused || !strings.HasPrefix(r.Reason, "paused: waiting for traffic") {
			t.Errorf("after the wait bound: %s (%s), want paused", r.State, r.Reason)
		}
	})
}

func TestOutsideTrafficChangePauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFakeStore(t, spec(10, 100), core.Weight{Version: 1, Percent: 100})
		c, rec := newController(t, st, &events{})
		drive(t, c, rec, 500*time.Millisecond, steady(0, time.Millisecond))
		st.mu.Lock()
		st.append(core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 80}, {Version: 2, Percent: 20}}, Message: "by hand"})
		st.mu.Unlock()
		drive(t, c, rec, time.Second, steady(0, time.Millisecond))
		r, h := st.state()
		if r.State != core.RolloutPaused || !strings.Contains(r.Reason, "outside the rollout") {
			t.Fatalf("state %s (%s), want paused", r.State, r.Reason)
		}
		if got := h[len(h)-1].Message; got != "by hand" {
			t.Errorf("the controller wrote over a person's change: %q", got)
		}
		// Resume accepts the split and goes on from it.
		if _, err := st.UpdateRollout(t.Context(), "web", core.RolloutAction(core.RolloutResume, "cli", time.Now())); err != nil {
			t.Fatal(err)
		}
		drive(t, c, rec, 3*time.Second, steady(0, time.Millisecond))
		if r, _ = st.state(); r.State != core.RolloutSucceeded {
			t.Errorf("after resume: %s (%s), want succeeded", r.State, r.Reason)
		}
	})
}

func TestJudge(t *testing.T) {
	counts := func(n, errs int64, lat time.Duration) Counts {
		var c Counts
		c.Requests, c.Errors = n, errs
		c.Buckets[latency.Bucket(lat)] = n
		return c
	}
	mix := func(a, b Counts) Counts { return a.Add(b) }
	s := core.RolloutSpec{To: 2, MinRequests: 100, MaxP99: core.Duration(300 * time.Millisecond)}.WithDefaults()
	for _, tc := range []struct {
		name         string
		target, base Counts
		result       string
		detail       string
	}{
		{"too few", counts(99, 0, time.Millisecond), Counts{}, core.CheckWaiting, "waiting for traffic: 99 of 100 requests to version 2"},
		{"errors", counts(412, 83, time.Millisecond), Counts{}, core.CheckFailed, "error rate 20.1% over 412 requests > 1%"},
		{"p99", counts(200, 0, 400*time.Millisecond), Counts{}, core.CheckFailed, "p99 "},
		{"ratio", counts(200, 0, 100*time.Millisecond), counts(500, 0, 20*time.Millisecond), core.CheckFailed, "× the replaced versions'"},
		{"ratio skipped with a small base", counts(200, 0, 100*time.Millisecond), counts(50, 0, 20*time.Millisecond), core.CheckPassed, "error rate 0% over 200 requests"},
		{"passes", counts(200, 2, 20*time.Millisecond), counts(500, 0, 20*time.Millisecond), core.CheckPassed, "error rate 1% over 200 requests"},
		// The target's p99 is 5× the base's, but it rests on 3 slow
		// requests of 100: within the noise of such a sample.
		{"ratio within the noise of a small sample", mix(counts(97, 0, 2*time.Millisecond), counts(3, 0, 10*time.Millisecond)),
			counts(2000, 0, 2*time.Millisecond), core.CheckPassed, "error rate 0% over 100 requests"},
		// 3% slow over 1,000 requests is a p99 the sample is sure of.
		{"ratio on a large sample", mix(counts(970, 0, 2*time.Millisecond), counts(30, 0, 10*time.Millisecond)),
			counts(2000, 0, 2*time.Millisecond), core.CheckFailed, "(at least 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Judge(s, tc.target, tc.base)
			if c.Result != tc.result || !strings.HasPrefix(c.Detail, tc.detail) && !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("Judge = %s %q, want %s %q", c.Result, c.Detail, tc.result, tc.detail)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	var c Counts
	for i := 1; i <= 1000; i++ {
		c.Buckets.Observe(time.Duration(i) * time.Millisecond)
		c.Requests++
	}
	got := c.Quantile(0.99)
	if want := 990 * time.Millisecond; got < want || float64(got) > float64(want)*1.125 {
		t.Errorf("p99 of 1..1000 ms = %s, want %s to 12.5%% above", got, want)
	}
}

func TestRecorderTracksOnlyTracked(t *testing.T) {
	rec := NewRecorder()
	rec.ObserveRequest("web", 1, 200, time.Millisecond)
	rec.Track(map[string]bool{"web": true})
	rec.ObserveRequest("web", 1, 503, time.Millisecond)
	rec.ObserveRequest("other", 1, 200, time.Millisecond)
	if c := rec.Counts("web", 1); c.Requests != 1 || c.Errors != 1 {
		t.Errorf("web v1 = %d requests, %d errors; want 1, 1", c.Requests, c.Errors)
	}
	if c := rec.Counts("other", 1); c.Requests != 0 {
		t.Errorf("an untracked service was counted: %d", c.Requests)
	}
	rec.Track(map[string]bool{"web": true, "other": true})
	if c := rec.Counts("web", 1); c.Requests != 1 {
		t.Errorf("tracking another service dropped web's counts: %d", c.Requests)
	}
}
