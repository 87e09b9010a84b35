package storetest

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

func testRollouts(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "web")
	mustVersion(t, s, "web", "img:1")
	mustVersion(t, s, "web", "img:2")
	mustVersion(t, s, "web", "img:3")
	if _, err := s.SetTraffic(ctx, "web", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 60}, {Version: 2, Percent: 40}},
		Tags: map[string]int{"old": 1}, Sticky: true}, 0); err != nil {
		t.Fatal(err)
	}
	before := mustTraffic(t, s, "web")
	if _, err := s.GetRollout(ctx, "web"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("GetRollout before any: got %v, want ErrNotFound", err)
	}
	rev := mustRevision(t, s)
	r, err := s.CreateRollout(ctx, "web", core.RolloutSpec{To: 3, Steps: []int{10, 50, 100}, Interval: core.Duration(1e9), MinRequests: 20})
	if err != nil {
		t.Fatalf("CreateRollout: %v", err)
	}
	if got := mustChanges(t, s, rev, 10); len(got) != 1 {
		t.Errorf("CreateRollout recorded %d changes, want 1", len(got))
	}
	if r.ID == 0 || r.State != core.RolloutRunning || r.Step != 1 || r.Percent != 10 || r.Before != before.ID {
		t.Errorf("CreateRollout = %+v, want running at step 1 (10%%) before entry %d", r, before.ID)
	}
	if *r.MaxErrorRate != core.DefaultMaxErrorRate || *r.MaxP99Ratio != core.DefaultMaxP99Ratio {
		t.Errorf("defaults not filled: %+v", r.RolloutSpec)
	}
	if diff := cmp.Diff([]int{1, 2}, r.Replaces); diff != "" {
		t.Errorf("Replaces (-want +got):\n%s", diff)
	}
	cur := mustTraffic(t, s, "web")
	if r.LastEntry != cur.ID {
		t.Errorf("LastEntry = %d, want the step's entry %d", r.LastEntry, cur.ID)
	}
	// The step keeps every field of the entry it derives from.
	if diff := cmp.Diff(core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 54}, {Version: 2, Percent: 36}, {Version: 3, Percent: 10}},
		Tags: map[string]int{"old": 1}, Sticky: true, Message: "rollout " + itoa(r.ID) + ": step 1/3, 10% to version 3"}, cur.Traffic); diff != "" {
		t.Errorf("first step's entry (-want +got):\n%s", diff)
	}
	got, err := s.GetRollout(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r.ID || got.Step != 1 || got.To != 3 || got.Interval != core.Duration(1e9) || got.StepStartedAt.Sub(r.StepStartedAt).Abs() > 1000 {
		t.Errorf("GetRollout = %+v, want %+v", got, r)
	}

	// One active rollout per service.
	_, err = s.CreateRollout(ctx, "web", core.RolloutSpec{To: 2})
	wantKind(t, err, core.ErrConflict, "a second rollout")
	if err != nil && !strings.Contains(err.Error(), "rollout "+itoa(r.ID)) {
		t.Errorf("second rollout: %q does not name the running one", err)
	}

	// An update with a traffic appends it and moves LastEntry.
	rev = mustRevision(t, s)
	up, err := s.UpdateRollout(ctx, "web", func(r core.Rollout, cur core.TrafficEntry, before *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
		if before == nil || before.ID != r.Before {
			t.Errorf("UpdateRollout gave before %+v, want entry %d", before, r.Before)
		}
		r.Step = 2
		r.Check = &core.RolloutCheck{Step: 1, Requests: 412, Errors: 1, Result: core.CheckPassed}
		tr := r.StepTraffic(cur.Traffic)
		return r, &tr, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustChanges(t, s, rev, 10); len(got) != 1 {
		t.Errorf("UpdateRollout with traffic recorded %d changes, want 1", len(got))
	}
	cur = mustTraffic(t, s, "web")
	if up.LastEntry != cur.ID || cur.PercentOf(3) != 50 || up.Percent != 50 {
		t.Errorf("after step 2: rollout %+v, traffic %+v", up, cur)
	}
	got, _ = s.GetRollout(ctx, "web")
	if got.Check == nil || got.Check.Requests != 412 || got.Step != 2 {
		t.Errorf("stored check = %+v at step %d", got.Check, got.Step)
	}
	// A rollout-only update records no change; fn's error writes nothing.
	rev = mustRevision(t, s)
	if _, err := s.UpdateRollout(ctx, "web", func(r core.Rollout, _ core.TrafficEntry, _ *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
		r, err := r.Transition(core.RolloutPaused)
		return r, nil, err
	}); err != nil {
		t.Fatal(err)
	}
	if got := mustChanges(t, s, rev, 10); len(got) != 0 {
		t.Errorf("a rollout-only update recorded %d changes, want 0", len(got))
	}
	_, err = s.UpdateRollout(ctx, "web", func(r core.Rollout, _ core.TrafficEntry, _ *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
		r, err := r.Transition(core.RolloutFailed) // paused cannot fail
		return r, nil, err
	})
	wantKind(t, err, core.ErrConflict, "paused to failed")
	if act, err := s.ActiveRollouts(ctx); err != nil || len(act) != 1 || act[0].State != core.RolloutPaused {
		t.Errorf("ActiveRollouts = %+v, %v; want the paused one", act, err)
	}
	// An invalid traffic from fn is refused whole.
	_, err = s.UpdateRollout(ctx, "web", func(r core.Rollout, _ core.TrafficEntry, _ *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
		r.State = core.RolloutAborted
		return r, &core.Traffic{Weights: []core.Weight{{Version: 9, Percent: 100}}}, nil
	})
	wantKind(t, err, core.ErrInvalid, "traffic to a missing version")
	if got, _ := s.GetRollout(ctx, "web"); got.State != core.RolloutPaused {
		t.Errorf("after a refused update: state %s, want paused", got.State)
	}
	// Abort restores the entry before, whole.
	ab, err := s.UpdateRollout(ctx, "web", func(r core.Rollout, _ core.TrafficEntry, before *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
		r, err := r.Transition(core.RolloutAborted)
		tr := core.Restore(*before, "aborted")
		return r, &tr, err
	})
	if err != nil {
		t.Fatal(err)
	}
	cur = mustTraffic(t, s, "web")
	if diff := cmp.Diff(core.Restore(before, "aborted"), cur.Traffic); diff != "" {
		t.Errorf("restored entry (-want +got):\n%s", diff)
	}
	if ab.State != core.RolloutAborted {
		t.Errorf("state %s, want aborted", ab.State)
	}
	if act, _ := s.ActiveRollouts(ctx); len(act) != 0 {
		t.Errorf("ActiveRollouts after abort = %+v, want none", act)
	}
	// A new rollout may start now.
	if _, err := s.CreateRollout(ctx, "web", core.RolloutSpec{To: 3}); err != nil {
		t.Errorf("a rollout after an abort: %v", err)
	}
	// Deleting the service removes its rollouts.
	if err := s.DeleteService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if act, _ := s.ActiveRollouts(ctx); len(act) != 0 {
		t.Errorf("ActiveRollouts after the service's delete = %+v", act)
	}
}

func testRolloutErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.CreateRollout(ctx, "nope", core.RolloutSpec{To: 1})
	wantKind(t, err, core.ErrNotFound, "a rollout of a missing service")
	mustService(t, s, "api")
	_, err = s.CreateRollout(ctx, "api", core.RolloutSpec{To: 1})
	wantKind(t, err, core.ErrInvalid, "a rollout to a missing version")
	mustVersion(t, s, "api", "img:1")
	mustVersion(t, s, "api", "img:2")
	_, err = s.CreateRollout(ctx, "api", core.RolloutSpec{To: 1})
	wantKind(t, err, core.ErrConflict, "a rollout to the version at 100%")
	for _, tc := range []struct {
		name  string
		spec  core.RolloutSpec
		field string
	}{
		{"steps not increasing", core.RolloutSpec{To: 2, Steps: []int{50, 25, 100}}, "steps"},
		{"last step not 100", core.RolloutSpec{To: 2, Steps: []int{5, 50}}, "steps"},
		{"step above 100", core.RolloutSpec{To: 2, Steps: []int{5, 101}}, "steps"},
		{"step 0", core.RolloutSpec{To: 2, Steps: []int{0, 100}}, "steps"},
		{"interval too short", core.RolloutSpec{To: 2, Interval: core.Duration(1e6)}, "interval"},
		{"interval too long", core.RolloutSpec{To: 2, Interval: core.Duration(2 * 3600e9)}, "interval"},
		{"error rate above 100", core.RolloutSpec{To: 2, MaxErrorRate: ptr(101.0)}, "max_error_rate"},
		{"negative error rate", core.RolloutSpec{To: 2, MaxErrorRate: ptr(-1.0)}, "max_error_rate"},
		{"ratio below 1", core.RolloutSpec{To: 2, MaxP99Ratio: ptr(0.5)}, "max_p99_ratio"},
		{"negative p99", core.RolloutSpec{To: 2, MaxP99: -1}, "max_p99"},
		{"negative min requests", core.RolloutSpec{To: 2, MinRequests: -1}, "min_requests"},
		{"version 0", core.RolloutSpec{To: 0}, "to"},
		{"missing version", core.RolloutSpec{To: 7}, "to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := mustRevision(t, s)
			_, err := s.CreateRollout(ctx, "api", tc.spec)
			wantKind(t, err, core.ErrInvalid, tc.name)
			if f := core.ErrorField(err); f != tc.field {
				t.Errorf("field = %q, want %q (%v)", f, tc.field, err)
			}
			if got := mustChanges(t, s, rev, 10); len(got) != 0 {
				t.Errorf("a refused rollout recorded %d changes", len(got))
			}
		})
	}
	if _, err := s.GetRollout(ctx, "api"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("refused rollouts left one: %v", err)
	}
	_, err = s.UpdateRollout(ctx, "api", func(r core.Rollout, _ core.TrafficEntry, _ *core.TrafficEntry) (core.Rollout, *core.Traffic, error) {
		return r, nil, nil
	})
	wantKind(t, err, core.ErrNotFound, "updating a service without rollouts")
}

func ptr[T any](v T) *T { return &v }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
