package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStoreHealth: wisp_store_up follows whether the store answers.
func TestStoreHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		rev := func(context.Context) (int64, error) {
			if failing.Load() {
				return 0, errors.New("connection refused")
			}
			return 7, nil
		}
		h, err := newStoreHealth(prometheus.NewRegistry(), rev, slog.New(slog.DiscardHandler), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() { _ = h.Run(ctx) }()
		if got := testutil.ToFloat64(h.up); got != 1 {
			t.Fatalf("up %v at start, want 1", got)
		}
		failing.Store(true)
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if got, errs := testutil.ToFloat64(h.up), testutil.ToFloat64(h.errors); got != 0 || errs != 1 {
			t.Fatalf("store down: up %v errors %v, want 0 and 1", got, errs)
		}
		failing.Store(false)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := testutil.ToFloat64(h.up); got != 1 {
			t.Fatalf("store back: up %v, want 1", got)
		}
	})
}
