package cli_test

// Integration tests of wisp deploy on the real Docker Engine: each pack
// builds and runs a function that is called through the router. No registry
// can be reached here, so each pack's base image is a stand-in assembled
// from this machine's own Go, Node.js, Python and shell (dockertest.Standin)
// and passed with --base-image / --builder-image; the pack's code path is
// the same as with its standard images.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/build"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

const svcPrefix = "dpl-"

// dockerEnv is a daemon on the real engine, with the watchdog built from
// this repository.
func dockerEnv(t *testing.T, edit func(*config.Config)) *env {
	t.Helper()
	dockertest.Skip(t)
	// Image builds load the engine for tens of seconds; tests that time
	// it (the autoscaler's) take turns with them.
	dockertest.Exclusive(t)
	removeBuiltImages(t) // first, so that its cleanup runs after the daemon's
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DockerNetwork = "wisp-test"
	cfg.StopGrace = 2 * time.Second
	cfg.Watchdog = watchdogBinary(t)
	if edit != nil {
		edit(&cfg)
	}
	e := startEnv(t, cfg, daemon.Options{Out: io.Discard})
	dockertest.CleanupService(t, svcPrefix)
	return e
}

var (
	watchdogOnce sync.Once
	watchdogPath string
	watchdogErr  error
)

// watchdogBinary builds cmd/wisp-watchdog once per test process.
func watchdogBinary(t *testing.T) string {
	t.Helper()
	watchdogOnce.Do(func() {
		root, err := dockertest.ModuleRoot()
		if err != nil {
			watchdogErr = err
			return
		}
		dir, err := os.MkdirTemp("", "wisp-watchdog-")
		if err != nil {
			watchdogErr = err
			return
		}
		watchdogPath = filepath.Join(dir, "wisp-watchdog")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", watchdogPath, "./cmd/wisp-watchdog")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			watchdogErr = fmt.Errorf("build the watchdog: %w\n%s", err, out)
		}
	})
	if watchdogErr != nil {
		t.Fatal(watchdogErr)
	}
	return watchdogPath
}

// removeBuiltImages removes the images earlier runs built for these tests,
// so that every pack really builds (identical source would be reused).
func removeBuiltImages(t *testing.T) {
	t.Helper()
	clean := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
		defer cancel()
		if err := dockertest.RemoveLabelledImages(ctx, build.LabelBuildService, svcPrefix); err != nil {
			t.Logf("remove built images: %v", err)
		}
	}
	clean()
	t.Cleanup(clean)
}

func hostOutput(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v (this test assembles a stand-in base image from the machine's own %s)", name, strings.Join(args, " "), err, name)
	}
	return strings.TrimSpace(string(out))
}

var standinMu sync.Mutex

func standin(t *testing.T, s dockertest.Standin) string {
	t.Helper()
	standinMu.Lock()
	defer standinMu.Unlock()
	start := time.Now()
	if _, err := dockertest.BuildStandin(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	t.Logf("stand-in %s ready in %s", s.Tag, time.Since(start).Round(time.Millisecond))
	return s.Tag
}

const basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func shellStandin(t *testing.T) string {
	return standin(t, dockertest.Standin{Tag: "wisp-standin-shell:1", Paths: []string{"/bin/sh", "/usr/bin/env", "/usr/bin/cat"}})
}

func staticStandin(t *testing.T) string {
	return standin(t, dockertest.Standin{Tag: "wisp-standin-static:1"})
}

func goStandin(t *testing.T) string {
	goroot := hostOutput(t, "go", "env", "GOROOT")
	return standin(t, dockertest.Standin{
		Tag:   "wisp-standin-go:" + strings.TrimPrefix(hostOutput(t, "go", "env", "GOVERSION"), "go"),
		Paths: []string{goroot, "/bin/sh"},
		Skip:  []string{"test", "testdata", "*_test.go", "api", "doc", "misc", ".git"},
		Env: []string{"PATH=" + goroot + "/bin:" + basePath, "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=-mod=mod",
			"GOTELEMETRY=off", "GOCACHE=/tmp/go-cache", "GOPATH=/tmp/go", "HOME=/root"},
	})
}

func nodeStandin(t *testing.T) string {
	node, err := filepath.EvalSymlinks(hostOutput(t, "sh", "-c", "command -v node"))
	if err != nil {
		t.Fatal(err)
	}
	npmLink := hostOutput(t, "sh", "-c", "command -v npm")
	npmCLI, err := filepath.EvalSymlinks(npmLink)
	if err != nil {
		t.Fatal(err)
	}
	npmDir := filepath.Dir(filepath.Dir(npmCLI)) // …/node_modules/npm
	rel, err := filepath.Rel(filepath.Dir(npmLink), npmCLI)
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimPrefix(hostOutput(t, node, "--version"), "v")
	return standin(t, dockertest.Standin{
		Tag:   "wisp-standin-node:" + version,
		Paths: []string{node, npmDir, "/bin/sh", "/usr/bin/env"},
		Links: map[string]string{npmLink: rel},
		Env:   []string{"PATH=" + basePath, "HOME=/root", "NPM_CONFIG_UPDATE_NOTIFIER=false", "NPM_CONFIG_FUND=false", "NPM_CONFIG_AUDIT=false"},
	})
}

func pythonStandin(t *testing.T) string {
	info := strings.Fields(hostOutput(t, "python3", "-c",
		"import sys, os, pip; print(sys.prefix, '%d.%d' % sys.version_info[:2], os.path.dirname(pip.__file__))"))
	prefix, version, pipDir := info[0], info[1], info[2]
	lib := "python" + version
	return standin(t, dockertest.Standin{
		Tag:   "wisp-standin-python:" + version,
		Paths: []string{prefix + "/bin/" + lib, prefix + "/lib/" + lib, pipDir, "/bin/sh"},
		Skip: []string{"__pycache__", "site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip",
			"lib2to3", "config-" + version + "-x86_64-linux-gnu"},
		Links: map[string]string{prefix + "/bin/python3": lib},
		Env: []string{"PATH=" + prefix + "/bin:" + basePath, "PYTHONPATH=" + filepath.Dir(pipDir), "HOME=/root", "PIP_NO_INDEX=1",
			"PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_ROOT_USER_ACTION=ignore"},
	})
}

// writeFiles writes name → content under a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// call sends a request to service through the router.
func (e *env) call(service, method, path, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, "http://"+e.router+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = service + ".localhost"
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s%s: %v", method, service, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) client() *apiclient.Client {
	tok, err := config.ReadToken(e.dataDir)
	if err != nil {
		e.t.Fatal(err)
	}
	return apiclient.New(e.server, tok)
}

const goMain = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "go says %s", os.Getenv("GREETING"))
	})
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
		panic(err)
	}
}
`

const nodeServer = `const http = require('http');
http.createServer((req, res) => {
  res.end('node says ' + process.env.GREETING + ' on ' + process.version);
}).listen(process.env.PORT);
`

const pythonMain = `import http.server, os

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("python says %s" % os.environ.get("GREETING", "")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
`

const stdioHandler = `body=$(cat)
printf 'stdio says %s to %s %s' "$body" "$REQUEST_METHOD" "$PATH_INFO"
`

// TestDeployPacks builds one function per pack from source, deploys each
// with one command and calls it through the router.
func TestDeployPacks(t *testing.T) {
	e := dockerEnv(t, nil)
	tests := []struct {
		name    string
		files   map[string]string
		flags   func(t *testing.T) []string
		method  string
		body    string
		want    string
		runtime string
	}{
		{
			name:  "go",
			files: map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": goMain},
			flags: func(t *testing.T) []string {
				return []string{"--builder-image", goStandin(t), "--base-image", staticStandin(t)}
			},
			want:    "go says hi",
			runtime: "go",
		},
		{
			name: "node",
			files: map[string]string{
				"package.json":      `{"name": "hello", "version": "1.0.0", "main": "server.js"}`,
				"package-lock.json": `{"name": "hello", "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": {"": {"name": "hello", "version": "1.0.0"}}}`,
				"server.js":         nodeServer,
			},
			flags:   func(t *testing.T) []string { return []string{"--base-image", nodeStandin(t)} },
			want:    "node says hi on v",
			runtime: "node",
		},
		{
			name:    "python",
			files:   map[string]string{"main.py": pythonMain, "requirements.txt": "# the standard library is enough\n"},
			flags:   func(t *testing.T) []string { return []string{"--base-image", pythonStandin(t)} },
			want:    "python says hi",
			runtime: "python",
		},
		{
			name: "dockerfile",
			files: map[string]string{
				"app.py": pythonMain,
			},
			flags: func(t *testing.T) []string {
				return nil // the Dockerfile is written below, naming the stand-in
			},
			want:    "python says hi",
			runtime: "dockerfile",
		},
		{
			name:    "stdio",
			files:   map[string]string{"handler.sh": stdioHandler, "wisp.yaml": "runtime: stdio\ncommand: [\"sh\", \"handler.sh\"]\ntimeout: 10s\n"},
			flags:   func(t *testing.T) []string { return []string{"--base-image", shellStandin(t)} },
			method:  "POST",
			body:    "world",
			want:    "stdio says world to POST /greet",
			runtime: "stdio",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			if tc.runtime == "dockerfile" {
				tc.files["Dockerfile"] = "FROM " + pythonStandin(t) + "\nCOPY app.py /srv/app.py\nCMD [\"python3\", \"/srv/app.py\"]\n"
			}
			dir := writeFiles(t, tc.files)
			service := svcPrefix + tc.name
			args := append([]string{"deploy", service, dir, "--env", "GREETING=hi"}, tc.flags(t)...)
			start := time.Now()
			code, out, errOut := e.run(args...)
			if code != 0 {
				t.Fatalf("wisp deploy: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			t.Logf("deployed in %s", time.Since(start).Round(time.Millisecond))
			for _, want := range []string{"[1/", "done in", "wisp: created version v1 of " + service} {
				if !strings.Contains(errOut, want) {
					t.Errorf("the progress lacks %q:\n%s", want, errOut)
				}
			}
			// Streamed as it happens, so steps have their own durations.
			if !regexp.MustCompile(`done in (0\.[1-9]|[1-9])`).MatchString(errOut) {
				t.Errorf("no step took 0.1s or more: is the log stream buffered?\n%s", errOut)
			}
			if !strings.Contains(out, "url:") || !strings.Contains(out, "v1 100%") {
				t.Errorf("the summary lacks the URL or the traffic:\n%s", out)
			}
			method := tc.method
			if method == "" {
				method = "GET"
			}
			status, body := e.call(service, method, "/greet", tc.body)
			if status != 200 || !strings.HasPrefix(body, tc.want) {
				t.Fatalf("%s /greet = %d %q, want 200 %q…", method, status, body, tc.want)
			}
			builds, err := e.client().ListBuilds(t.Context(), service, 1)
			if err != nil || len(builds) != 1 {
				t.Fatalf("builds of %s: %+v, %v", service, builds, err)
			}
			if b := builds[0]; b.Status != core.BuildSucceeded || b.Runtime != tc.runtime || b.Reused || b.Version != 1 ||
				!strings.HasPrefix(b.Image, service+":src-") || b.ImageID == "" || !strings.HasPrefix(b.Digest, "sha256:") {
				t.Fatalf("build record: %+v", b)
			}
		})
	}
}

func stdioSource(t *testing.T, greeting string) string {
	t.Helper()
	return writeFiles(t, map[string]string{
		"handler.sh": "printf '" + greeting + " %s' \"$(cat)\"\n",
		"wisp.yaml":  "runtime: stdio\ncommand: [\"sh\", \"handler.sh\"]\nbuild:\n  base_image: wisp-standin-shell:1\n",
	})
}

func (e *env) fail(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(args...)
	if code != 1 {
		e.t.Fatalf("wisp %s: exit %d, want 1\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return errOut
}

func (e *env) state(service string) (versions, entries, builds int) {
	e.t.Helper()
	c := e.client()
	vs, err := c.ListVersions(e.t.Context(), service)
	if err != nil {
		e.t.Fatal(err)
	}
	hist, err := c.TrafficHistory(e.t.Context(), service)
	if err != nil {
		e.t.Fatal(err)
	}
	bs, err := c.ListBuilds(e.t.Context(), "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(vs), len(hist), len(bs)
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Wisp Test", "-c", "user.email=test@wisp.invalid",
		"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestDeployLifecycle: canary and no-promote deploys, reuse of identical
// source, a failed build that changes nothing, versions from git with
// immutable tags.
func TestDeployLifecycle(t *testing.T) {
	e := dockerEnv(t, nil)
	shellStandin(t)
	const svc = svcPrefix + "life"
	c := e.client()
	latest := func() core.Build {
		t.Helper()
		bs, err := c.ListBuilds(t.Context(), svc, 1)
		if err != nil || len(bs) != 1 {
			t.Fatalf("latest build: %+v, %v", bs, err)
		}
		return bs[0]
	}
	traffic := func() string {
		t.Helper()
		tr, err := c.GetTraffic(t.Context(), svc)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, w := range tr.Weights {
			parts = append(parts, fmt.Sprintf("%d=%d", w.Version, w.Percent))
		}
		return strings.Join(parts, " ")
	}

	src := stdioSource(t, "one")
	e.ok("deploy", svc, src)
	first := latest()
	if first.Reused || first.Version != 1 {
		t.Fatalf("first build: %+v", first)
	}
	if _, body := e.call(svc, "POST", "/", "a"); body != "one a" {
		t.Fatalf("v1 answered %q", body)
	}

	// The same source again, as a 10% canary: the image is reused.
	e.ok("deploy", svc, src, "--canary", "10")
	second := latest()
	if !second.Reused || second.ImageID != first.ImageID || second.Image != first.Image || second.Version != 2 {
		t.Fatalf("identical source must reuse its image: first %+v, second %+v", first, second)
	}
	if got := traffic(); got != "1=90 2=10" {
		t.Fatalf("after a canary of 10: traffic %s", got)
	}

	// Not promoted: a version, and no change of traffic.
	e.ok("deploy", svc, stdioSource(t, "three"), "--no-promote")
	if got := traffic(); got != "1=90 2=10" {
		t.Fatalf("after --no-promote: traffic %s", got)
	}

	// wisp.yaml's scaling, logs and async sections reach the service's
	// policy when the build succeeds.
	withPolicy := writeFiles(t, map[string]string{
		"handler.sh": "printf 'policy %s' \"$(cat)\"\n",
		"wisp.yaml": "runtime: stdio\ncommand: [\"sh\", \"handler.sh\"]\nbuild:\n  base_image: wisp-standin-shell:1\n" +
			"scaling:\n  idle_timeout: 3m\nlogs:\n  request_logs: true\n  max_age: 3d\nasync:\n  max_attempts: 4\n",
	})
	e.ok("deploy", svc, withPolicy, "--no-promote")
	got, err := c.GetService(t.Context(), svc)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Policy; p.IdleTimeout.String() != "3m0s" || !p.RequestLogs || p.LogMaxAge.String() != "72h0m0s" || p.MaxAttempts != 4 {
		t.Fatalf("policy after a deploy with wisp.yaml's sections: %+v", p)
	}

	// A failing build: its output reaches the user; nothing changes.
	versions, entries, builds := e.state(svc)
	bad := writeFiles(t, map[string]string{"Dockerfile": "FROM wisp-standin-shell:1\nRUN echo boom-marker-42 && exit 3\n"})
	errOut := e.fail("deploy", svc, bad)
	for _, want := range []string{"] RUN echo boom-marker-42", "failed after", "boom-marker-42", "non-zero code: 3"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the failed deploy's output lacks %q:\n%s", want, errOut)
		}
	}
	failed := latest()
	if failed.Status != core.BuildFailed || !strings.Contains(failed.Error, "boom-marker-42") || failed.Version != 0 {
		t.Fatalf("failed build record: %+v", failed)
	}
	if v, en, b := e.state(svc); v != versions || en != entries || b != builds+1 {
		t.Fatalf("a failed build changed state: versions %d→%d, traffic entries %d→%d, builds %d→%d", versions, v, entries, en, builds, b)
	}
	if got := traffic(); got != "1=90 2=10" {
		t.Fatalf("after a failed build: traffic %s", got)
	}

	// From git: a tag names the image and the version records the commit.
	repo := stdioSource(t, "tagged")
	git(t, repo, "init", "-q")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "first")
	git(t, repo, "tag", "v1.0.0")
	commit := git(t, repo, "rev-parse", "HEAD")
	e.ok("deploy", svc, repo)
	tagged := latest()
	if tagged.Image != svc+":v1.0.0" || tagged.GitCommit != commit || tagged.GitDescribe != "v1.0.0" {
		t.Fatalf("build from a tagged commit: %+v", tagged)
	}
	v, err := c.GetVersion(t.Context(), svc, tagged.Version)
	if err != nil {
		t.Fatal(err)
	}
	if v.Source == nil || v.Source.GitCommit != commit || v.Source.GitDescribe != "v1.0.0" || v.Source.BuildID != tagged.ID || v.Image != tagged.Image {
		t.Fatalf("version from git: %+v (source %+v)", v, v.Source)
	}
	// A commit without a tag: the short commit names the image.
	if err := os.WriteFile(filepath.Join(repo, "handler.sh"), []byte("printf 'next %s' \"$(cat)\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "commit", "-q", "-am", "second")
	next := git(t, repo, "rev-parse", "HEAD")
	e.ok("deploy", svc, repo)
	if b := latest(); b.Image != svc+":"+next[:12] || b.GitCommit != next || b.Reused {
		t.Fatalf("build from an untagged commit: %+v", b)
	}
	// Another source with the same tag: refused, nothing changes.
	other := stdioSource(t, "impostor")
	git(t, other, "init", "-q")
	git(t, other, "add", ".")
	git(t, other, "commit", "-q", "-m", "other")
	git(t, other, "tag", "v1.0.0")
	versions, entries, _ = e.state(svc)
	errOut = e.fail("deploy", svc, other)
	if !strings.Contains(errOut, "tags are immutable") || !strings.Contains(errOut, svc+":v1.0.0") {
		t.Fatalf("a tag rebuilt with other content must be refused, naming it:\n%s", errOut)
	}
	if v, en, _ := e.state(svc); v != versions || en != entries {
		t.Fatalf("a refused tag changed state: versions %d→%d, entries %d→%d", versions, v, entries, en)
	}
}

// TestDeployBadInput: each bad input is a clear error, and none leaves a
// build, a version or a change of traffic behind.
func TestDeployBadInput(t *testing.T) {
	e := dockerEnv(t, func(cfg *config.Config) { cfg.MaxBuildContext = 2 << 20 })
	shellStandin(t)
	const svc = svcPrefix + "bad"
	e.ok("deploy", svc, stdioSource(t, "ok"))
	versions, entries, builds := e.state(svc)

	big := stdioSource(t, "big")
	if err := os.WriteFile(filepath.Join(big, "blob.bin"), make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		dir   string
		args  []string
		want  []string
	}{
		{name: "no runtime", files: map[string]string{"README.md": "hi"}, want: []string{"no runtime recognised", "runtime: dockerfile | go"}},
		{name: "unknown key", files: map[string]string{"wisp.yaml": "runtime: stdio\ncommand: [sh]\nreplicas: 3\n"}, want: []string{"wisp.yaml", "replicas"}},
		{name: "wrong type", files: map[string]string{"wisp.yaml": "port: eighty\n"}, want: []string{"wisp.yaml", "port"}},
		{name: "stdio without command", files: map[string]string{"wisp.yaml": "runtime: stdio\n"}, want: []string{"stdio runtime needs command"}},
		{name: "over the client's limit", dir: big, args: []string{"--max-context", "1Mi"}, want: []string{"over the limit of 1 MiB", ".wispignore"}},
		{name: "over the server's limit", dir: big, want: []string{"over this server's limit of 2 MiB", "--max-build-context"}},
		{name: "bad canary", files: map[string]string{"a.py": ""}, args: []string{"--canary", "100"}, want: []string{"--canary must be a percent from 1 to 99"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			dir := tc.dir
			if dir == "" {
				dir = writeFiles(t, tc.files)
			}
			code, out, errOut := e.run(append([]string{"deploy", svc, dir}, tc.args...)...)
			if code == 0 {
				t.Fatalf("deploy succeeded: %s", out)
			}
			for _, want := range tc.want {
				if !strings.Contains(errOut, want) {
					t.Errorf("the error lacks %q:\n%s", want, errOut)
				}
			}
			if v, en, b := e.state(svc); v != versions || en != entries || b != builds {
				t.Fatalf("a refused deploy changed state: versions %d→%d, traffic entries %d→%d, builds %d→%d", versions, v, entries, en, builds, b)
			}
		})
	}

	// The API refuses malformed uploads with a 4xx that names the problem.
	e.t = t
	tok, err := config.ReadToken(e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	post := func(ctype string, body io.Reader) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), "POST", "http://"+e.server+"/v1/builds", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	multipartBody := func(build, context string, names ...string) (string, io.Reader) {
		var buf strings.Builder
		mw := multipart.NewWriter(&buf)
		if len(names) == 0 {
			names = []string{"build", "context"}
		}
		for i, part := range []string{build, context} {
			if i < len(names) && names[i] != "" {
				w, _ := mw.CreateFormField(names[i])
				_, _ = io.WriteString(w, part)
			}
		}
		_ = mw.Close()
		return mw.FormDataContentType(), strings.NewReader(buf.String())
	}
	tarOf := func(files map[string]string) string {
		var buf strings.Builder
		tw := tar.NewWriter(&buf)
		for name, body := range files {
			_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
			_, _ = io.WriteString(tw, body)
		}
		_ = tw.Close()
		return buf.String()
	}
	okReq := `{"service": "` + svc + `", "version": {}}`
	for _, tc := range []struct {
		name   string
		ctype  string
		body   io.Reader
		status int
		want   string
	}{
		{name: "JSON instead of multipart", ctype: "application/json", body: strings.NewReader(okReq), status: 415, want: "multipart/form-data"},
	} {
		if status, body := post(tc.ctype, tc.body); status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, status, body, tc.status, tc.want)
		}
	}
	for _, tc := range []struct {
		name   string
		build  string
		ctx    string
		names  []string
		status int
		want   string
	}{
		{"unknown field", `{"service": "` + svc + `", "replicas": 2}`, tarOf(map[string]string{"Dockerfile": "FROM scratch"}), nil, 400, `unknown field \"replicas\"`},
		{"parts swapped", okReq, "", []string{"context", "build"}, 400, "the first part is"},
		{"no context", okReq, "", []string{"build", ""}, 400, "the context part is missing"},
		{"not a tar", okReq, "this is not a tar stream at all, not even close to 512 bytes", nil, 422, "not a valid tar stream"},
		{"no Dockerfile", okReq, tarOf(map[string]string{"main.go": "package main"}), nil, 422, "has no Dockerfile"},
		{"path escapes", okReq, tarOf(map[string]string{"../evil": "x", "Dockerfile": "FROM scratch"}), nil, 422, "outside the context"},
		{"bad service", `{"service": "Bad_Name", "version": {}}`, tarOf(map[string]string{"Dockerfile": "FROM scratch"}), nil, 422, "service"},
		{"missing service", `{"service": "` + svcPrefix + `nope", "version": {}}`, tarOf(map[string]string{"Dockerfile": "FROM scratch"}), nil, 404, "create_service"},
		{"image given", `{"service": "` + svc + `", "version": {"image": "x:1"}}`, tarOf(map[string]string{"Dockerfile": "FROM scratch"}), nil, 422, "the build makes the image"},
		{"canary of 101", `{"service": "` + svc + `", "version": {}, "promote": 101}`, tarOf(map[string]string{"Dockerfile": "FROM scratch"}), nil, 422, "promote"},
	} {
		ctype, body := multipartBody(tc.build, tc.ctx, tc.names...)
		if status, got := post(ctype, body); status != tc.status || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, status, got, tc.status, tc.want)
		}
	}
	if v, en, b := e.state(svc); v != versions || en != entries || b != builds {
		t.Fatalf("a refused upload changed state: versions %d→%d, traffic entries %d→%d, builds %d→%d", versions, v, entries, en, builds, b)
	}
	for _, path := range []string{"/v1/builds/999", "/v1/builds/999/logs"} {
		if _, err := c(e).Raw(t.Context(), "GET", path, nil); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("GET %s: %v, want 404", path, err)
		}
	}
	if _, err := c(e).Raw(t.Context(), "GET", "/v1/builds/x", nil); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("GET /v1/builds/x: %v, want 400", err)
	}
}

func c(e *env) *apiclient.Client { return e.client() }
