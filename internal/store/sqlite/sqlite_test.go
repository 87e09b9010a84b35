package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
	"github.com/wisp-run/wisp/internal/store/sqlite"
	"github.com/wisp-run/wisp/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.OpenConfig(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "wisp.db"), KeepChanges: storetest.KeepChanges})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReopen checks that data survives closing and reopening the file, and
// that migrations are not applied twice.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateService(t.Context(), core.Service{Name: "hello", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVersion(t.Context(), core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "hello:1", Env: []string{"GREETING=Go"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	v, err := s.GetVersion(t.Context(), "hello", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v.Env[0] != "GREETING=Go" {
		t.Fatalf("env after reopen: %v", v.Env)
	}
	if _, err := s.GetTraffic(t.Context(), "hello"); err != nil {
		t.Fatalf("traffic after reopen: %v", err)
	}
}
