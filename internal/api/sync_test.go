package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/api"
)

// TestSyncBarrierHoldsTheAnswer: a change answers only after Sync returned,
// and Sync runs after the change is committed.
func TestSyncBarrierHoldsTheAnswer(t *testing.T) {
	entered := make(chan bool, 1) // whether the service existed when Sync began
	release := make(chan struct{})
	var h *harness
	h = newHarness(t, api.WithSyncer(syncFunc(func(ctx context.Context) error {
		_, err := h.store.GetService(ctx, "hello")
		entered <- err == nil
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})))
	answered := make(chan int, 1)
	go func() {
		status, _ := h.send(t, "POST", "/v1/services", `{"name":"hello"}`, "Bearer "+token)
		answered <- status
	}()
	select {
	case committed := <-entered:
		if !committed {
			t.Fatal("Sync ran before the change was committed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a change did not call Sync")
	}
	select {
	case status := <-answered:
		t.Fatalf("the change answered %d before Sync returned", status)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case status := <-answered:
		if status != http.StatusCreated {
			t.Fatalf("got %d, want 201", status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer after Sync returned")
	}
}

// TestSyncBarrierWhen: which requests wait, and what a failed Sync answers.
func TestSyncBarrierWhen(t *testing.T) {
	var (
		calls atomic.Int64
		fail  atomic.Pointer[error] // nil: Sync succeeds
	)
	h := newHarness(t, api.WithSyncer(syncFunc(func(context.Context) error {
		calls.Add(1)
		if err := fail.Load(); err != nil {
			return *err
		}
		return nil
	})))
	h.fixture()
	cases := []struct {
		name, method, path, body string
		status                   int
		syncs                    int64
	}{
		{"GET never syncs", "GET", "/v1/services/hello/traffic", "", 200, 0},
		{"HEAD never syncs", "HEAD", "/v1/services", "", 200, 0},
		{"a 4xx does not sync", "PUT", "/v1/services/hello/traffic", `{"weights":[]}`, 422, 0},
		{"a 404 route does not sync", "POST", "/v1/nothing", `{}`, 404, 0},
		{"a 401 does not sync", "DELETE", "/v1/services/hello", "", 401, 0},
		{"PUT syncs once", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":2,"percent":100}]}`, 200, 1},
		{"PATCH syncs", "PATCH", "/v1/services/hello", `{"policy":{"min_instances":1}}`, 200, 1},
		{"POST syncs", "POST", "/v1/services/hello/traffic/rollback", "", 201, 1},
		{"a 204 syncs", "DELETE", "/v1/services/other", "", 204, 1},
		{"a seed route syncs", "POST", "/serviceDefinitions", `{"name":"seeded"}`, 201, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			auth := "Bearer " + token
			if tc.status == 401 {
				auth = ""
			}
			before := calls.Load()
			status, body := h.send(t, tc.method, tc.path, tc.body, auth)
			if status != tc.status {
				t.Fatalf("got %d, want %d: %s", status, tc.status, body)
			}
			if n := calls.Load() - before; n != tc.syncs {
				t.Fatalf("Sync called %d times, want %d", n, tc.syncs)
			}
		})
	}

	t.Run("a failed Sync still answers the committed change, with a Warning", func(t *testing.T) {
		err := errors.New("router is behind")
		fail.Store(&err)
		resp, body := h.call("POST", "/v1/services", `{"name":"late"}`, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("got %d, want 201: %s", resp.StatusCode, body)
		}
		w := resp.Header.Get("Warning")
		if !strings.HasPrefix(w, `199 wisp "`) || !strings.Contains(w, "not live in the router yet: router is behind") {
			t.Fatalf("Warning %q, want 199 wisp \"…not live in the router yet: router is behind\"", w)
		}
		if _, err := h.store.GetService(t.Context(), "late"); err != nil {
			t.Fatalf("the change must be committed: %v", err)
		}
	})
	t.Run("a successful change carries no Warning", func(t *testing.T) {
		fail.Store(nil)
		resp, body := h.call("POST", "/v1/services", `{"name":"fine"}`, nil)
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Warning") != "" {
			t.Fatalf("got %d with Warning %q: %s", resp.StatusCode, resp.Header.Get("Warning"), body)
		}
	})
}

// TestSyncBarrierIsBounded: a Sync that never returns costs SyncTimeout,
// then the change answers with a Warning.
func TestSyncBarrierIsBounded(t *testing.T) {
	st := newHarness(t).store
	h := serve(t, api.Config{Token: token, SyncTimeout: 100 * time.Millisecond}, st,
		api.WithSyncer(syncFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })))
	start := time.Now()
	resp, body := h.call("POST", "/v1/services", `{"name":"hello"}`, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("got %d: %s", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the answer took %s; SyncTimeout is 100ms", d)
	}
	if w := resp.Header.Get("Warning"); !strings.Contains(w, context.DeadlineExceeded.Error()) {
		t.Fatalf("Warning %q, want it to name the deadline", w)
	}
}

// TestNoSyncer: without a Syncer a change answers at once, without Warning.
func TestNoSyncer(t *testing.T) {
	h := serve(t, api.Config{Token: token}, newHarness(t).store)
	resp, body := h.call("POST", "/v1/services", `{"name":"hello"}`, nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Warning") != "" {
		t.Fatalf("got %d, Warning %q: %s", resp.StatusCode, resp.Header.Get("Warning"), body)
	}
}
