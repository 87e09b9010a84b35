package storetest

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/store"
)

// testLeases: one holder at a time; the holder renews; another takes the
// lease once it expired or was released; of many at once exactly one wins;
// LeaseHolder names the holder of an unexpired lease only.
func testLeases(t *testing.T, s store.Store) {
	ctx := t.Context()
	holder := func(name, want string) {
		t.Helper()
		got, err := s.LeaseHolder(ctx, name)
		if err != nil {
			t.Fatalf("LeaseHolder(%s): %v", name, err)
		}
		if got != want {
			t.Fatalf("LeaseHolder(%s) = %q, want %q", name, got, want)
		}
	}
	holder("leader", "")
	acquire := func(holder string, ttl time.Duration) bool {
		t.Helper()
		ok, err := s.AcquireLease(ctx, "leader", holder, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// A holder identity may carry an address (package leader's replicas do).
	const a = "a http://10.0.0.1:8081"
	if !acquire(a, time.Minute) {
		t.Fatal("a free lease was refused")
	}
	holder("leader", a)
	if acquire("b", time.Minute) {
		t.Fatal("b took a lease a holds")
	}
	holder("leader", a)
	if !acquire(a, time.Minute) {
		t.Fatal("the holder could not renew")
	}
	if err := s.ReleaseLease(ctx, "leader", a); err != nil {
		t.Fatal(err)
	}
	holder("leader", "")
	if !acquire("a", time.Minute) {
		t.Fatal("a released lease was refused")
	}
	if ok, err := s.AcquireLease(ctx, "other", "b", time.Minute); err != nil || !ok {
		t.Fatalf("a lease of another name: %v, %v", ok, err)
	}
	if err := s.ReleaseLease(ctx, "leader", "b"); err != nil {
		t.Fatal(err)
	}
	if acquire("b", time.Minute) {
		t.Fatal("a release by a non-holder freed the lease")
	}
	if err := s.ReleaseLease(ctx, "leader", "a"); err != nil {
		t.Fatal(err)
	}
	if !acquire("b", 300*time.Millisecond) {
		t.Fatal("a released lease was refused")
	}
	holder("leader", "b")
	if acquire("a", time.Minute) {
		t.Fatal("a took b's lease before it expired")
	}
	time.Sleep(400 * time.Millisecond)
	holder("leader", "") // expired, though nobody took it yet
	if !acquire("a", time.Minute) {
		t.Fatal("an expired lease was refused")
	}
	holder("leader", "a")

	// Of many replicas asking at once for a free lease, exactly one wins.
	const n = 8
	var wg sync.WaitGroup
	wins := make(chan string, n)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := "replica-" + strconv.Itoa(i)
			ok, err := s.AcquireLease(ctx, "race", holder, time.Minute)
			if err != nil {
				errs <- err
			} else if ok {
				wins <- holder
			}
		}()
	}
	wg.Wait()
	close(wins)
	close(errs)
	for err := range errs {
		t.Errorf("concurrent acquire: %v", err)
	}
	if len(wins) != 1 {
		t.Fatalf("%d replicas won the lease at once, want 1", len(wins))
	}
}
