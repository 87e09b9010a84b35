package daemon_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// load sends requests to host from two workers until the returned stop is
// called; errors are ignored (the rollout's numbers are what is checked).
func (w *wisp) load(host string) (stop func()) {
	ctx, cancel := context.WithCancel(w.t.Context())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+w.router+"/", nil)
				req.Host = host
				if resp, err := w.http.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// warm pins a request to each version, so that no step waits for a cold
// start.
func (w *wisp) warm(host string, versions ...string) {
	w.t.Helper()
	for _, v := range versions {
		req, _ := http.NewRequestWithContext(w.t.Context(), "GET", "http://"+w.router+"/healthz", nil)
		req.Host, req.Header = host, http.Header{"Wisp-Version": {v}}
		resp, err := w.http.Do(req)
		if err != nil {
			w.t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
}

// waitRollout polls the service's rollout until it is in a final state.
func (w *wisp) waitRollout(service string, within time.Duration) core.Rollout {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := w.c.GetRollout(w.t.Context(), service)
		if err != nil {
			w.t.Fatal(err)
		}
		if !r.State.Active() {
			return r
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("rollout still %s at step %d after %s: %s", r.State, r.Step, within, r.Reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rolloutSpec keeps the default p99 ratio (1.5): it compares the 95%
// bounds of the two p99s, so the noise of a busy test machine over a few
// hundred requests does not fail a healthy step.
func rolloutSpec(to int, interval time.Duration, steps ...int) core.RolloutSpec {
	return core.RolloutSpec{To: to, Steps: steps, Interval: core.Duration(interval), MinRequests: 20}
}

func historyMessages(t *testing.T, w *wisp, service string) []string {
	t.Helper()
	h, err := w.c.TrafficHistory(t.Context(), service)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range h {
		out = append(out, e.Message)
	}
	return out
}

func countPrefix(list []string, sub string) int {
	n := 0
	for _, m := range list {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// TestDockerRollout: a healthy version reaches 100% through its steps; a
// version that answers 500 to 20% of requests rolls back at its first
// check, and the history says why with the numbers.
func TestDockerRollout(t *testing.T) {
	setup(t, "roll")
	w := startWisp(t, t.TempDir(), nil)
	ctx := t.Context()
	const interval = time.Second

	w.deploy("roll-ok", core.PolicyPatch{}, []string{"GREETING=one"}, []string{"GREETING=two"})
	w.warm("roll-ok.localhost", "1", "2")
	stop := w.load("roll-ok.localhost")
	r, err := w.c.StartRollout(ctx, "roll-ok", rolloutSpec(2, interval, 25, 100))
	if err != nil {
		t.Fatal(err)
	}
	got := w.waitRollout("roll-ok", 30*time.Second)
	stop()
	if got.State != core.RolloutSucceeded {
		t.Fatalf("healthy rollout %s: %s", got.State, got.Reason)
	}
	msgs := historyMessages(t, w, "roll-ok")
	for _, want := range []string{"step 1/2, 25% to version 2", "step 2/2, 100% to version 2"} {
		if countPrefix(msgs, want) != 1 {
			t.Errorf("history %q: want one %q", msgs, want)
		}
	}
	if tr, _ := w.c.GetTraffic(ctx, "roll-ok"); tr.PercentOf(2) != 100 {
		t.Errorf("after success: %+v", tr.Weights)
	}
	t.Logf("healthy: rollout %d, last check %s", r.ID, got.Check.Detail)

	w.deploy("roll-bad", core.PolicyPatch{}, []string{"GREETING=one"}, []string{"GREETING=bad", "ERROR_EVERY=5"})
	w.warm("roll-bad.localhost", "1", "2")
	stop = w.load("roll-bad.localhost")
	r, err = w.c.StartRollout(ctx, "roll-bad", rolloutSpec(2, interval, 25, 100))
	if err != nil {
		t.Fatal(err)
	}
	got = w.waitRollout("roll-bad", 30*time.Second)
	stop()
	if got.State != core.RolloutFailed || got.Check == nil || got.Check.Step != 1 {
		t.Fatalf("failing rollout: %s, check %+v; want failed at step 1", got.State, got.Check)
	}
	// The first check, within one interval of the step's end (plus the
	// controller's tick and a margin for a loaded machine).
	if late := got.Check.At.Sub(r.StepStartedAt); late > interval+time.Second {
		t.Errorf("failed %s after the step began, want within one interval (%s) and a tick", late, interval)
	}
	last := historyMessages(t, w, "roll-bad")
	msg := last[len(last)-1]
	if !strings.HasPrefix(msg, "rollout ") || !strings.Contains(msg, "failed at step 1 (25%): error rate ") || !strings.Contains(msg, " requests > 1%") {
		t.Errorf("rollback message %q", msg)
	}
	if rate := got.Check.ErrorRate; rate < 10 || rate > 30 {
		t.Errorf("measured error rate %.1f%%, want about 20%%", rate)
	}
	if tr, _ := w.c.GetTraffic(ctx, "roll-bad"); tr.PercentOf(1) != 100 {
		t.Errorf("after the rollback: %+v, want version 1 at 100%%", tr.Weights)
	}
	t.Logf("failing: %s", msg)
}

// TestDockerRolloutSurvivesRestart: a daemon stopped mid-step comes back,
// and the rollout continues with the remaining time of its step (it does
// not start over).
func TestDockerRolloutSurvivesRestart(t *testing.T) {
	setup(t, "rollrs")
	dir := t.TempDir()
	w := startWisp(t, dir, nil)
	ctx := t.Context()
	w.deploy("rollrs", core.PolicyPatch{}, []string{"GREETING=one"}, []string{"GREETING=two"})
	const interval = 4 * time.Second
	r, err := w.c.StartRollout(ctx, "rollrs", rolloutSpec(2, interval, 50, 100))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // mid-step: what the test is about, not an assertion
	w.stop()

	w2 := startWisp(t, dir, nil)
	w2.warm("rollrs.localhost", "1", "2")
	stop := w2.load("rollrs.localhost")
	got := w2.waitRollout("rollrs", 60*time.Second)
	stop()
	if got.State != core.RolloutSucceeded {
		t.Fatalf("after a restart: %s (%s)", got.State, got.Reason)
	}
	msgs := historyMessages(t, w2, "rollrs")
	if n := countPrefix(msgs, "step 1/2, 50%"); n != 1 {
		t.Errorf("history %q: step 1 written %d times, want once (continued, not restarted)", msgs, n)
	}
	if n := countPrefix(msgs, "step 2/2, 100%"); n != 1 {
		t.Errorf("history %q: want step 2 once", msgs)
	}
	t.Logf("rollout %d continued after a restart: %q", r.ID, msgs)
}
