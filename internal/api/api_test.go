package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/store"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

const token = "test-token"

type harness struct {
	t     testing.TB
	srv   *httptest.Server
	api   *api.Server
	store store.Store
	// syncs counts the Sync calls of the default Syncer.
	syncs *atomic.Int64
}

// syncFunc is a Syncer made of a function.
type syncFunc func(ctx context.Context) error

func (f syncFunc) Sync(ctx context.Context) error { return f(ctx) }

func newHarness(t testing.TB, opts ...api.Option) *harness {
	t.Helper()
	return newHarnessWith(t, nil, opts...)
}

// newHarnessWith serves the API over a SQLite store, wrapped by wrap when it
// is not nil; the default Syncer counts its calls, opts may replace it.
func newHarnessWith(t testing.TB, wrap func(store.Store) store.Store, opts ...api.Option) *harness {
	t.Helper()
	sq, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "wisp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sq.Close() })
	var st store.Store = sq
	if wrap != nil {
		st = wrap(sq)
	}
	var syncs atomic.Int64
	opts = append([]api.Option{api.WithSyncer(syncFunc(func(context.Context) error { syncs.Add(1); return nil }))}, opts...)
	h := serve(t, api.Config{Token: token, Domain: "localhost", RouterPort: 8080}, st, opts...)
	h.syncs = &syncs
	return h
}

// serve serves an API with cfg over st until the test ends.
func serve(t testing.TB, cfg api.Config, st store.Store, opts ...api.Option) *harness {
	t.Helper()
	a, err := api.New(cfg, st, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: st, api: a, srv: httptest.NewServer(a), syncs: &atomic.Int64{}}
	t.Cleanup(h.srv.Close)
	return h
}

// do sends a request with the test token and returns the status and body.
func (h *harness) do(method, path, body string) (int, []byte) {
	h.t.Helper()
	return h.doAuth(method, path, body, "Bearer "+token)
}

func (h *harness) doAuth(method, path, body, auth string) (int, []byte) {
	h.t.Helper()
	return h.send(h.t, method, path, body, auth)
}

// send is doAuth for a given test; fuzz targets must not use the F's helpers.
func (h *harness) send(t testing.TB, method, path, body, auth string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, h.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// must sends a request that has to answer want.
func (h *harness) must(want int, method, path, body string) map[string]any {
	h.t.Helper()
	status, b := h.do(method, path, body)
	if status != want {
		h.t.Fatalf("%s %s: got status %d, want %d; body %s", method, path, status, want, b)
	}
	var out map[string]any
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &out); err != nil {
			h.t.Fatalf("%s %s: bad JSON %s: %v", method, path, b, err)
		}
	}
	return out
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// fixture: service hello with v1 (100%) and v2; service other with v1.
func (h *harness) fixture() {
	h.t.Helper()
	h.must(201, "POST", "/v1/services", `{"name":"hello"}`)
	h.must(201, "POST", "/v1/services/hello/versions", `{"image":"hello:1","env":["GREETING=Go"]}`)
	h.must(201, "POST", "/v1/services/hello/versions", `{"image":"hello:2","env":["GREETING=Docker"]}`)
	h.must(201, "POST", "/v1/services", `{"name":"other"}`)
	h.must(201, "POST", "/v1/services/other/versions", `{"image":"other:1"}`)
}

// state is everything the API can read, to prove bad requests change nothing.
func (h *harness) state() string {
	h.t.Helper()
	var b strings.Builder
	for _, p := range []string{"/v1/services", "/v1/services/hello/versions", "/v1/services/hello/traffic/history",
		"/v1/services/other/versions", "/v1/services/other/traffic/history"} {
		_, body := h.do("GET", p, "")
		b.Write(body)
	}
	return b.String()
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t)
	h.fixture()
	before := h.state()
	syncs := h.syncs.Load()
	big := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`
	cases := []struct {
		name         string
		method, path string
		body         string
		status       int
		code         string
		field        string
		msg          string // a substring of the message
	}{
		// Malformed bodies.
		{"malformed JSON", "POST", "/v1/services", `{"name":`, 400, "bad_request", "", "ends before"},
		{"syntax error", "POST", "/v1/services", `{"name" "x"}`, 400, "bad_request", "", "malformed JSON at byte"},
		{"empty body", "POST", "/v1/services", ``, 400, "bad_request", "", "body is empty"},
		{"array body", "POST", "/v1/services", `[]`, 400, "bad_request", "", "must be a JSON object"},
		{"unknown field", "POST", "/v1/services", `{"name":"x","nmae":"y"}`, 400, "bad_request", "nmae", `unknown field "nmae"`},
		{"wrong type name", "POST", "/v1/services", `{"name":5}`, 400, "bad_request", "name", "must be a string"},
		{"trailing data", "POST", "/v1/services", `{"name":"x"} {"name":"y"}`, 400, "bad_request", "", "unexpected data"},
		{"body over 1 MiB", "POST", "/v1/services", big, 413, "too_large", "", "larger than the limit"},
		// Service names and policies.
		{"name missing", "POST", "/v1/services", `{}`, 422, "invalid", "name", "service name is required"},
		{"name uppercase", "POST", "/v1/services", `{"name":"Hello"}`, 422, "invalid", "name", "must start with a lowercase letter"},
		{"name underscore", "POST", "/v1/services", `{"name":"he_llo"}`, 422, "invalid", "name", "'_'"},
		{"name starts with digit", "POST", "/v1/services", `{"name":"1hello"}`, 422, "invalid", "name", "must start with a lowercase letter"},
		{"name ends with dash", "POST", "/v1/services", `{"name":"hello-"}`, 422, "invalid", "name", "must not end with '-'"},
		{"name too long", "POST", "/v1/services", `{"name":"` + strings.Repeat("a", 64) + `"}`, 422, "invalid", "name", "the limit is 63"},
		{"name with double dash", "POST", "/v1/services", `{"name":"a--b"}`, 422, "invalid", "name", `"--"`},
		{"duplicate service", "POST", "/v1/services", `{"name":"hello"}`, 409, "already_exists", "", `"hello" already exists`},
		{"create with bad policy", "POST", "/v1/services", `{"name":"x","policy":{"max_instances":0}}`, 422, "invalid", "policy.max_instances", "max_instances must be between 1"},
		{"policy min above max", "PATCH", "/v1/services/hello", `{"policy":{"min_instances":20}}`, 422, "invalid", "policy.min_instances", "must not exceed max_instances"},
		{"policy negative min", "PATCH", "/v1/services/hello", `{"policy":{"min_instances":-1}}`, 422, "invalid", "policy.min_instances", "0 or more"},
		{"policy negative standby", "PATCH", "/v1/services/hello", `{"policy":{"standby":-1}}`, 422, "invalid", "policy.standby", "between 0 and 16"},
		{"policy standby above 16", "PATCH", "/v1/services/hello", `{"policy":{"standby":17,"max_instances":20}}`, 422, "invalid", "policy.standby", "between 0 and 16, got 17"},
		{"policy standby above max", "PATCH", "/v1/services/hello", `{"policy":{"standby":3,"max_instances":2}}`, 422, "invalid", "policy.standby", "must not exceed max_instances (2)"},
		{"create with bad standby", "POST", "/v1/services", `{"name":"x","policy":{"standby":20}}`, 422, "invalid", "policy.standby", "between 0 and 16"},
		{"policy keep_previous above 24h", "PATCH", "/v1/services/hello", `{"policy":{"keep_previous":"25h"}}`, 422, "invalid", "policy.keep_previous", "between 0 (off) and 24h"},
		{"policy schedule bad day", "PATCH", "/v1/services/hello", `{"policy":{"min_instances_schedule":[{"days":"mon-fry","from":"08:00","to":"18:00","tz":"UTC","min":1}]}}`, 422, "invalid", "policy.min_instances_schedule", `bad day "mon-fry"`},
		{"policy schedule bad time", "PATCH", "/v1/services/hello", `{"policy":{"min_instances_schedule":[{"days":"mon","from":"8h","to":"18:00","tz":"UTC","min":1}]}}`, 422, "invalid", "policy.min_instances_schedule", `bad from time "8h"`},
		{"policy schedule unknown zone", "PATCH", "/v1/services/hello", `{"policy":{"min_instances_schedule":[{"days":"mon","from":"08:00","to":"18:00","tz":"Europe/Atlantis","min":1}]}}`, 422, "invalid", "policy.min_instances_schedule", `unknown time zone "Europe/Atlantis"`},
		{"policy schedule above max", "PATCH", "/v1/services/hello", `{"policy":{"min_instances_schedule":[{"days":"mon","from":"08:00","to":"18:00","tz":"UTC","min":11}]}}`, 422, "invalid", "policy.min_instances_schedule", "must not exceed max_instances (10)"},
		{"policy schedule not a list", "PATCH", "/v1/services/hello", `{"policy":{"min_instances_schedule":"mon-fri"}}`, 400, "bad_request", "policy.min_instances_schedule", "min_instances_schedule"},
		{"policy singleton with max 3", "PATCH", "/v1/services/hello", `{"policy":{"singleton":true,"max_instances":3}}`, 422, "invalid", "policy.max_instances", "policy.singleton and policy.max_instances conflict"},
		{"policy singleton with standby", "PATCH", "/v1/services/hello", `{"policy":{"singleton":true,"standby":1}}`, 422, "invalid", "policy.standby", "policy.singleton and policy.standby conflict"},
		{"policy singleton not a bool", "PATCH", "/v1/services/hello", `{"policy":{"singleton":"yes"}}`, 400, "bad_request", "policy.singleton", "singleton"},
		{"policy standby not a number", "PATCH", "/v1/services/hello", `{"policy":{"standby":"two"}}`, 400, "bad_request", "policy.standby", "standby"},
		{"policy idle too short", "PATCH", "/v1/services/hello", `{"policy":{"idle_timeout":"500ms"}}`, 422, "invalid", "policy.idle_timeout", "between 1s"},
		{"policy bad duration", "PATCH", "/v1/services/hello", `{"policy":{"idle_timeout":"soon"}}`, 400, "bad_request", "", `"soon" is not a duration`},
		{"policy empty", "PATCH", "/v1/services/hello", `{"policy":{}}`, 422, "invalid", "policy", "nothing to change"},
		{"policy log bytes too small", "PATCH", "/v1/services/hello", `{"policy":{"log_max_bytes":1024}}`, 422, "invalid", "policy.log_max_bytes", "between 1 MiB"},
		{"policy log age too long", "PATCH", "/v1/services/hello", `{"policy":{"log_max_age":"2200h"}}`, 422, "invalid", "policy.log_max_age", "between 1m and 2160h"},
		{"policy request logs not a bool", "PATCH", "/v1/services/hello", `{"policy":{"request_logs":"yes"}}`, 400, "bad_request", "policy.request_logs", "request_logs"},
		{"policy async concurrency 0", "PATCH", "/v1/services/hello", `{"policy":{"async_concurrency":0}}`, 422, "invalid", "policy.async_concurrency", "between 1 and 1000"},
		{"policy max attempts too many", "PATCH", "/v1/services/hello", `{"policy":{"max_attempts":101}}`, 422, "invalid", "policy.max_attempts", "between 1 and 100"},
		{"policy min backoff too short", "PATCH", "/v1/services/hello", `{"policy":{"min_backoff":"5ms"}}`, 422, "invalid", "policy.min_backoff", "between 10ms and 1h"},
		{"policy max backoff too long", "PATCH", "/v1/services/hello", `{"policy":{"max_backoff":"25h"}}`, 422, "invalid", "policy.max_backoff", "between 10ms and 24h"},
		{"policy max backoff below min", "PATCH", "/v1/services/hello", `{"policy":{"min_backoff":"10s","max_backoff":"5s"}}`, 422, "invalid", "policy.max_backoff", "must not be below min_backoff"},
		{"policy max age too long", "PATCH", "/v1/services/hello", `{"policy":{"max_age":"169h"}}`, 422, "invalid", "policy.max_age", "between 1s and 168h"},
		{"create with bad async policy", "POST", "/v1/services", `{"name":"x","policy":{"max_attempts":0}}`, 422, "invalid", "policy.max_attempts", "between 1 and 100"},
		{"policy negative target_rps", "PATCH", "/v1/services/hello", `{"policy":{"target_rps":-1}}`, 422, "invalid", "policy.target_rps", "between 0"},
		{"metrics not enabled", "GET", "/metrics", ``, 503, "unavailable", "", "metrics are not enabled"},
		{"policy unknown field", "PATCH", "/v1/services/hello", `{"policy":{"max":3}}`, 400, "bad_request", "max", "unknown field"},
		{"policy of missing service", "PATCH", "/v1/services/nope", `{"policy":{"min_instances":1}}`, 404, "not_found", "", `service "nope" not found`},
		{"get missing service", "GET", "/v1/services/nope", ``, 404, "not_found", "", `service "nope" not found`},
		{"delete missing service", "DELETE", "/v1/services/nope", ``, 404, "not_found", "", `service "nope" not found`},
		// Versions.
		{"version image missing", "POST", "/v1/services/hello/versions", `{"port":8080}`, 422, "invalid", "image", "image is required"},
		{"version bad image", "POST", "/v1/services/hello/versions", `{"image":"Hello World"}`, 422, "invalid", "image", "not a valid image reference"},
		{"version negative port", "POST", "/v1/services/hello/versions", `{"image":"hello:3","port":-1}`, 422, "invalid", "port", "between 1 and 65535, got -1"},
		{"version port too big", "POST", "/v1/services/hello/versions", `{"image":"hello:3","port":70000}`, 422, "invalid", "port", "got 70000"},
		{"version port as string", "POST", "/v1/services/hello/versions", `{"image":"hello:3","port":"8080"}`, 400, "bad_request", "port", "must be a whole number, got a string"},
		{"version env not a list", "POST", "/v1/services/hello/versions", `{"image":"hello:3","env":"A=1"}`, 400, "bad_request", "env", "must be an array of strings"},
		{"version env without =", "POST", "/v1/services/hello/versions", `{"image":"hello:3","env":["GREETING"]}`, 422, "invalid", "env", "is not KEY=VALUE"},
		{"version env bad key", "POST", "/v1/services/hello/versions", `{"image":"hello:3","env":["1A=x"]}`, 422, "invalid", "env", "not a valid variable name"},
		{"version env duplicate", "POST", "/v1/services/hello/versions", `{"image":"hello:3","env":["A=1","B=2","A=3"]}`, 422, "invalid", "env", "A is set twice"},
		{"version memory too small", "POST", "/v1/services/hello/versions", `{"image":"hello:3","memory_limit":"1Mi"}`, 422, "invalid", "memory_limit", "at least 6Mi"},
		{"version memory bad unit", "POST", "/v1/services/hello/versions", `{"image":"hello:3","memory_limit":"5 parsecs"}`, 400, "bad_request", "", "unknown unit"},
		{"version negative cpu", "POST", "/v1/services/hello/versions", `{"image":"hello:3","cpu_limit":-1}`, 422, "invalid", "cpu_limit", "between 0"},
		{"version negative concurrency", "POST", "/v1/services/hello/versions", `{"image":"hello:3","max_concurrency":-5}`, 422, "invalid", "max_concurrency", "got -5"},
		{"version timeout too long", "POST", "/v1/services/hello/versions", `{"image":"hello:3","timeout":"2h"}`, 422, "invalid", "timeout", "between 1s and 1h"},
		{"version timeout zero", "POST", "/v1/services/hello/versions", `{"image":"hello:3","timeout":"0s"}`, 422, "invalid", "timeout", "between 1s and 1h, got 0s"},
		{"version timeout zero seconds", "POST", "/v1/services/hello/versions", `{"image":"hello:3","timeout":0}`, 422, "invalid", "timeout", "between 1s and 1h, got 0s"},
		{"version readiness path relative", "POST", "/v1/services/hello/versions", `{"image":"hello:3","readiness_path":"healthz"}`, 422, "invalid", "readiness_path", "absolute URL path"},
		{"version liveness path relative", "POST", "/v1/services/hello/versions", `{"image":"hello:3","liveness":{"path":"live"}}`, 422, "invalid", "liveness.path", "absolute URL path"},
		{"version liveness period short", "POST", "/v1/services/hello/versions", `{"image":"hello:3","liveness":{"period":"100ms"}}`, 422, "invalid", "liveness.period", "between 1s and 1h"},
		{"version liveness unknown field", "POST", "/v1/services/hello/versions", `{"image":"hello:3","liveness":{"path":"/l","every":"1s"}}`, 400, "bad_request", "every", "unknown field"},
		{"version image_id not settable", "POST", "/v1/services/hello/versions", `{"image":"hello:3","image_id":"sha256:x"}`, 400, "bad_request", "image_id", "unknown field"},
		{"version of missing service", "POST", "/v1/services/nope/versions", `{"image":"hello:3"}`, 404, "not_found", "", `service "nope" not found`},
		{"get version not a number", "GET", "/v1/services/hello/versions/abc", ``, 400, "bad_request", "number", "not a version number"},
		{"get missing version", "GET", "/v1/services/hello/versions/9", ``, 404, "not_found", "", "has no version 9"},
		{"delete version with traffic", "DELETE", "/v1/services/hello/versions/1", ``, 409, "conflict", "", "carries 100% of traffic"},
		{"delete missing version", "DELETE", "/v1/services/hello/versions/9", ``, 404, "not_found", "", "has no version 9"},
		// Traffic.
		{"weights sum 90", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":50},{"version":2,"percent":40}]}`, 422, "invalid", "weights", "sum to exactly 100, got 90"},
		{"weights sum 110", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":60},{"version":2,"percent":50}]}`, 422, "invalid", "weights", "got 110"},
		{"weight negative", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":110},{"version":2,"percent":-10}]}`, 422, "invalid", "weights[0].percent", "between 0 and 100"},
		{"weight of missing version", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":7,"percent":100}]}`, 422, "invalid", "weights[0].version", "has no version 7"},
		{"weight duplicate version", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":50},{"version":1,"percent":50}]}`, 422, "invalid", "weights[1].version", "listed twice"},
		{"weights empty", "PUT", "/v1/services/hello/traffic", `{"weights":[]}`, 422, "invalid", "weights", "weights are required"},
		{"weights wrong type", "PUT", "/v1/services/hello/traffic", `{"weights":{"1":100}}`, 400, "bad_request", "weights", "must be an array"},
		{"weight percent fraction", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":99.5},{"version":2,"percent":0.5}]}`, 400, "bad_request", "weights.percent", "whole number"},
		{"tag to missing version", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":100}],"tags":{"canary":5}}`, 422, "invalid", "tags.canary", "has no version 5"},
		{"tag reserved", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":100}],"tags":{"v2":1}}`, 422, "invalid", "tags.v2", "reserved"},
		{"tag bad name", "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":100}],"tags":{"Canary":2}}`, 422, "invalid", "tags.Canary", "lowercase"},
		{"traffic of missing service", "PUT", "/v1/services/nope/traffic", `{"weights":[{"version":1,"percent":100}]}`, 404, "not_found", "", `service "nope" not found`},
		{"rollback without earlier entry", "POST", "/v1/services/hello/traffic/rollback", ``, 409, "conflict", "", "no earlier traffic entry"},
		{"rollback to unknown entry", "POST", "/v1/services/hello/traffic/rollback", `{"to_entry":999}`, 404, "not_found", "", "no traffic entry 999"},
		{"rollback negative entry", "POST", "/v1/services/hello/traffic/rollback", `{"to_entry":-1}`, 422, "invalid", "to_entry", "must be a traffic entry ID"},
		// Seed-compatible routes share the validation.
		{"seed bad name", "POST", "/serviceDefinitions", `{"name":"Bad Name"}`, 422, "invalid", "name", "must start with a lowercase letter"},
		{"seed unknown field", "POST", "/serviceDefinitions", `{"name":"x","image":"y"}`, 400, "bad_request", "image", "unknown field"},
		{"seed version missing image", "POST", "/serviceDefinitions/hello/versions", `{"image_tag":"1","port":8080}`, 422, "invalid", "image_name", "image_name is required"},
		{"seed version negative port", "POST", "/serviceDefinitions/hello/versions", `{"image_name":"hello","image_tag":"1","port":-80}`, 422, "invalid", "port", "got -80"},
		{"seed version bad env", "POST", "/serviceDefinitions/hello/versions", `{"image_name":"hello","image_tag":"1","env_vars":["NOPE"]}`, 422, "invalid", "env_vars", "is not KEY=VALUE"},
		{"seed weights sum", "POST", "/serviceDefinitions/hello/trafficWeights", `{"weights":[{"service_version_id":1,"weight":60},{"service_version_id":2,"weight":60}]}`, 422, "invalid", "weights", "got 120"},
		{"seed weight of other service", "POST", "/serviceDefinitions/hello/trafficWeights", `{"weights":[{"service_version_id":3,"weight":100}]}`, 422, "invalid", "weights[0].service_version_id", `belongs to service "other"`},
		{"seed weight of missing ID", "POST", "/serviceDefinitions/hello/trafficWeights", `{"weights":[{"service_version_id":42,"weight":100}]}`, 422, "invalid", "weights[0].service_version_id", "no version with ID 42"},
		{"seed missing service", "GET", "/serviceDefinitions/nope", ``, 404, "not_found", "", `service "nope" not found`},
		// Routing.
		{"unknown route", "GET", "/v1/nothing", ``, 404, "not_found", "", "no route GET /v1/nothing"},
		{"wrong method", "PUT", "/v1/services", `{}`, 405, "method_not_allowed", "", "allowed: GET, HEAD, POST"},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.do(tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("got status %d, want %d; body %s", status, tc.status, body)
			}
			var e apiError
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if e.Error.Code != tc.code {
				t.Errorf("got code %q, want %q", e.Error.Code, tc.code)
			}
			if e.Error.Field != tc.field {
				t.Errorf("got field %q, want %q", e.Error.Field, tc.field)
			}
			if !strings.Contains(e.Error.Message, tc.msg) {
				t.Errorf("got message %q, want it to contain %q", e.Error.Message, tc.msg)
			}
		})
	}
	if after := h.state(); after != before {
		t.Fatalf("bad requests changed state:\nbefore %s\nafter  %s", before, after)
	}
	if n := h.syncs.Load(); n != syncs {
		t.Fatalf("bad requests waited %d times for the router (Sync), want 0: a 4xx changed nothing", n-syncs)
	}
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, method, path, auth string
		want                     int
	}{
		{"no header", "GET", "/v1/services", "", 401},
		{"wrong token", "GET", "/v1/services", "Bearer nope", 401},
		{"wrong scheme", "GET", "/v1/services", "Basic " + token, 401},
		{"token prefix", "GET", "/v1/services", "Bearer test", 401},
		{"seed route needs a token", "GET", "/serviceDefinitions", "", 401},
		{"openapi needs a token", "GET", "/v1/openapi.json", "", 401},
		{"right token", "GET", "/v1/services", "Bearer " + token, 200},
		{"healthz is open", "GET", "/healthz", "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.doAuth(tc.method, tc.path, "", tc.auth)
			if status != tc.want {
				t.Fatalf("got %d, want %d: %s", status, tc.want, body)
			}
			if status == 401 && !strings.Contains(string(body), `"code":"unauthorized"`) {
				t.Fatalf("401 body: %s", body)
			}
		})
	}
	// A write without a token changes nothing.
	if status, _ := h.doAuth("POST", "/v1/services", `{"name":"x"}`, ""); status != 401 {
		t.Fatalf("unauthenticated create: %d", status)
	}
	if got := h.must(200, "GET", "/v1/services", ""); len(got["services"].([]any)) != 0 {
		t.Fatalf("unauthenticated create stored a service: %v", got)
	}
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	sv := h.must(201, "POST", "/v1/services", `{"name":"hello","policy":{"idle_timeout":"2s"}}`)
	if sv["host"] != "hello.localhost" || sv["url"] != "http://hello.localhost:8080" {
		t.Fatalf("host/url: %v %v", sv["host"], sv["url"])
	}
	if p := sv["policy"].(map[string]any); p["idle_timeout"] != "2s" || p["max_instances"] != float64(10) || p["pause_after"] != "30s" {
		t.Fatalf("policy with defaults: %v", p)
	}
	v1 := h.must(201, "POST", "/v1/services/hello/versions", `{"image":"hello:1","port":8080,"env":["GREETING=Go"],"memory_limit":"256Mi","cpu_limit":0.5,"timeout":30}`)
	if v1["number"] != float64(1) || v1["memory_limit"] != "256Mi" || v1["timeout"] != "30s" {
		t.Fatalf("v1: %v", v1)
	}
	tr := h.must(200, "GET", "/v1/services/hello/traffic", "")
	if diff := cmp.Diff([]any{map[string]any{"version": float64(1), "percent": float64(100)}}, tr["weights"]); diff != "" {
		t.Fatalf("first version traffic (-want +got):\n%s", diff)
	}
	// Omitted: the default timeout, and no memory limit, which JSON leaves
	// out (the CLI's table says "none"), as it does an explicit 0.
	v2 := h.must(201, "POST", "/v1/services/hello/versions", `{"image":"hello:2","memory_limit":0}`)
	if _, ok := v2["memory_limit"]; ok || v2["timeout"] != "1m0s" {
		t.Fatalf("v2: memory_limit %v (want it left out), timeout %v (want 1m0s)", v2["memory_limit"], v2["timeout"])
	}
	h.must(201, "POST", "/v1/services/hello/versions", `{"image":"hello:3","timeout":null}`)
	if got := h.must(200, "GET", "/v1/services/hello/traffic/history", ""); len(got["entries"].([]any)) != 1 {
		t.Fatalf("creating versions changed traffic: %v", got)
	}
	h.must(200, "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":90},{"version":2,"percent":10}],"tags":{"canary":2},"message":"canary"}`)
	h.must(200, "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":3,"percent":100}]}`)
	rb := h.must(201, "POST", "/v1/services/hello/traffic/rollback", "")
	if rb["tags"].(map[string]any)["canary"] != float64(2) || !strings.HasPrefix(rb["message"].(string), "rollback to entry") {
		t.Fatalf("rollback: %v", rb)
	}
	// Policy changes do not create versions.
	h.must(200, "PATCH", "/v1/services/hello", `{"policy":{"min_instances":1}}`)
	if got := h.must(200, "GET", "/v1/services/hello/versions", ""); len(got["versions"].([]any)) != 3 {
		t.Fatalf("versions after policy change: %v", got)
	}
	h.must(204, "DELETE", "/v1/services/hello/versions/v3", "")
	h.must(404, "GET", "/v1/services/hello/versions/3", "")
	h.must(204, "DELETE", "/v1/services/hello", "")
	h.must(404, "GET", "/v1/services/hello/traffic/history", "")
	if status, _ := h.do("GET", "/healthz", ""); status != 200 {
		t.Fatalf("healthz: %d", status)
	}
}

// TestSeedWalkthrough replays the walkthrough's requests with their bodies
// unchanged and reads what its jq filters read (.host, .[].ID).
func TestSeedWalkthrough(t *testing.T) {
	h := newHarness(t)
	h.must(201, "POST", "/serviceDefinitions", `{"name": "hello"}`)
	svc := h.must(200, "GET", "/serviceDefinitions/hello", "")
	if svc["host"] != "hello.localhost" {
		t.Fatalf(".host = %v", svc["host"])
	}
	for _, g := range []string{"Go", "Docker", "sqlite"} {
		h.must(201, "POST", "/serviceDefinitions/hello/versions",
			`{"image_name": "hello", "image_tag": "latest", "port": 8080, "env_vars": ["GREETING=`+g+`"]}`)
	}
	_, body := h.do("GET", "/serviceDefinitions/hello/versions", "")
	var versions []struct {
		ID        int64    `json:"ID"`
		ImageName string   `json:"image_name"`
		ImageTag  string   `json:"image_tag"`
		EnvVars   []string `json:"env_vars"`
	}
	if err := json.Unmarshal(body, &versions); err != nil {
		t.Fatalf(".[].ID on %s: %v", body, err)
	}
	if len(versions) != 3 || versions[0].ImageName != "hello" || versions[0].ImageTag != "latest" || versions[2].EnvVars[0] != "GREETING=sqlite" {
		t.Fatalf("versions: %+v", versions)
	}
	ids := []int64{versions[0].ID, versions[1].ID, versions[2].ID}
	weights := `{"weights": [{"service_version_id": ` + itoa(ids[0]) + `, "weight": 10}, {"service_version_id": ` + itoa(ids[1]) +
		`, "weight": 30}, {"service_version_id": ` + itoa(ids[2]) + `, "weight": 60}]}`
	h.must(201, "POST", "/serviceDefinitions/hello/trafficWeights", weights)
	tw := h.must(200, "GET", "/serviceDefinitions/hello/trafficWeights", "")
	want := []any{
		map[string]any{"service_version_id": float64(ids[0]), "weight": float64(10)},
		map[string]any{"service_version_id": float64(ids[1]), "weight": float64(30)},
		map[string]any{"service_version_id": float64(ids[2]), "weight": float64(60)},
	}
	if diff := cmp.Diff(want, tw["weights"]); diff != "" {
		t.Fatalf("trafficWeights (-want +got):\n%s", diff)
	}
	// The same split is visible through /v1.
	tr := h.must(200, "GET", "/v1/services/hello/traffic", "")
	if diff := cmp.Diff([]any{
		map[string]any{"version": float64(1), "percent": float64(10)},
		map[string]any{"version": float64(2), "percent": float64(30)},
		map[string]any{"version": float64(3), "percent": float64(60)},
	}, tr["weights"]); diff != "" {
		t.Fatalf("/v1 traffic (-want +got):\n%s", diff)
	}
	_, list := h.do("GET", "/serviceDefinitions", "")
	var services []map[string]any
	if err := json.Unmarshal(list, &services); err != nil || len(services) != 1 || services[0]["host"] != "hello.localhost" {
		t.Fatalf("GET /serviceDefinitions: %s (%v)", list, err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestPatchAsyncPolicy: the async call fields of the policy change with
// PATCH and read back; a service that never set them has the defaults.
func TestPatchAsyncPolicy(t *testing.T) {
	h := newHarness(t)
	h.fixture()
	resp, body := h.call("PATCH", "/v1/services/hello",
		`{"policy":{"async_concurrency":3,"max_attempts":7,"min_backoff":"200ms","max_backoff":"2m","max_age":"48h"}}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("PATCH: %d %s", resp.StatusCode, body)
	}
	_, body = h.call("GET", "/v1/services/hello", "", nil)
	for _, want := range []string{`"async_concurrency":3`, `"max_attempts":7`, `"min_backoff":"200ms"`, `"max_backoff":"2m0s"`,
		`"max_age":"48h0m0s"`, `"max_instances":10`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("service %s lacks %s", body, want)
		}
	}
	_, body = h.call("GET", "/v1/services/other", "", nil)
	for _, want := range []string{`"async_concurrency":10`, `"max_attempts":5`, `"min_backoff":"1s"`, `"max_backoff":"5m0s"`, `"max_age":"24h0m0s"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("a default service %s lacks %s", body, want)
		}
	}
}

// TestOpenAPIMatchesRoutes: every registered route is described, and every
// described operation is registered.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	h := newHarness(t)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var described []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			described = append(described, strings.ToUpper(method)+" "+path)
		}
	}
	registered := h.api.Routes()
	sort.Strings(described)
	sort.Strings(registered)
	if diff := cmp.Diff(registered, described); diff != "" {
		t.Fatalf("routes (-registered +described):\n%s", diff)
	}
	status, body := h.do("GET", "/v1/openapi.json", "")
	if status != 200 || string(body) != string(api.OpenAPI()) {
		t.Fatalf("GET /v1/openapi.json: %d", status)
	}
}

// TestConcurrentTrafficUpdates: 20 concurrent PUTs through the API lose no
// history entry, and every entry is valid.
func TestConcurrentTrafficUpdates(t *testing.T) {
	h := newHarness(t)
	h.fixture()
	h.must(201, "POST", "/v1/services/hello/versions", `{"image":"hello:3"}`)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := (i * 7) % 101
			body := fmt.Sprintf(`{"weights":[{"version":%d,"percent":%d},{"version":%d,"percent":%d}],"message":"update %d"}`,
				1+i%3, a, 1+(i+1)%3, 100-a, i)
			if status, resp := h.send(t, "PUT", "/v1/services/hello/traffic", body, "Bearer "+token); status != 200 {
				t.Errorf("update %d: %d %s", i, status, resp)
			}
		}()
	}
	wg.Wait()
	var hist struct {
		Entries []struct {
			Weights []struct{ Version, Percent int } `json:"weights"`
			Message string                           `json:"message"`
		} `json:"entries"`
	}
	_, body := h.do("GET", "/v1/services/hello/traffic/history", "")
	if err := json.Unmarshal(body, &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist.Entries) != 21 {
		t.Fatalf("history has %d entries, want 21 (the first version's and 20 updates)", len(hist.Entries))
	}
	seen := map[string]bool{}
	for _, e := range hist.Entries[1:] {
		sum := 0
		for _, w := range e.Weights {
			sum += w.Percent
		}
		if sum != 100 || len(e.Weights) != 2 {
			t.Fatalf("invalid entry %+v", e)
		}
		seen[e.Message] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d distinct updates in the history, want 20", len(seen))
	}
}
