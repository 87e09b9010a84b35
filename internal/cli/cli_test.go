package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/cli"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/fake"
)

// env is a daemon on port 0 and a way to run CLI commands against it with
// the token it saved in its data directory (as on a real machine).
type env struct {
	t       *testing.T
	server  string
	router  string
	dataDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.Addr = "127.0.0.1:0"
	return startEnv(t, cfg, daemon.Options{Out: io.Discard, Runtime: newFake()})
}

// startEnv runs a daemon with cfg until the test ends.
func startEnv(t *testing.T, cfg config.Config, opts daemon.Options) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	d, err := daemon.Open(ctx, cfg, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon Run: %v", err)
		}
	})
	return &env{t: t, server: d.AdminAddr().String(), router: d.RouterAddr().String(), dataDir: cfg.DataDir}
}

func (e *env) run(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"--server", e.server, "--data-dir", e.dataDir}, args...)
	code = cli.Run(e.t.Context(), full, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

func (e *env) ok(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(args...)
	if code != 0 {
		e.t.Fatalf("wisp %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestWalkthrough(t *testing.T) {
	e := newEnv(t)
	if out := e.ok("service", "create", "hello"); !strings.Contains(out, "http://hello.localhost:") {
		t.Fatalf("create: %s", out)
	}
	if out := e.ok("version", "create", "hello", "--image", "hello:1", "--env", "GREETING=Go"); !strings.Contains(out, "100% of traffic") {
		t.Fatalf("first version: %s", out)
	}
	e.ok("version", "create", "hello", "hello:2", "-e", "GREETING=Docker", "--memory", "128Mi", "--timeout", "10s")
	out := e.ok("traffic", "set", "hello", "1=90", "2=10", "--tag", "canary=2")
	if !strings.Contains(out, "canary") || !strings.Contains(out, "90%") {
		t.Fatalf("traffic set: %s", out)
	}
	// Aligned table: every row's TRAFFIC column starts where the header's does.
	out = e.ok("version", "list", "hello")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	col := strings.Index(lines[0], "TRAFFIC")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Fatalf("table not aligned at column %d:\n%s", col, out)
		}
	}
	if !strings.Contains(lines[2], "10%") || !strings.Contains(lines[2], "canary") {
		t.Fatalf("version list: %s", out)
	}
	// Tags are kept when a new split does not name any.
	e.ok("traffic", "set", "hello", "2")
	var cur struct {
		Weights []struct{ Version, Percent int }
		Tags    map[string]int
	}
	if err := json.Unmarshal([]byte(e.ok("traffic", "get", "hello", "-o", "json")), &cur); err != nil {
		t.Fatal(err)
	}
	if len(cur.Weights) != 1 || cur.Weights[0].Percent != 100 || cur.Tags["canary"] != 2 {
		t.Fatalf("traffic get -o json: %+v", cur)
	}
	e.ok("traffic", "rollback", "hello")
	hist := e.ok("traffic", "history", "hello")
	if n := strings.Count(hist, "\n"); n < 5 || !strings.Contains(hist, "rollback to entry") {
		t.Fatalf("history: %s", hist)
	}
	out = e.ok("service", "set", "hello", "--idle-timeout", "2s", "--pause-after", "0")
	if !strings.Contains(out, "Idle timeout:") || !strings.Contains(out, "2s") || !strings.Contains(out, "never") {
		t.Fatalf("service set: %s", out)
	}
	out = e.ok("service", "update", "hello", "--request-logs", "on", "--log-max-bytes", "20MiB", "--log-max-age", "2d")
	if !strings.Contains(out, "Request logs:") || !strings.Contains(out, "on") || !strings.Contains(out, "20Mi, 48h0m0s") {
		t.Fatalf("service update with the log policy: %s", out)
	}
	out = e.ok("service", "get", "hello")
	if !strings.Contains(out, "Async concurrency:") || !strings.Contains(out, "5 attempts, backoff 1s to 5m0s") || !strings.Contains(out, "24h0m0s") {
		t.Fatalf("service get with the default async policy: %s", out)
	}
	out = e.ok("service", "update", "hello", "--async-concurrency", "4", "--max-attempts", "10", "--min-backoff", "500ms",
		"--max-backoff", "1m", "--max-age", "2d")
	if !strings.Contains(out, "Async concurrency:") || !strings.Contains(out, "4") || !strings.Contains(out, "10 attempts, backoff 500ms to 1m0s") ||
		!strings.Contains(out, "48h0m0s") {
		t.Fatalf("service update with the async policy: %s", out)
	}
	// Standbys: the line says what they cost from the memory limits of the
	// versions with traffic (v1: none, v2: 128Mi), and a bad value is
	// refused naming the field.
	if out := e.ok("service", "get", "hello"); !strings.Contains(out, "Standby:") || !strings.Contains(out, "none (a version with no traffic") {
		t.Fatalf("service get without standbys: %s", out)
	}
	out = e.ok("service", "update", "hello", "--standby", "2")
	if !strings.Contains(out, "2 paused instance(s) per version with traffic: memory, not CPU") ||
		!strings.Contains(out, "v1: no memory limit") || !strings.Contains(out, "v2: up to 2 × 128Mi (its memory limit) = 256Mi") {
		t.Fatalf("service update --standby 2: %s", out)
	}
	var got core.Service
	if err := json.Unmarshal([]byte(e.ok("service", "get", "hello", "-o", "json")), &got); err != nil || got.Policy.Standby != 2 {
		t.Fatalf("service get -o json after --standby 2: %+v %v", got.Policy, err)
	}
	if out := e.ok("service", "list"); !strings.Contains(out, "STANDBY") || !strings.Contains(out, "2 paused") {
		t.Fatalf("service list after --standby 2: %s", out)
	}
	if code, _, stderr := e.run("service", "update", "hello", "--standby", "17"); code != 1 || !strings.Contains(stderr, "standby must be between 0 and 16, got 17") {
		t.Fatalf("service update --standby 17: exit %d, %s", code, stderr)
	}
	if code, _, stderr := e.run("service", "create", "cold", "--standby", "11"); code != 1 || !strings.Contains(stderr, "must not exceed max_instances") {
		t.Fatalf("service create --standby 11: exit %d, %s", code, stderr)
	}
	// Issue 15: a min schedule (repeatable), keep_previous, singleton.
	out = e.ok("service", "update", "hello", "--standby", "0", "--min-schedule", "mon-fri 08:00-18:00 Europe/Paris=2",
		"--min-schedule", "sat 10:00-12:00 UTC=1", "--keep-previous", "30m")
	if !strings.Contains(out, "Min schedule:") || !strings.Contains(out, "mon-fri 08:00-18:00 Europe/Paris=2; sat 10:00-12:00 UTC=1") ||
		!strings.Contains(out, "Keep previous:") || !strings.Contains(out, "30m0s") {
		t.Fatalf("service update --min-schedule --keep-previous: %s", out)
	}
	if code, _, stderr := e.run("service", "update", "hello", "--min-schedule", "mon-fri 08:00-18:00 Mars/Base=2"); code != 2 ||
		!strings.Contains(stderr, `unknown time zone "Mars/Base"`) {
		t.Fatalf("service update with an unknown zone: exit %d, %s", code, stderr)
	}
	if out := e.ok("service", "update", "hello", "--min-schedule", "none"); !strings.Contains(out, "Min schedule:       none") && !strings.Contains(out, "none") {
		t.Fatalf("service update --min-schedule none: %s", out)
	}
	if got := mustServiceJSON(t, e, "hello"); len(got.Policy.MinInstancesSchedule) != 0 || got.Policy.KeepPrevious != core.Duration(30*60e9) {
		t.Fatalf("after --min-schedule none: %+v", got.Policy)
	}
	if code, _, stderr := e.run("service", "create", "cron", "--singleton", "--max-instances", "2"); code != 1 ||
		!strings.Contains(stderr, "policy.singleton and policy.max_instances conflict") {
		t.Fatalf("service create --singleton --max-instances 2: exit %d, %s", code, stderr)
	}
	e.ok("service", "create", "cron", "--singleton")
	if out := e.ok("service", "get", "cron"); !strings.Contains(out, "Singleton:") || !strings.Contains(out, "yes (at most one instance") ||
		!strings.Contains(out, "no effect: a singleton") {
		t.Fatalf("service get of a singleton: %s", out)
	}
	if got := mustServiceJSON(t, e, "cron"); !got.Policy.Singleton || got.Policy.MaxInstances != 1 {
		t.Fatalf("singleton policy: %+v", got.Policy)
	}
	e.ok("service", "delete", "cron")
	var list []map[string]any
	if err := json.Unmarshal([]byte(e.ok("service", "list", "-o", "json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("service list -o json: %v %v", list, err)
	}
	e.ok("version", "get", "hello", "v2")

	// A request through the router starts an instance that `wisp instances` shows.
	if out := e.ok("instances"); !strings.Contains(out, "No instances are running") {
		t.Fatalf("instances before any request: %s", out)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+e.router+"/", nil)
	req.Host = "v2--hello.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "Hello, Docker!\n" {
		t.Fatalf("through the router: %q", body)
	}
	out = e.ok("instances", "hello")
	if !strings.Contains(out, "hello-v2-") || !strings.Contains(out, "ready") || !strings.Contains(out, "127.0.0.1:") {
		t.Fatalf("instances: %s", out)
	}
	var ins []map[string]any
	if err := json.Unmarshal([]byte(e.ok("instances", "-o", "json")), &ins); err != nil || len(ins) != 1 || ins[0]["version"] != float64(2) {
		t.Fatalf("instances -o json: %v %v", ins, err)
	}
	if code, _, stderr := e.run("instances", "nope"); code != 1 || !strings.Contains(stderr, `service "nope" not found`) {
		t.Fatalf("instances of a missing service: %d %s", code, stderr)
	}
	e.ok("service", "delete", "hello")
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	e.ok("service", "create", "hello")
	e.ok("version", "create", "hello", "hello:1")
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"server message for a bad name", []string{"service", "create", "Bad"}, 1, `Error: service name "Bad" must start with a lowercase letter`},
		{"server message for weights", []string{"traffic", "set", "hello", "1=50"}, 1, "weights must sum to exactly 100, got 50"},
		{"missing service", []string{"service", "get", "nope"}, 1, `service "nope" not found`},
		{"conflict", []string{"version", "delete", "hello", "1"}, 1, "carries 100% of traffic"},
		{"bad weight syntax", []string{"traffic", "set", "hello", "1:100"}, 2, "is not VERSION=PERCENT"},
		{"bad version arg", []string{"version", "get", "hello", "latest"}, 2, "is not a version number"},
		{"no image", []string{"version", "create", "hello"}, 2, "an image is required"},
		{"bad duration", []string{"service", "set", "hello", "--idle-timeout", "soon"}, 2, "--idle-timeout"},
		{"zero timeout", []string{"version", "create", "hello", "hello:1", "--timeout", "0s"}, 2, "--timeout must be between 1s and 1h, got 0s"},
		{"nothing to set", []string{"service", "set", "hello"}, 2, "nothing to change"},
		{"bad request-logs", []string{"service", "set", "hello", "--request-logs", "maybe"}, 2, `--request-logs: "maybe" is neither on nor off`},
		{"bad log size", []string{"service", "set", "hello", "--log-max-bytes", "lots"}, 2, "--log-max-bytes"},
		{"log size too small", []string{"service", "set", "hello", "--log-max-bytes", "1KiB"}, 1, "log_max_bytes must be between 1 MiB"},
		{"bad log age", []string{"service", "set", "hello", "--log-max-age", "xd"}, 2, "--log-max-age"},
		{"log age too long", []string{"service", "set", "hello", "--log-max-age", "100d"}, 1, "log_max_age must be between 1m and 2160h"},
		{"async concurrency 0", []string{"service", "set", "hello", "--async-concurrency", "0"}, 1, "async_concurrency must be between 1 and 1000"},
		{"max attempts too many", []string{"service", "set", "hello", "--max-attempts", "101"}, 1, "max_attempts must be between 1 and 100"},
		{"bad min backoff", []string{"service", "set", "hello", "--min-backoff", "soon"}, 2, "--min-backoff"},
		{"min backoff too short", []string{"service", "set", "hello", "--min-backoff", "1ms"}, 1, "min_backoff must be between 10ms and 1h"},
		{"max backoff below min", []string{"service", "set", "hello", "--min-backoff", "10s", "--max-backoff", "5s"}, 1, "max_backoff (5s) must not be below min_backoff (10s)"},
		{"bad max age", []string{"service", "set", "hello", "--max-age", "xd"}, 2, "--max-age"},
		{"max age too long", []string{"service", "set", "hello", "--max-age", "8d"}, 1, "max_age must be between 1s and 168h"},
		{"negative rollback entry", []string{"traffic", "rollback", "hello", "--to", "-1"}, 2, "--to must be an entry"},
		{"bad output", []string{"service", "list", "-o", "yaml"}, 2, "--output must be table or json"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"missing args", []string{"traffic", "set", "hello"}, 2, "requires at least 2 arg"},
		{"wrong token", []string{"--token", "nope", "service", "list"}, 1, "the admin token is wrong"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := e.run(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("got exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
	// No server: the error says what to do.
	var out, errb bytes.Buffer
	code := cli.Run(t.Context(), []string{"--server", "127.0.0.1:1", "--token", "x", "service", "list"}, &out, &errb, func(string) string { return "" })
	if code != 1 || !strings.Contains(errb.String(), "is `wisp serve` running?") {
		t.Fatalf("unreachable server: exit %d, %q", code, errb.String())
	}
}

func newFake() *fake.Runtime {
	return fake.New(fake.Config{Images: map[string]string{"hello:1": "sha256:hello1", "hello:2": "sha256:hello2"}})
}

func TestBuildPrintDockerfile(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"go.mod": "module hello\n", "wisp.yaml": "port: 9000\nbuild:\n  base_image: scratch\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Run(t.Context(), args, &out, &errb, func(string) string { return "" })
		return code, out.String(), errb.String()
	}
	code, out, errOut := run("build", "--print-dockerfile", dir)
	if code != 0 || !strings.Contains(out, "FROM golang:1.26 AS build") || !strings.Contains(out, "FROM scratch") || !strings.Contains(out, "ENV PORT=9000") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := run("build", "--print-dockerfile", "--base-image", "other", dir); code != 0 || !strings.Contains(out, "FROM other\n") {
		t.Fatalf("--base-image: %d %s", code, out)
	}
	if code, _, errOut := run("build", dir); code != 2 || !strings.Contains(errOut, "--print-dockerfile") {
		t.Fatalf("without the flag: %d %s", code, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "wisp.yaml"), []byte("prot: 9000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run("build", "--print-dockerfile", dir); code != 1 || !strings.Contains(errOut, "wisp.yaml") || !strings.Contains(errOut, "prot") {
		t.Fatalf("bad wisp.yaml: %d %s", code, errOut)
	}
}

// TestServerAndTokenFromEnv: WISP_SERVER and WISP_TOKEN stand in for the
// flags, and the flags win over them.
func TestServerAndTokenFromEnv(t *testing.T) {
	e := newEnv(t)
	tok, err := config.ReadToken(e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"WISP_SERVER": e.server, "WISP_TOKEN": tok}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := cli.Run(t.Context(), args, &out, &errb, func(k string) string { return env[k] })
		return code, out.String() + errb.String()
	}
	// No --server, no --data-dir: the environment is all it has.
	if code, out := run("service", "create", "fromenv"); code != 0 || !strings.Contains(out, "Created service fromenv") {
		t.Fatalf("with WISP_SERVER and WISP_TOKEN: %d %s", code, out)
	}
	if code, out := run("--token", "wrong-token", "service", "list"); code != 1 || !strings.Contains(out, "the admin token is wrong") {
		t.Fatalf("--token must win over WISP_TOKEN: %d %s", code, out)
	}
	env["WISP_TOKEN"] = "wrong-token"
	if code, out := run("service", "list"); code != 1 || !strings.Contains(out, "the admin token is wrong") {
		t.Fatalf("a wrong WISP_TOKEN: %d %s", code, out)
	}
}

// TestInstancesShowBackoffAndLiveness: a version whose starts fail shows a
// backoff row with the failure and when the next start is; a liveness probe
// given on the command line is kept with the version.
func TestInstancesShowBackoffAndLiveness(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	rt := fake.New(fake.Config{Images: map[string]string{"hello:1": "sha256:hello1"},
		Behave: func(s runtime.InstanceSpec) fake.Behavior {
			for _, kv := range s.Env {
				if kv == "CRASH=1" {
					return fake.Behavior{ExitAtOnce: true, ExitCode: 3, Logs: "panic: no config\n"}
				}
			}
			return fake.Behavior{}
		}})
	e := startEnv(t, cfg, daemon.Options{Out: io.Discard, Runtime: rt})
	e.ok("service", "create", "crashy")
	e.ok("version", "create", "crashy", "hello:1", "--env", "CRASH=1", "--liveness-path", "/healthz", "--liveness-period", "5s")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+e.router+"/", nil)
	req.Host = "crashy.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("a crashing version answered %d, want 503", resp.StatusCode)
	}
	out := e.ok("instances", "crashy")
	for _, want := range []string{"backoff", "NOTE", "next start in", "exited with code 3", "panic: no config"} {
		if !strings.Contains(out, want) {
			t.Fatalf("wisp instances:\n%s\nwant %q in it", out, want)
		}
	}
	v := e.ok("version", "get", "crashy", "1", "-o", "json")
	if !strings.Contains(v, `"liveness"`) || !strings.Contains(v, `"path": "/healthz"`) || !strings.Contains(v, `"period": "5s"`) {
		t.Fatalf("version get: %s, want its liveness probe", v)
	}
	code, _, errOut := e.run("version", "create", "crashy", "hello:1", "--liveness-path", "/a", "--liveness-tcp")
	if code != 2 || !strings.Contains(errOut, "not both") {
		t.Fatalf("--liveness-path with --liveness-tcp: exit %d %q, want a usage error", code, errOut)
	}
	code, _, errOut = e.run("version", "create", "crashy", "hello:1", "--liveness-period", "5s")
	if code != 2 || !strings.Contains(errOut, "needs --liveness-path PATH or --liveness-tcp") {
		t.Fatalf("--liveness-period alone: exit %d %q, want a usage error", code, errOut)
	}
}

func mustServiceJSON(t *testing.T, e *env, name string) core.Service {
	t.Helper()
	var got core.Service
	if err := json.Unmarshal([]byte(e.ok("service", "get", name, "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	return got
}
