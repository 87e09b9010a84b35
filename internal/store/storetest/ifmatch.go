package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// testIfMatch: a conditional traffic write happens only while the entry it
// names is the current one, and a failed condition changes nothing.
func testIfMatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustVersion(t, s, "hello", "x:1")
	mustVersion(t, s, "hello", "x:2")
	first := mustTraffic(t, s, "hello")

	e, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 50, 2, 50)}, first.ID)
	if err != nil {
		t.Fatalf("SetTraffic with the current entry: %v", err)
	}
	before := mustHistory(t, s, "hello")
	_, err = s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(2, 100)}, first.ID)
	wantKind(t, err, core.ErrPreconditionFailed, "SetTraffic with a stale entry")
	_, err = s.RollbackTraffic(ctx, "hello", 0, first.ID)
	wantKind(t, err, core.ErrPreconditionFailed, "RollbackTraffic with a stale entry")
	if diff := cmp.Diff(before, mustHistory(t, s, "hello")); diff != "" {
		t.Fatalf("failed conditions changed the history (-before +after):\n%s", diff)
	}
	if cur := mustTraffic(t, s, "hello"); cur.ID != e.ID {
		t.Fatalf("current entry %d, want %d", cur.ID, e.ID)
	}

	rb, err := s.RollbackTraffic(ctx, "hello", 0, e.ID)
	if err != nil {
		t.Fatalf("RollbackTraffic with the current entry: %v", err)
	}
	if diff := cmp.Diff(first.Weights, rb.Weights); diff != "" {
		t.Fatalf("rollback weights (-want +got):\n%s", diff)
	}
	if _, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(2, 100)}, core.AnyEntry); err != nil {
		t.Fatalf("SetTraffic with AnyEntry: %v", err)
	}
	if _, err := s.RollbackTraffic(ctx, "hello", 0, core.AnyEntry); err != nil {
		t.Fatalf("RollbackTraffic with AnyEntry: %v", err)
	}

	// A service without traffic has no entry to match.
	mustService(t, s, "empty")
	_, err = s.SetTraffic(ctx, "empty", core.Traffic{Weights: weights(1, 100)}, core.AnyEntry)
	wantKind(t, err, core.ErrPreconditionFailed, "SetTraffic with AnyEntry on a service without traffic")
	_, err = s.SetTraffic(ctx, "empty", core.Traffic{Weights: weights(1, 100)}, first.ID)
	wantKind(t, err, core.ErrPreconditionFailed, "SetTraffic with an entry on a service without traffic")
	if hist := mustHistory(t, s, "empty"); len(hist) != 0 {
		t.Fatalf("failed conditions appended to a service without traffic: %+v", hist)
	}
	// A missing service is not found, whatever the condition.
	_, err = s.SetTraffic(ctx, "missing", core.Traffic{Weights: weights(1, 100)}, first.ID)
	wantKind(t, err, core.ErrNotFound, "SetTraffic of a missing service with an entry")
	_, err = s.RollbackTraffic(ctx, "missing", 0, first.ID)
	wantKind(t, err, core.ErrNotFound, "RollbackTraffic of a missing service with an entry")
	// An entry of another service never matches.
	mustService(t, s, "other")
	o := mustVersion(t, s, "other", "y:1")
	otherEntry := mustTraffic(t, s, o.Service)
	_, err = s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 100)}, otherEntry.ID)
	wantKind(t, err, core.ErrPreconditionFailed, "SetTraffic with another service's entry")
}

// testConcurrentIfMatch: of 20 concurrent writes that name the same current
// entry, exactly one wins; the others fail with ErrPreconditionFailed.
func testConcurrentIfMatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	for i := 1; i <= 4; i++ {
		mustVersion(t, s, "hello", fmt.Sprintf("x:%d", i))
	}
	cur := mustTraffic(t, s, "hello")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.SetTraffic(ctx, "hello", core.Traffic{
				Weights: weights(1+i%4, 100), Message: fmt.Sprintf("update %d", i),
			}, cur.ID)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, core.ErrPreconditionFailed):
		default:
			t.Errorf("concurrent conditional SetTraffic: got %v, want success or ErrPreconditionFailed", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d writes naming the same entry won, want exactly 1", won, n)
	}
	if hist := mustHistory(t, s, "hello"); len(hist) != 2 {
		t.Fatalf("history has %d entries, want 2 (the first version's and the one winner)", len(hist))
	}
}
