//go:build unix

package dockertest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Exclusive holds the engine for the rest of the test: no other test that
// calls Exclusive, in any test binary of this machine, runs meanwhile.
// `go test ./...` runs packages in parallel, and a test that measures how
// fast containers start (the autoscaler's) means nothing while another
// package builds images on the same engine. The lock is a file lock, so a
// test binary that dies releases it.
func Exclusive(t testing.TB) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "wisp-dockertest.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600) //nolint:gosec // G304: a fixed name in the temp dir
	if err != nil {
		t.Fatalf("engine lock: %v", err)
	}
	began := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		t.Fatalf("engine lock %s: %v", path, err)
	}
	if d := time.Since(began); d > time.Second {
		t.Logf("waited %s for the engine (another test package held it)", d.Round(time.Millisecond))
	}
	t.Cleanup(func() { _ = f.Close() }) // closing releases the lock
}
