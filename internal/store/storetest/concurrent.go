package storetest

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// The cases here run writers at once against one service (or one log), the
// way several API requests or several replicas on one database do, and
// check that the result is one of the orders the writes could have
// happened in, one after the other.

// together runs fn(0..n-1) on n goroutines released at the same moment and
// waits for them.
func together(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// testConcurrentServiceCreates: of concurrent creates of one name exactly
// one wins and the others get ErrAlreadyExists, recording no change;
// concurrent creates of distinct names all win.
func testConcurrentServiceCreates(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := mustRevision(t, s)
	const n = 10
	var (
		mu      sync.Mutex
		winners []core.Service
		errs    []error
	)
	together(n, func(int) {
		sv, err := s.CreateService(ctx, core.Service{Name: "hello", Policy: core.DefaultPolicy()})
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			winners = append(winners, sv)
		} else {
			errs = append(errs, err)
		}
	})
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent creates of one name won, want exactly 1 (errors: %v)", len(winners), n, errs)
	}
	for _, err := range errs {
		wantKind(t, err, core.ErrAlreadyExists, "a concurrent create of a taken name")
	}
	list, err := s.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != winners[0].ID {
		t.Fatalf("after concurrent creates: services %+v, want only the winner %+v", list, winners[0])
	}
	if changes := mustChanges(t, s, base, 100); len(changes) != 1 || changes[0].Service != "hello" {
		t.Fatalf("concurrent creates recorded %+v, want one change of hello (the winner's)", changes)
	}

	ids := map[int64]bool{}
	together(n, func(i int) {
		sv, err := s.CreateService(ctx, core.Service{Name: fmt.Sprintf("svc%d", i), Policy: core.DefaultPolicy()})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("concurrent create of a free name: %v", err)
			return
		}
		if ids[sv.ID] {
			t.Errorf("ID %d assigned twice", sv.ID)
		}
		ids[sv.ID] = true
	})
	if list, err := s.ListServices(ctx); err != nil || len(list) != n+1 {
		t.Fatalf("after %d concurrent creates of distinct names: %d services, %v; want %d", n, len(list), err, n+1)
	}
}

// testConcurrentDeploys: concurrent deploys of one service all succeed with
// the numbers 1..n, each once, and the traffic history lists them in the
// order of their numbers: each entry gives the version it deployed its
// share and names no later version.
func testConcurrentDeploys(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	const n = 10
	var mu sync.Mutex
	byNumber := map[int]core.Version{}
	messages := map[int]string{}
	together(n, func(i int) {
		msg := fmt.Sprintf("deploy %d", i)
		v, err := s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: fmt.Sprintf("x:%d", i)}}, 10, msg)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("concurrent DeployVersion: %v", err)
			return
		}
		if _, dup := byNumber[v.Number]; dup {
			t.Errorf("number %d assigned twice", v.Number)
		}
		byNumber[v.Number], messages[v.Number] = v, msg
	})
	if t.Failed() {
		t.FailNow()
	}
	for num := 1; num <= n; num++ {
		if _, ok := byNumber[num]; !ok {
			t.Fatalf("the numbers of %d versions created at once are %v, want 1 to %d", n, slices.Sorted(maps.Keys(byNumber)), n)
		}
	}
	listed := mustVersions(t, s, "hello")
	if len(listed) != n {
		t.Fatalf("ListVersions after %d concurrent deploys: %d versions", n, len(listed))
	}
	for _, v := range listed {
		if want := byNumber[v.Number]; v.ID != want.ID || v.Image != want.Image {
			t.Fatalf("stored version %d is %d (%s), the deploy returned %d (%s)", v.Number, v.ID, v.Image, want.ID, want.Image)
		}
	}
	hist := mustHistory(t, s, "hello")
	if len(hist) != n {
		t.Fatalf("%d deploys with a share made %d history entries, want %d", n, len(hist), n)
	}
	for k, e := range hist {
		num := k + 1
		share := 10
		if num == 1 {
			share = 100 // a first version gets all of it
		}
		if e.Message != messages[num] || e.PercentOf(num) != share {
			t.Fatalf("history entry %d is %q giving v%d %d%%, want %q (the deploy of v%d) giving it %d%%: the history is not in the order the numbers were given",
				k, e.Message, num, e.PercentOf(num), messages[num], num, share)
		}
		for _, w := range e.Weights {
			if w.Version > num {
				t.Fatalf("history entry %d (deploy of v%d) names the later v%d: %+v", k, num, w.Version, e.Weights)
			}
		}
	}
	if cur := mustTraffic(t, s, "hello"); cur.ID != hist[n-1].ID {
		t.Fatalf("current entry %d, want the newest %d", cur.ID, hist[n-1].ID)
	}
}

// testConcurrentTrafficHistory: concurrent traffic writes, plain,
// conditional on any entry and rollbacks, all succeed; the history holds
// every accepted write exactly once, as it was returned, in the order of
// the entry IDs, and that order is one the writes could have happened in
// one at a time: each rollback copied the entry before the one it
// replaced.
func testConcurrentTrafficHistory(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	for i := 1; i <= 4; i++ {
		mustVersion(t, s, "hello", fmt.Sprintf("x:%d", i))
	}
	if _, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 50, 2, 50), Message: "start"}, 0); err != nil {
		t.Fatal(err)
	}
	base := mustRevision(t, s)
	const n = 20
	var mu sync.Mutex
	accepted := map[int64]core.TrafficEntry{}
	rollbacks := map[int64]bool{}
	together(n, func(i int) {
		var (
			e   core.TrafficEntry
			err error
		)
		switch i % 3 {
		case 0:
			e, err = s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1+i%4, 100), Message: fmt.Sprintf("set %d", i)}, 0)
		case 1:
			e, err = s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1+i%4, 60, 1+(i+1)%4, 40),
				Tags: map[string]int{"canary": 1 + (i+1)%4}, Sticky: true, Message: fmt.Sprintf("set %d if any", i)}, core.AnyEntry)
		default:
			e, err = s.RollbackTraffic(ctx, "hello", 0, 0)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("concurrent traffic write %d: %v", i, err)
			return
		}
		if _, dup := accepted[e.ID]; dup {
			t.Errorf("entry ID %d returned twice", e.ID)
		}
		accepted[e.ID] = e
		rollbacks[e.ID] = i%3 == 2
	})
	if t.Failed() {
		t.FailNow()
	}
	hist := mustHistory(t, s, "hello")
	if len(hist) != n+2 {
		t.Fatalf("history has %d entries, want %d (2 before and %d accepted writes)", len(hist), n+2, n)
	}
	for j := 1; j < len(hist); j++ {
		if hist[j].ID <= hist[j-1].ID {
			t.Fatalf("history is not in entry ID order at %d: %d after %d", j, hist[j].ID, hist[j-1].ID)
		}
	}
	for j, e := range hist[2:] {
		j += 2
		want, ok := accepted[e.ID]
		if !ok {
			t.Fatalf("history entry %d (ID %d, %q) was not returned by any write", j, e.ID, e.Message)
		}
		if diff := cmp.Diff(want.Traffic, e.Traffic); diff != "" {
			t.Fatalf("history entry %d differs from what its write returned (-returned +stored):\n%s", j, diff)
		}
		delete(accepted, e.ID)
		if rollbacks[e.ID] {
			if diff := cmp.Diff(hist[j-2].Weights, e.Weights); diff != "" {
				t.Fatalf("rollback at history entry %d must copy entry %d, the one before the entry it replaced (-want +got):\n%s", j, j-2, diff)
			}
		}
		if err := e.Validate("hello", func(n int) bool { return n >= 1 && n <= 4 }); err != nil {
			t.Fatalf("history entry %d is invalid: %v", j, err)
		}
	}
	if len(accepted) != 0 {
		t.Fatalf("accepted writes missing from the history: %+v", accepted)
	}
	if cur := mustTraffic(t, s, "hello"); cur.ID != hist[len(hist)-1].ID {
		t.Fatalf("current entry %d, want the newest %d", cur.ID, hist[len(hist)-1].ID)
	}
	changes := mustChanges(t, s, base, 100)
	if len(changes) != n {
		t.Fatalf("%d accepted traffic writes recorded %d changes, want %d", n, len(changes), n)
	}
}

// testConcurrentFeed: a reader that follows ChangesSince while writers
// commit changes of several services at once sees every change exactly
// once, in revision order: no change becomes visible behind a revision the
// reader has already passed.
func testConcurrentFeed(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := mustRevision(t, s)
	const writers, each = 4, 15
	done := make(chan struct{})
	go func() {
		defer close(done)
		together(writers, func(w int) {
			name := fmt.Sprintf("svc%d", w)
			if _, err := s.CreateService(ctx, core.Service{Name: name, Policy: core.DefaultPolicy()}); err != nil {
				t.Errorf("create %s: %v", name, err)
				return
			}
			for i := range each {
				n := 1 + i%3
				if _, err := s.UpdatePolicy(ctx, name, core.PolicyPatch{MinInstances: &n}); err != nil {
					t.Errorf("update %s: %v", name, err)
					return
				}
			}
		})
	}()
	var seen []store.Change
	applied := base
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true // one more read after the last commit
		default:
		}
		list, err := s.ChangesSince(ctx, applied, 1000)
		if err != nil {
			t.Fatalf("ChangesSince(%d): %v", applied, err)
		}
		for _, c := range list {
			if c.Revision <= applied {
				t.Fatalf("ChangesSince(%d) returned revision %d", applied, c.Revision)
			}
			applied = c.Revision
		}
		seen = append(seen, list...)
	}
	if t.Failed() {
		t.FailNow()
	}
	all := mustChanges(t, s, base, 1000)
	if len(all) != writers*(1+each) {
		t.Fatalf("%d changes committed, want %d", len(all), writers*(1+each))
	}
	if diff := cmp.Diff(all, seen); diff != "" {
		t.Fatalf("the follower's changes differ from the log's: a change became visible behind its revision (-log +followed):\n%s", diff)
	}
}
