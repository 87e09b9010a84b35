package leader

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// memLease is a lease on a shared clock; a holder can be cut off (its calls
// fail or hang) to play a killed or frozen replica.
type memLease struct {
	mu      sync.Mutex
	holder  string
	expires time.Time
	cut     map[string]bool // holder → its calls fail
	hang    map[string]bool // holder → its calls block until ctx ends
}

func newMemLease() *memLease { return &memLease{cut: map[string]bool{}, hang: map[string]bool{}} }

func (m *memLease) AcquireLease(ctx context.Context, _ string, holder string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	if m.hang[holder] {
		m.mu.Unlock()
		<-ctx.Done()
		return false, ctx.Err()
	}
	defer m.mu.Unlock()
	if m.cut[holder] {
		return false, errors.New("connection refused")
	}
	now := time.Now()
	if m.holder == holder || m.holder == "" || !now.Before(m.expires) {
		m.holder, m.expires = holder, now.Add(ttl)
		return true, nil
	}
	return false, nil
}

func (m *memLease) ReleaseLease(_ context.Context, _ string, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cut[holder] || m.hang[holder] {
		return errors.New("connection refused")
	}
	if m.holder == holder {
		m.holder = ""
	}
	return nil
}

func (m *memLease) set(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
}

// watch counts replicas leading at once and records the largest count.
type watch struct {
	now, max atomic.Int32
	became   chan string
}

func (w *watch) lead(name string) func(ctx context.Context) {
	return func(ctx context.Context) {
		if n := w.now.Add(1); n > w.max.Load() {
			w.max.Store(n)
		}
		w.became <- name
		<-ctx.Done()
		w.now.Add(-1)
	}
}

func start(t *testing.T, ctx context.Context, l Lease, name string, w *watch) (*Elector, context.CancelFunc) {
	t.Helper()
	e, err := New(Config{Lease: l, Holder: name, TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { _ = e.Run(cctx, w.lead(name)) }()
	return e, cancel
}

// TestHandover: one of two replicas leads; when it is killed (its store
// calls fail) the other leads within TTL+Renew, and never both at once.
func TestHandover(t *testing.T) {
	for _, mode := range []string{"killed", "frozen"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newMemLease()
				w := &watch{became: make(chan string, 4)}
				a, stopA := start(t, t.Context(), l, "a", w)
				defer stopA()
				first := <-w.became
				if first != "a" || !a.Leading() {
					t.Fatalf("first leader %s", first)
				}
				b, stopB := start(t, t.Context(), l, "b", w)
				defer stopB()
				time.Sleep(30 * time.Second)
				if b.Leading() || len(w.became) != 0 {
					t.Fatal("b leads while a renews its lease")
				}
				cutAt := time.Now()
				l.set(func() {
					if mode == "killed" {
						l.cut["a"] = true
					} else {
						l.hang["a"] = true
					}
				})
				if got := <-w.became; got != "b" {
					t.Fatalf("new leader %s", got)
				}
				if took := time.Since(cutAt); took > 12*time.Second {
					t.Fatalf("handover took %v, want ≤ TTL+Renew (12s)", took)
				}
				if a.Leading() {
					t.Fatal("a still leads")
				}
				if w.max.Load() != 1 {
					t.Fatalf("%d replicas led at once", w.max.Load())
				}
			})
		})
	}
}

// TestShutdownReleases: a leader that shuts down releases its lease, so the
// other replica leads within one Renew, not a TTL.
func TestShutdownReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLease()
		w := &watch{became: make(chan string, 4)}
		_, stopA := start(t, t.Context(), l, "a", w)
		<-w.became
		b, stopB := start(t, t.Context(), l, "b", w)
		defer stopB()
		time.Sleep(5 * time.Second)
		at := time.Now()
		stopA()
		if got := <-w.became; got != "b" {
			t.Fatalf("%s became leader after a shut down", got)
		}
		if took := time.Since(at); took > 2*time.Second || !b.Leading() {
			t.Fatalf("b leads %v after a shut down (leading %v), want within one Renew (2s)", took, b.Leading())
		}
	})
}

// TestLeaderLoopsReturn: when the leader's loops return on their own the
// term ends and the replica competes again.
func TestLeaderLoopsReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, err := New(Config{Lease: newMemLease(), Holder: "a", TTL: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var terms atomic.Int32
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			_ = e.Run(ctx, func(context.Context) { terms.Add(1) })
		}()
		time.Sleep(7 * time.Second)
		cancel()
		synctest.Wait()
		if n := terms.Load(); n < 2 {
			t.Fatalf("%d terms, want the replica to lead again after its loops returned", n)
		}
	})
}

func TestNewChecks(t *testing.T) {
	if _, err := New(Config{Holder: "a"}); err == nil {
		t.Fatal("no lease accepted")
	}
	if _, err := New(Config{Lease: newMemLease()}); err == nil {
		t.Fatal("no holder accepted")
	}
	if _, err := New(Config{Lease: newMemLease(), Holder: "a", TTL: time.Second, Renew: time.Second}); err == nil {
		t.Fatal("renew ≥ TTL/2 accepted")
	}
}
