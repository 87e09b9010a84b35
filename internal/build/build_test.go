package build_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/build"
)

// tree writes files (path → content) under a new directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestParseSpec(t *testing.T) {
	good := `
service: hello
runtime: stdio
command: ["python3", "handler.py"]
port: 9000
env: [GREETING=Go]
memory: 128Mi
timeout: 10s
scaling:
  min_instances: 1
  standby: 2
  idle_timeout: 2m
  keep_previous: 30m
  min_instances_schedule: ["mon-fri 08:00-18:00 Europe/Paris=2"]
logs:
  request_logs: true
  max_bytes: 20MiB
  max_age: 2d
async:
  concurrency: 3
  max_attempts: 7
  min_backoff: 200ms
  max_backoff: 1m
  max_age: 12h
build:
  base_image: python:3.12-slim
`
	s, err := build.ParseSpec([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Service != "hello" || s.Runtime != "stdio" || s.Port != 9000 || s.Build.BaseImage != "python:3.12-slim" ||
		s.Policy == nil || *s.Policy.MinInstances != 1 || s.Policy.Standby == nil || *s.Policy.Standby != 2 ||
		s.Policy.IdleTimeout.String() != "2m0s" || s.Policy.KeepPrevious == nil || s.Policy.KeepPrevious.String() != "30m0s" ||
		s.Policy.MinInstancesSchedule == nil || len(*s.Policy.MinInstancesSchedule) != 1 || (*s.Policy.MinInstancesSchedule)[0].TZ != "Europe/Paris" {
		t.Fatalf("parsed %+v", s)
	}
	if p := s.Policy; p.RequestLogs == nil || !*p.RequestLogs || p.LogMaxBytes == nil || *p.LogMaxBytes != 20<<20 ||
		p.LogMaxAge == nil || p.LogMaxAge.String() != "48h0m0s" || p.AsyncConcurrency == nil || *p.AsyncConcurrency != 3 ||
		p.MaxAttempts == nil || *p.MaxAttempts != 7 || p.MinBackoff == nil || p.MinBackoff.String() != "200ms" ||
		p.MaxBackoff == nil || p.MaxBackoff.String() != "1m0s" || p.MaxAge == nil || p.MaxAge.String() != "12h0m0s" {
		t.Fatalf("logs and async sections: %+v", *s.Policy)
	}
	// Either section alone makes a policy patch too.
	if s, err := build.ParseSpec([]byte("async:\n  max_attempts: 2\n")); err != nil || s.Policy == nil || *s.Policy.MaxAttempts != 2 || s.Policy.MinInstances != nil {
		t.Fatalf("async alone: %+v, %v", s.Policy, err)
	}
	if _, err := build.ParseSpec(nil); err != nil {
		t.Fatalf("an empty file: %v", err)
	}
	bad := []struct{ name, yaml, want string }{
		{"unknown key", "servce: hello\n", `line 1: unknown key "servce"; the keys of wisp.yaml are service, runtime, port,`},
		{"unknown nested key", "build:\n  base: x\n", `line 2: unknown key "base"; the keys under build: are base_image, builder_image, dockerfile`},
		{"wrong type", "port: eighty\n", `port: must be a whole number, got "eighty"`},
		{"env not a list", "env: A=1\n", `env: must be a list of strings, such as [a, b], got "A=1"`},
		{"bad runtime", "runtime: rust\n", `runtime "rust" is not one of`},
		{"stdio without command", "runtime: stdio\n", "needs command"},
		{"bad service name", "service: Hello\n", "must start with a lowercase letter"},
		{"bad memory", "memory: lots\n", "memory:"},
		{"bad timeout", "timeout: soon\n", "timeout:"},
		{"zero timeout", "timeout: 0s\n", "timeout must be between 1s and 1h"},
		{"duplicate env", "env: [A=1, A=2]\n", "A is set twice"},
		{"bad scaling", "scaling:\n  min_instances: 50\n", "must not exceed max_instances"},
		{"standby above max", "scaling:\n  standby: 12\n", "scaling: standby (12) must not exceed max_instances (10)"},
		{"standby negative", "scaling:\n  standby: -1\n", "standby must be between 0 and 16, got -1"},
		{"bad schedule day", "scaling:\n  min_instances_schedule: ['mon-fry 08:00-18:00 UTC=2']\n", `scaling.min_instances_schedule: window "mon-fry 08:00-18:00 UTC=2": bad day`},
		{"bad schedule zone", "scaling:\n  min_instances_schedule: ['mon 08:00-18:00 Nowhere/City=2']\n", `unknown time zone "Nowhere/City"`},
		{"bad keep_previous", "scaling:\n  keep_previous: 48h\n", "keep_previous must be between 0 (off) and 24h"},
		{"singleton with max_instances", "scaling:\n  singleton: true\n  max_instances: 2\n", "policy.singleton and policy.max_instances conflict"},
		{"bad scaling duration", "scaling:\n  idle_timeout: forever\n", "scaling.idle_timeout"},
		{"not yaml", "service: [\n", "wisp.yaml:"},
		{"unknown logs key", "logs:\n  retention: 1d\n", `line 2: unknown key "retention"; the keys under logs: are request_logs, max_bytes, max_age`},
		{"bad log size", "logs:\n  max_bytes: huge\n", "logs.max_bytes:"},
		{"log size out of range", "logs:\n  max_bytes: 1KiB\n", "logs.max_bytes: log_max_bytes must be between 1 MiB"},
		{"bad log age", "logs:\n  max_age: 100d\n", "logs.max_age: log_max_age must be between 1m and 2160h"},
		{"request_logs not a bool", "logs:\n  request_logs: sometimes\n", "logs.request_logs: must be true or false"},
		{"unknown async key", "async:\n  retries: 3\n", `the keys under async: are concurrency, max_attempts, min_backoff, max_backoff, max_age`},
		{"async concurrency out of range", "async:\n  concurrency: 0\n", "async.concurrency: async_concurrency must be between 1 and"},
		{"max_backoff below min_backoff", "async:\n  min_backoff: 10s\n  max_backoff: 1s\n", "async.max_backoff: max_backoff (1s) must not be below min_backoff (10s)"},
		{"bad async duration", "async:\n  max_age: later\n", "async.max_age:"},
		{"dockerfile outside the source", "build:\n  dockerfile: ../../etc/passwd\n", "inside the source directory"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build.ParseSpec([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "wisp.yaml") {
				t.Fatalf("got %v, want an error naming wisp.yaml and containing %q", err, tc.want)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	cases := []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"go.mod": "module x", "main.go": ""}, "go"},
		{map[string]string{"package.json": "{}"}, "node"},
		{map[string]string{"requirements.txt": ""}, "python"},
		{map[string]string{"handler.py": ""}, "python"},
		{map[string]string{"Dockerfile": "FROM scratch", "go.mod": ""}, "dockerfile"},
		{map[string]string{"README.md": ""}, ""},
	}
	for _, tc := range cases {
		got, err := build.Detect(tree(t, tc.files))
		if tc.want == "" {
			if err == nil || !strings.Contains(err.Error(), "no runtime recognised") {
				t.Errorf("%v: got %q, %v; want an error", tc.files, got, err)
			}
			continue
		}
		if got != tc.want || err != nil {
			t.Errorf("%v: got %q, %v; want %q", tc.files, got, err, tc.want)
		}
	}
}

func TestPlans(t *testing.T) {
	cases := []struct {
		name     string
		files    map[string]string
		spec     build.Spec
		opts     build.Options
		contains []string
		err      string
	}{
		{"go defaults", map[string]string{"go.mod": "", "go.sum": ""}, build.Spec{}, build.Options{},
			[]string{"FROM golang:1.26 AS build", "COPY go.mod go.sum ./", "CGO_ENABLED=0 go build", "FROM gcr.io/distroless/static-debian12", "ENV PORT=8080"}, ""},
		{"go with overrides", map[string]string{"go.mod": ""}, build.Spec{Port: 9000, Build: build.BuildSpec{BuilderImage: "my-go:1", BaseImage: "scratch"}}, build.Options{},
			[]string{"FROM my-go:1 AS build", "COPY go.mod ./", "FROM scratch", "ENV PORT=9000"}, ""},
		{"flag beats wisp.yaml", map[string]string{"go.mod": ""}, build.Spec{Build: build.BuildSpec{BaseImage: "from-yaml"}}, build.Options{BaseImage: "from-flag"},
			[]string{"FROM from-flag\n"}, ""},
		{"node with lockfile and start", map[string]string{"package.json": `{"scripts":{"start":"node s.js"}}`, "package-lock.json": "{}"}, build.Spec{}, build.Options{},
			[]string{"FROM node:22-slim", "RUN npm ci --omit=dev", `CMD ["npm", "start"]`}, ""},
		{"node without start", map[string]string{"package.json": `{"main":"server.js"}`}, build.Spec{}, build.Options{BaseImage: "local/node"},
			[]string{"FROM local/node", "RUN npm install --omit=dev", `CMD ["node", "server.js"]`}, ""},
		{"node bad package.json", map[string]string{"package.json": `{`}, build.Spec{}, build.Options{}, nil, "package.json is not valid JSON"},
		{"python with requirements", map[string]string{"requirements.txt": "", "app.py": ""}, build.Spec{}, build.Options{},
			[]string{"FROM python:3.12-slim", "pip install --no-cache-dir -r requirements.txt", `CMD ["python3", "app.py"]`}, ""},
		{"python single file", map[string]string{"hello.py": ""}, build.Spec{}, build.Options{},
			[]string{`CMD ["python3", "hello.py"]`}, ""},
		{"python ambiguous", map[string]string{"a.py": "", "b.py": ""}, build.Spec{}, build.Options{}, nil, "found 2 .py files"},
		{"stdio", map[string]string{"handler.sh": ""}, build.Spec{Runtime: "stdio", Command: []string{"sh", "handler.sh"}, Timeout: "5s"}, build.Options{},
			[]string{"FROM debian:12-slim", "COPY .wisp/wisp-watchdog /usr/local/bin/wisp-watchdog", `WISP_TIMEOUT="5s"`,
				`ENTRYPOINT ["/usr/local/bin/wisp-watchdog", "--", "sh", "handler.sh"]`}, ""},
		{"dockerfile", map[string]string{"Dockerfile": "FROM scratch\n"}, build.Spec{}, build.Options{}, []string{"FROM scratch\n"}, ""},
		{"dockerfile named in wisp.yaml", map[string]string{"build/Dockerfile.prod": "FROM alpine\n"}, build.Spec{Runtime: "dockerfile", Build: build.BuildSpec{Dockerfile: "build/Dockerfile.prod"}}, build.Options{},
			[]string{"FROM alpine\n"}, ""},
		{"dockerfile with a base image", map[string]string{"Dockerfile": "FROM scratch\n"}, build.Spec{}, build.Options{BaseImage: "x"}, nil, "cannot be set for the dockerfile runtime"},
		{"nothing to build", map[string]string{"notes.txt": ""}, build.Spec{}, build.Options{}, nil, "no runtime recognised"},
		{"unknown runtime flag", map[string]string{"go.mod": ""}, build.Spec{}, build.Options{Runtime: "rust"}, nil, `runtime "rust" is not one of`},
		{"stdio without command", map[string]string{"x.sh": ""}, build.Spec{}, build.Options{Runtime: "stdio"}, nil, "needs command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := build.MakePlan(tree(t, tc.files), tc.spec, tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.contains {
				if !strings.Contains(p.Dockerfile, want) {
					t.Errorf("Dockerfile lacks %q:\n%s", want, p.Dockerfile)
				}
			}
			if p.NeedsWatchdog != (p.Runtime == "stdio") {
				t.Errorf("NeedsWatchdog %v for %s", p.NeedsWatchdog, p.Runtime)
			}
		})
	}
}

func names(t *testing.T, c *build.Context) []string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(c.Tar))
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
	sort.Strings(out)
	return out
}

// mustPack packs dir, failing the test when that fails: two failed packs
// must not pass a comparison of their digests.
func mustPack(t *testing.T, dir string, opts build.ContextOptions) *build.Context {
	t.Helper()
	c, err := build.Pack(dir, opts)
	if err != nil {
		t.Fatalf("Pack(%s): %v", dir, err)
	}
	return c
}

func TestPack(t *testing.T) {
	dir := tree(t, map[string]string{
		"main.go":              "package main",
		"go.mod":               "module x",
		"secrets.env":          "TOKEN=x",
		"logs/today.log":       "...",
		"docs/keep.md":         "",
		"docs/drop.tmp":        "",
		".git/HEAD":            "ref",
		".dockerignore":        "secrets.env\n# comment\n*.tmp\ndocs/*.tmp\n",
		".wispignore":          "logs\n",
		"vendor/lib/lib.go":    "package lib",
		"node_modules/x/x.js":  "",
		"nested/deep/file.txt": "x",
	})
	c, err := build.Pack(dir, build.ContextOptions{Extra: map[string][]byte{"Dockerfile": []byte("FROM scratch")}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Dockerfile", "docs/keep.md", "go.mod", "main.go", "nested/deep/file.txt", "node_modules/x/x.js", "vendor/lib/lib.go"}
	if diff := cmp.Diff(want, names(t, c)); diff != "" {
		t.Fatalf("context files (-want +got):\n%s", diff)
	}
	// The digest is a function of the source alone.
	again := mustPack(t, dir, build.ContextOptions{Extra: map[string][]byte{"Dockerfile": []byte("FROM other")}})
	if again.Digest != c.Digest {
		t.Fatalf("digest changed with the generated Dockerfile: %s vs %s", c.Digest, again.Digest)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main // changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := mustPack(t, dir, build.ContextOptions{})
	if changed.Digest == c.Digest {
		t.Fatal("digest did not change with the source")
	}
	// An ignored file changing does not change the digest.
	before := mustPack(t, dir, build.ContextOptions{})
	if err := os.WriteFile(filepath.Join(dir, "logs/today.log"), []byte("more"), 0o644); err != nil {
		t.Fatal(err)
	}
	after := mustPack(t, dir, build.ContextOptions{})
	if before.Digest != after.Digest {
		t.Fatal("an ignored file changed the digest")
	}
}

func TestPackLimit(t *testing.T) {
	dir := tree(t, map[string]string{"big.bin": strings.Repeat("x", 4096), "small": "x"})
	_, err := build.Pack(dir, build.ContextOptions{MaxBytes: 1024})
	if err == nil || !strings.Contains(err.Error(), "over the limit") || !strings.Contains(err.Error(), ".wispignore") {
		t.Fatalf("got %v, want the limit named with a way out", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".wispignore"), []byte("*.bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := build.Pack(dir, build.ContextOptions{MaxBytes: 1024}); err != nil {
		t.Fatalf("after ignoring the big file: %v", err)
	}
}

func TestParseSpecNamesTheKeyOfAWrongType(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"port: eighty\n", `line 1: port: must be a whole number, got "eighty"`},
		{"runtime: go\nscaling:\n  max_instances: many\n", `line 3: scaling.max_instances: must be a whole number, got "many"`},
		{"build: [a]\n", "line 1: build: must be a mapping of keys, got a list"},
		{"scaling:\n  replicas: 2\n", `line 2: unknown key "replicas"; the keys under scaling: are min_instances,`},
		{"cpu: [1]\n", "line 1: cpu: must be a number, got a list"},
		{"env: FOO=bar\n", `line 1: env: must be a list of strings`},
	} {
		_, err := build.ParseSpec([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSpec(%q) = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
