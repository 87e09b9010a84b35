package daemon_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime/fake"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

// start runs a daemon on dataDir with port 0 and returns a client of it and a
// function that stops it and waits for a clean exit.
func start(t *testing.T, dataDir string, out io.Writer) (*apiclient.Client, func()) {
	t.Helper()
	d, stop := runDaemon(t, dataDir, nil, daemon.Options{Out: out, Runtime: newFake()})
	return apiclient.New(d.AdminAddr().String(), d.Token()), stop
}

// runDaemon opens and runs a daemon on dataDir with both servers on port 0
// (edit may change the config) and returns it with an idempotent stop that
// waits for a clean exit; stop also runs at the end of the test.
func runDaemon(t *testing.T, dataDir string, edit func(*config.Config), opts daemon.Options) (*daemon.Daemon, func()) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	// The daemon's last log lines are printed when the test failed (CI
	// keeps nothing else); WISP_TEST_LOG streams its whole debug log.
	tail := &logTail{max: 200}
	lh := slog.Handler(slog.NewTextHandler(tail, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if os.Getenv("WISP_TEST_LOG") != "" {
		lh = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the daemon's last log lines:\n%s", tail)
		}
	})
	d, err := daemon.Open(ctx, cfg, slog.New(lh), opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("daemon did not stop within 10s")
		}
	}
	t.Cleanup(stop)
	return d, stop
}

// TestRestartKeepsEverything: services, versions and every traffic entry
// survive a restart of the daemon.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	c, stop := start(t, dir, &out)
	ctx := t.Context()
	if _, err := c.CreateService(ctx, "hello", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"Go", "Docker", "sqlite"} {
		if _, err := c.CreateVersion(ctx, "hello", core.VersionSpec{Image: "hello:1", Env: []string{"GREETING=" + g}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SetTraffic(ctx, "hello", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 10}, {Version: 2, Percent: 30}, {Version: 3, Percent: 60}},
		Tags: map[string]int{"canary": 3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RollbackTraffic(ctx, "hello", 0); err != nil {
		t.Fatal(err)
	}
	services, _ := c.ListServices(ctx)
	versions, _ := c.ListVersions(ctx, "hello")
	history, _ := c.TrafficHistory(ctx, "hello")
	stop()

	// Where the token is was announced once (not the token: output ends
	// up in journald), and it was saved with mode 0600.
	tok, err := config.ReadToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), tok) || !strings.Contains(out.String(), config.TokenPath(dir)) {
		t.Fatalf("the first start must say where the token is saved, without printing it: %q", out.String())
	}
	st, err := os.Stat(config.TokenPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", st.Mode().Perm())
	}

	out.Reset()
	c2, _ := start(t, dir, &out)
	if out.Len() != 0 {
		t.Fatalf("second start printed the token again: %q", out.String())
	}
	services2, err := c2.ListServices(ctx)
	if err != nil {
		t.Fatalf("after restart, the saved token must still work: %v", err)
	}
	versions2, _ := c2.ListVersions(ctx, "hello")
	history2, _ := c2.TrafficHistory(ctx, "hello")
	opt := cmpopts.EquateApproxTime(time.Millisecond)
	// The router listens on a new port 0 each run, so the URL differs.
	if diff := cmp.Diff(services, services2, opt, cmpopts.IgnoreFields(core.Service{}, "URL")); diff != "" {
		t.Errorf("services after restart (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(versions, versions2, opt); diff != "" {
		t.Errorf("versions after restart (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(history, history2, opt); diff != "" {
		t.Errorf("history after restart (-before +after):\n%s", diff)
	}
	if len(history2) != 3 {
		t.Errorf("got %d history entries, want 3", len(history2))
	}
}

func TestOpenErrors(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.Addr = "127.0.0.1:0"
	cfg.LogFormat = "yaml"
	if _, err := daemon.Open(t.Context(), cfg, slog.New(slog.DiscardHandler), daemon.Options{Out: io.Discard, Runtime: newFake()}); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("bad config: got %v", err)
	}
	// A second daemon on the same address says what to do.
	cfg.LogFormat = "text"
	c, _ := start(t, t.TempDir(), io.Discard)
	_ = c
	d1, err := daemon.Open(t.Context(), cfg, slog.New(slog.DiscardHandler), daemon.Options{Out: io.Discard, Runtime: newFake()})
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.DataDir = t.TempDir()
	cfg2.AdminAddr = d1.AdminAddr().String()
	_, err = daemon.Open(t.Context(), cfg2, slog.New(slog.DiscardHandler), daemon.Options{Out: io.Discard, Runtime: newFake()})
	if err == nil || !strings.Contains(err.Error(), "--admin-addr") {
		t.Fatalf("address in use: got %v", err)
	}
	// Stopped before it began to serve (Ctrl-C during start-up): a clean
	// stop, and what Open took is given back.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := d1.Run(ctx); err != nil {
		t.Fatalf("Run stopped before serving: %v, want a clean stop", err)
	}
	for _, addr := range []string{d1.AdminAddr().String(), d1.RouterAddr().String()} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s still held after Run stopped: %v", addr, err)
		}
		_ = ln.Close()
	}
}

func newFake() *fake.Runtime {
	return fake.New(fake.Config{Images: map[string]string{"hello:1": "sha256:hello1", "hello:2": "sha256:hello2"}})
}

// TestAdapterChoice: the store and runtime come from --store and
// --runtime; an unknown or unavailable one is a start-up error that says
// what is accepted, and a store URL's password never shows in it.
func TestAdapterChoice(t *testing.T) {
	base := config.Default()
	base.DataDir = t.TempDir()
	base.AdminAddr, base.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cases := []struct {
		name string
		edit func(*config.Config)
		want string
	}{
		{"unknown store", func(c *config.Config) { c.Store = "etcd://x" }, "accepted: sqlite:///path/to/wisp.db"},
		{"postgres, nothing listens", func(c *config.Config) { c.Store = "postgres://wisp:hunter2@127.0.0.1:1/wisp" }, "cannot connect to 127.0.0.1:1"},
		{"postgres, password in the query", func(c *config.Config) {
			c.Store = "postgres://127.0.0.1:1/wisp?user=wisp&password=hunter2&sslmode=disable"
		}, "cannot connect to 127.0.0.1:1"},
		{"unknown runtime", func(c *config.Config) { c.Runtime = "firecracker" }, "must be one of docker"},
		{"unknown builder", func(c *config.Config) { c.Builder = "buildah" }, "must be one of docker, none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			_, err := daemon.Open(t.Context(), cfg, slog.New(slog.DiscardHandler), daemon.Options{Out: io.Discard, Runtime: newFake()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
	// A store elsewhere than the data dir is used, and kept across restarts.
	dbPath := filepath.Join(t.TempDir(), "elsewhere", "state.db")
	cfg := base
	cfg.Store = "sqlite://" + dbPath
	d, stop := runDaemon(t, cfg.DataDir, func(c *config.Config) { c.Store = cfg.Store }, daemon.Options{Runtime: newFake()})
	c := apiclient.New(d.AdminAddr().String(), d.Token())
	if _, err := c.CreateService(t.Context(), "elsewhere", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := os.Stat(dbPath); err != nil {
		t.Fatalf("the store at --store was not used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "wisp.db")); err == nil {
		t.Fatal("a database was created in the data dir although --store names another file")
	}
}

// TestStoreChangesReachTheRouter: a change written straight to the store,
// not through an API handler, reaches the router through the store's change
// feed: a new service, its versions, a traffic change, and the deletion.
func TestStoreChangesReachTheRouter(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "wisp.db"))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := runDaemon(t, t.TempDir(), nil, daemon.Options{Runtime: newFake(), Store: st})
	get := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.RouterAddr().String()+"/", nil)
		req.Host = "direct.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// eventually: the feed applies a change within a second here.
	eventually := func(what string, ok func(int, string) bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			code, body := get()
			if ok(code, body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %d %q after 2s", what, code, body)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if code, _ := get(); code != 404 {
		t.Fatalf("before: %d, want 404", code)
	}
	if _, err := st.CreateService(ctx, core.Service{Name: "direct", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"one", "two"} {
		if _, err := st.CreateVersion(ctx, core.Version{Service: "direct", ImageID: "sha256:hello1",
			VersionSpec: core.VersionSpec{Image: "hello:1", Env: []string{"GREETING=" + g}}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually("a new service and version", func(code int, body string) bool { return code == 200 && body == "Hello, one!\n" })
	if _, err := st.SetTraffic(ctx, "direct", core.Traffic{Weights: []core.Weight{{Version: 2, Percent: 100}}}, 0); err != nil {
		t.Fatal(err)
	}
	eventually("a traffic change", func(code int, body string) bool { return code == 200 && body == "Hello, two!\n" })
	if err := st.DeleteService(ctx, "direct"); err != nil {
		t.Fatal(err)
	}
	eventually("a deletion", func(code int, _ string) bool { return code == 404 })
}

// logTail is an io.Writer that keeps the last max lines written to it.
type logTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(string(p)) {
		l.lines = append(l.lines, strings.TrimRight(line, "\n"))
	}
	if over := len(l.lines) - l.max; over > 0 {
		l.lines = append(l.lines[:0], l.lines[over:]...)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
