package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// memFeed is an in-memory feedStore: services by name and a change log.
type memFeed struct {
	mu       sync.Mutex
	services map[string]core.ServiceState
	changes  []store.Change
	horizon  int64 // changes at or before it were pruned
	failRead error // ServiceState fails with it
	watch    chan struct{}
	reads    int  // ServiceState calls
	quiet    bool // commits do not wake the watch (another replica's, not heard yet)
}

func newMemFeed() *memFeed {
	return &memFeed{services: map[string]core.ServiceState{}, watch: make(chan struct{}, 1)}
}

func (m *memFeed) commit(name string, s *core.ServiceState) {
	m.commitBatch(change{name, s})
}

// change is one service's new state (nil: deleted) for commitBatch.
type change struct {
	name  string
	state *core.ServiceState
}

// commitBatch commits the changes at once, as a burst of writes the feed
// sees together: one lock and one notification.
func (m *memFeed) commitBatch(cs ...change) {
	m.mu.Lock()
	for _, c := range cs {
		if c.state == nil {
			delete(m.services, c.name)
		} else {
			m.services[c.name] = *c.state
		}
		rev := int64(len(m.changes)) + 1
		m.changes = append(m.changes, store.Change{Revision: rev, Service: c.name})
	}
	quiet := m.quiet
	m.mu.Unlock()
	if quiet {
		return
	}
	select {
	case m.watch <- struct{}{}:
	default:
	}
}

func (m *memFeed) Revision(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.changes)), nil
}

func (m *memFeed) ChangesSince(_ context.Context, after int64, limit int) ([]store.Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if after < m.horizon {
		return nil, store.ErrCompacted
	}
	var out []store.Change
	for _, c := range m.changes {
		if c.Revision > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *memFeed) Watch(ctx context.Context) <-chan struct{} { return m.watch }

func (m *memFeed) ServiceState(_ context.Context, name string) (core.ServiceState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.failRead != nil {
		return core.ServiceState{}, m.failRead
	}
	s, ok := m.services[name]
	if !ok {
		return s, core.NotFoundf("service %q not found", name)
	}
	return s, nil
}

func (m *memFeed) ServiceStates(context.Context) ([]core.ServiceState, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []core.ServiceState
	for _, s := range m.services {
		out = append(out, s)
	}
	return out, int64(len(m.changes)), nil
}

// recorder is an applier that keeps what it was told.
type recorder struct {
	mu       sync.Mutex
	services map[string]int // name → number of versions
	calls    []string
}

func (r *recorder) Apply(states []core.ServiceState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range states {
		r.services[s.Service.Name] = len(s.Versions)
		r.calls = append(r.calls, "apply "+s.Service.Name)
	}
}

func (r *recorder) Remove(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		delete(r.services, n)
		r.calls = append(r.calls, "remove "+n)
	}
}

func (r *recorder) Replace(states []core.ServiceState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.services = map[string]int{}
	for _, s := range states {
		r.services[s.Service.Name] = len(s.Versions)
	}
	r.calls = append(r.calls, "replace")
}

func (r *recorder) snapshot() (map[string]int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for k, v := range r.services {
		m[k] = v
	}
	return m, append([]string(nil), r.calls...)
}

func svc(name string, versions int) *core.ServiceState {
	s := &core.ServiceState{Service: core.Service{Name: name}}
	for i := range versions {
		s.Versions = append(s.Versions, core.Version{ID: int64(i + 1), Service: name, Number: i + 1})
	}
	return s
}

// TestFeedAppliesOnlyWhatChanged: after the first load, each change reads
// and applies only its own service (once per batch, however many changes
// it had), deletions are removals, and Sync waits until a change is applied.
func TestFeedAppliesOnlyWhatChanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemFeed()
		for _, n := range []string{"a", "b", "c"} {
			st.commit(n, svc(n, 1))
		}
		rec := &recorder{services: map[string]int{}}
		f := runFeed(t, st, rec)
		synctest.Wait()
		st.mu.Lock()
		st.reads = 0
		st.mu.Unlock()

		// One burst: separate commits could each wake the feed, which
		// would then rightly read b once per wake-up.
		st.commitBatch(change{"b", svc("b", 2)}, change{"b", svc("b", 3)}, change{"c", nil})
		if err := f.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		got, calls := rec.snapshot()
		if diff := cmp.Diff(map[string]int{"a": 1, "b": 3}, got); diff != "" {
			t.Fatalf("applied state (-want +got):\n%s", diff)
		}
		st.mu.Lock()
		reads := st.reads
		st.mu.Unlock()
		if reads > 2 {
			t.Fatalf("%d service reads for changes of b and c, want at most 2 (one per service)", reads)
		}
		for _, c := range calls {
			if strings.HasPrefix(c, "apply a") {
				t.Fatalf("unchanged service a was applied again: %v", calls)
			}
		}
	})
}

// TestFeedResyncsWhenCompacted: a feed behind the store's pruned horizon
// reloads everything.
func TestFeedResyncsWhenCompacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemFeed()
		st.commit("a", svc("a", 1))
		rec := &recorder{services: map[string]int{}}
		f := newFeed(st, slog.New(slog.DiscardHandler), rec)
		if err := f.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		st.commit("b", svc("b", 1))
		st.commit("c", svc("c", 1))
		st.mu.Lock()
		st.horizon = 2 // the change of b is gone
		st.mu.Unlock()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() { _ = f.Run(ctx) }()
		if err := f.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		got, calls := rec.snapshot()
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "a,b,c" || calls[len(calls)-1] != "replace" {
			t.Fatalf("after compaction: %v (calls %v), want a full reload with a, b and c", got, calls)
		}
	})
}

// TestFeedRetriesAndSyncSaysWhy: while the store cannot be read, Sync gives
// up after its bound with the reason; once it can, the change is applied
// without another commit.
func TestFeedRetriesAndSyncSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemFeed()
		rec := &recorder{services: map[string]int{}}
		f := runFeed(t, st, rec)
		st.mu.Lock()
		st.failRead = errors.New("disk I/O error")
		st.mu.Unlock()
		st.commit("a", svc("a", 1))
		const bound = 5 * time.Second // as the API bounds it
		began := time.Now()
		sctx, cancel := context.WithTimeout(t.Context(), bound)
		err := f.Sync(sctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "disk I/O error") {
			t.Fatalf("Sync while the store fails: %v, want the store's error", err)
		}
		if d := time.Since(began); d != bound {
			t.Fatalf("Sync gave up after %s, want %s", d, bound)
		}
		st.mu.Lock()
		st.failRead = nil
		st.mu.Unlock()
		time.Sleep(15 * time.Second) // the retry backs off, at most 10 s
		if err := f.Sync(t.Context()); err != nil {
			t.Fatalf("after the store recovered: %v", err)
		}
		if got, _ := rec.snapshot(); got["a"] != 1 {
			t.Fatalf("the change was not applied after the store recovered: %v", got)
		}
	})
}

// TestSyncDoesNotWaitForTheWatch: a change the store's watch has not
// reported (another replica committed it a moment ago) is applied at a
// Sync's request, not after the next resync; the router's catch-up on a
// miss rests on it.
func TestSyncDoesNotWaitForTheWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemFeed()
		st.quiet = true
		rec := &recorder{services: map[string]int{}}
		f := runFeed(t, st, rec)
		synctest.Wait()
		st.commit("a", svc("a", 1))
		began := time.Now()
		sctx, scancel := context.WithTimeout(t.Context(), time.Second)
		defer scancel()
		if err := f.Sync(sctx); err != nil {
			t.Fatalf("Sync of a change the watch did not report: %v", err)
		}
		if d := time.Since(began); d != 0 {
			t.Errorf("Sync took %s of the bubble's time, want none: it waited for a timer", d)
		}
		if got, _ := rec.snapshot(); got["a"] != 1 {
			t.Fatalf("after Sync: %v, want a applied", got)
		}
	})
}

// runFeed loads a feed of st into rec and runs it until the test ends.
func runFeed(t *testing.T, st *memFeed, rec *recorder) *feed {
	t.Helper()
	f := newFeed(st, slog.New(slog.DiscardHandler), rec)
	if err := f.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go func() { _ = f.Run(ctx) }()
	return f
}
