package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

// BenchmarkServiceStates reads the state of every service, as the daemon
// does at start-up and on each full resync, at 1,000 and 10,000 services
// with one version (and its 100% entry) each.
func BenchmarkServiceStates(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			s := populated(b, n)
			b.ResetTimer()
			for b.Loop() {
				states, _, err := s.ServiceStates(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if len(states) != n {
					b.Fatalf("got %d states, want %d", len(states), n)
				}
			}
		})
	}
}

// BenchmarkServiceState reads one service's state among 10,000, as the
// daemon does for each change.
func BenchmarkServiceState(b *testing.B) {
	s := populated(b, 10000)
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.ServiceState(b.Context(), "svc-05000"); err != nil {
			b.Fatal(err)
		}
	}
}

func populated(b *testing.B, n int) *sqlite.Store {
	b.Helper()
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "wisp.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	start := time.Now()
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		if _, err := s.CreateService(b.Context(), core.Service{Name: name, Policy: core.DefaultPolicy()}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.CreateVersion(b.Context(), core.Version{Service: name, ImageID: "sha256:0123",
			VersionSpec: core.VersionSpec{Image: "hello:1", Env: []string{"GREETING=Go"}}}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("created %d services with a version each in %s", n, time.Since(start).Round(time.Millisecond))
	return s
}
