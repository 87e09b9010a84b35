package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// recorder stands in for a test to see how Database ends it.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestSkipsWithoutBinaries: with no server binaries and no
// WISP_TEST_POSTGRES_URL, a test that asks for a database skips, saying
// exactly what is missing.
func TestSkipsWithoutBinaries(t *testing.T) {
	t.Setenv(EnvURL, "")
	t.Setenv("PATH", t.TempDir())
	s := Server{binGlob: filepath.Join(t.TempDir(), "*", "bin")}
	defer s.Stop()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Database(r)
	}()
	<-done
	if r.skipped != MissingBinaries || r.failed != "" {
		t.Fatalf("skipped %q, failed %q; want a skip saying %q", r.skipped, r.failed, MissingBinaries)
	}
}

func TestFindBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	root := t.TempDir()
	install := func(version string, files ...string) {
		dir := filepath.Join(root, version, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	glob := filepath.Join(root, "*", "bin")
	if got := findBinaries(glob); got != "" {
		t.Fatalf("nothing installed: got %q", got)
	}
	install("9", "initdb", "postgres")
	install("13", "initdb", "postgres")
	install("16", "initdb") // a client-only install has no server
	if got, want := findBinaries(glob), filepath.Join(root, "13", "bin"); got != want {
		t.Fatalf("got %q, want the newest complete one %q", got, want)
	}
}
