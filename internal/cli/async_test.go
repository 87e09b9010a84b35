package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/cli"
	"github.com/wisp-run/wisp/internal/core"
)

// fakeWisp imitates the admin API's routes of async calls, triggers and
// schedules, and the router's /s/ and /async/ routes, on one server. It
// knows one service, hello; anything else is not found.
type fakeWisp struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	// got is the last request of each route pattern, with its body.
	got map[string]gotReq
	// polls counts GET /v1/calls/slow: it is running for the first two.
	polls int
}

type gotReq struct {
	method, path, query, body string
	header                    http.Header
}

func newFakeWisp(t *testing.T) *fakeWisp {
	t.Helper()
	f := &fakeWisp{t: t, got: map[string]gotReq{}}
	mux := http.NewServeMux()
	notFound := func(w http.ResponseWriter, what, name string) {
		writeJSON(w, 404, map[string]any{"error": map[string]string{"code": "not_found", "message": fmt.Sprintf("%s %q not found", what, name)}})
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fin := at.Add(time.Second)
	call := func(id, state string) core.Call {
		c := core.Call{ID: id, Service: "hello", State: state, Origin: "api", SubmittedAt: at,
			Request:  core.CallRequest{Method: "POST", Path: "/jobs", Query: "x=1"},
			Attempts: []core.CallAttempt{{StartedAt: at, FinishedAt: &fin, Status: 503, DurationMS: 12.5, Version: 2, Error: "503 Service Unavailable"}}}
		switch state {
		case core.CallSucceeded:
			c.Attempts = append(c.Attempts, core.CallAttempt{StartedAt: fin, Status: 200, DurationMS: 3, Version: 2})
			c.Response = &core.CallResponse{Status: 200, Body: []byte("job done\n")}
			c.FinishedAt = &fin
		case core.CallDead:
			c.Error = "out of attempts (5)"
			c.Response = &core.CallResponse{Status: 503, Body: []byte("overloaded")}
			c.FinishedAt = &fin
		}
		return c
	}
	handle := func(pattern string, h func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			f.mu.Lock()
			f.got[pattern] = gotReq{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, body: string(b), header: r.Header.Clone()}
			f.mu.Unlock()
			isRouter := strings.HasPrefix(r.URL.Path, "/s/") || strings.HasPrefix(r.URL.Path, "/async/")
			if !isRouter && r.Header.Get("Authorization") != "Bearer tok" {
				writeJSON(w, 401, map[string]any{"error": map[string]string{"code": "unauthorized", "message": "the admin token is wrong"}})
				return
			}
			if isRouter && r.Header.Get("Authorization") != "" {
				t.Errorf("the admin token was sent to the router: %s %s", r.Method, r.URL)
			}
			h(w, r)
		})
	}
	handle("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "hello" {
			notFound(w, "service", r.PathValue("name"))
			return
		}
		writeJSON(w, 200, core.Service{Name: "hello", URL: "http://hello.localhost:" + f.srv.URL[strings.LastIndex(f.srv.URL, ":")+1:]})
	})
	handle("/s/{service}/{path...}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("service") != "hello" {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, "wisp: no service named \""+r.PathValue("service")+"\"\n")
			return
		}
		status := 200
		if s := r.URL.Query().Get("status"); s != "" {
			_, _ = fmt.Sscan(s, &status)
		}
		w.WriteHeader(status)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s /%s %s", r.Method, r.PathValue("path"), b)
	})
	handle("/async/{service}/{path...}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("service") != "hello" {
			writeJSON(w, 404, map[string]any{"error": map[string]any{"status": 404, "message": "no service named \"" + r.PathValue("service") + "\""}})
			return
		}
		id := r.URL.Query().Get("id") // the call a test wants to wait for
		if id == "" {
			id = "c1"
		}
		w.Header().Set("Wisp-Call-Id", id)
		w.Header().Set("Location", "/v1/calls/"+id)
		writeJSON(w, 202, map[string]any{"id": id, "service": "hello", "state": "queued", "status_url": "/v1/calls/" + id,
			"duplicate": r.Header.Get("Idempotency-Key") == "again"})
	})
	handle("GET /v1/calls/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch id := r.PathValue("id"); id {
		case "c1":
			writeJSON(w, 200, call(id, core.CallSucceeded))
		case "dead1":
			writeJSON(w, 200, call(id, core.CallDead))
		case "slow":
			f.mu.Lock()
			f.polls++
			n := f.polls
			f.mu.Unlock()
			if n <= 2 {
				writeJSON(w, 200, call(id, core.CallRunning))
				return
			}
			writeJSON(w, 200, call(id, core.CallSucceeded))
		case "stuck":
			writeJSON(w, 200, call(id, core.CallQueued))
		default:
			notFound(w, "call", id)
		}
	})
	handle("GET /v1/services/{name}/calls", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "hello" {
			notFound(w, "service", r.PathValue("name"))
			return
		}
		calls := []core.Call{call("dead1", core.CallDead), call("c1", core.CallSucceeded)}
		if r.URL.Query().Get("state") == "queued" {
			calls = []core.Call{}
		}
		writeJSON(w, 200, map[string]any{"calls": calls})
	})
	handle("POST /v1/calls/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "dead1" {
			writeJSON(w, 409, map[string]any{"error": map[string]string{"code": "conflict", "message": "call " + r.PathValue("id") + " is succeeded: only a dead or failed call can be retried"}})
			return
		}
		writeJSON(w, 202, call("dead1", core.CallQueued))
	})
	trig := core.Trigger{Name: "orders", Service: "hello", Subject: "orders.>", Filters: []string{"type=x"}, CreatedAt: at}
	handle("POST /v1/triggers", func(w http.ResponseWriter, r *http.Request) {
		var t core.Trigger
		_ = json.NewDecoder(r.Body).Decode(&t)
		if t.Service != "hello" {
			notFound(w, "service", t.Service)
			return
		}
		t.CreatedAt = at
		writeJSON(w, 201, t)
	})
	handle("GET /v1/triggers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"triggers": []core.Trigger{trig}})
	})
	handle("GET /v1/triggers/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "orders" {
			notFound(w, "trigger", r.PathValue("name"))
			return
		}
		t := trig
		c := call("ev1", core.CallSucceeded)
		c.Origin = "trigger:orders"
		t.Deliveries = []core.Call{c}
		writeJSON(w, 200, t)
	})
	handle("DELETE /v1/triggers/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "orders" {
			notFound(w, "trigger", r.PathValue("name"))
			return
		}
		w.WriteHeader(204)
	})
	handle("POST /v1/events", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 202, map[string]string{"id": r.Header.Get("ce-id"), "subject": r.URL.Query().Get("subject")})
	})
	next := at.Add(time.Hour)
	sched := core.Schedule{Name: "tick", Service: "hello", Cron: "*/5 * * * *", TZ: "Europe/Paris", CreatedAt: at, Next: &next}
	handle("POST /v1/schedules", func(w http.ResponseWriter, r *http.Request) {
		var s core.Schedule
		_ = json.NewDecoder(r.Body).Decode(&s)
		if s.Cron == "bad" {
			writeJSON(w, 400, map[string]any{"error": map[string]string{"code": "invalid", "message": `cron "bad": expected 5 fields`, "field": "cron"}})
			return
		}
		s.CreatedAt, s.Next = at, &next
		writeJSON(w, 201, s)
	})
	handle("GET /v1/schedules", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"schedules": []core.Schedule{sched}})
	})
	schedule := func(h func(w http.ResponseWriter, r *http.Request)) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("name") != "tick" {
				notFound(w, "schedule", r.PathValue("name"))
				return
			}
			h(w, r)
		}
	}
	handle("GET /v1/schedules/{name}", schedule(func(w http.ResponseWriter, r *http.Request) {
		s := sched
		s.Runs = []core.ScheduleRun{{At: at, FiredAt: at, CallID: "c1", State: "succeeded", DurationMS: 40},
			{At: at.Add(-5 * time.Minute), FiredAt: at, State: "skipped", Note: "the previous run was not done (concurrency forbid)"}}
		writeJSON(w, 200, s)
	}))
	handle("PATCH /v1/schedules/{name}", schedule(func(w http.ResponseWriter, r *http.Request) {
		var p core.SchedulePatch
		_ = json.NewDecoder(r.Body).Decode(&p)
		s := sched
		if p.Suspend != nil {
			s.Suspend = *p.Suspend
		}
		writeJSON(w, 200, s)
	}))
	handle("DELETE /v1/schedules/{name}", schedule(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	handle("GET /v1/schedules/{name}/next", schedule(func(w http.ResponseWriter, r *http.Request) {
		next := []string{"2026-01-02T04:05:00+01:00", "2026-01-02T04:10:00+01:00", "2026-01-02T04:15:00+01:00"}
		n := 5
		_, _ = fmt.Sscan(r.URL.Query().Get("n"), &n)
		writeJSON(w, 200, map[string]any{"next": next[:min(n, len(next))]})
	}))
	handle("POST /v1/schedules/{name}/run", schedule(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 202, map[string]string{"call_id": "c1"})
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// last returns the last request of a route pattern.
func (f *fakeWisp) last(pattern string) gotReq {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.got[pattern]
	if !ok {
		f.t.Fatalf("no request of %s", pattern)
	}
	return g
}

func (f *fakeWisp) run(args ...string) (code int, stdout, stderr string) {
	f.t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"--server", f.srv.URL, "--token", "tok"}, args...)
	code = cli.Run(f.t.Context(), full, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

// check runs a command and checks its exit code and that stdout and
// stderr hold the wanted strings.
func (f *fakeWisp) check(t *testing.T, args []string, code int, stdout, stderr []string) string {
	t.Helper()
	c, out, errOut := f.run(args...)
	if c != code {
		t.Fatalf("wisp %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), c, code, out, errOut)
	}
	for _, s := range stdout {
		if !strings.Contains(out, s) {
			t.Errorf("wisp %s: stdout\n%s\nwant %q in it", strings.Join(args, " "), out, s)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(errOut, s) {
			t.Errorf("wisp %s: stderr\n%s\nwant %q in it", strings.Join(args, " "), errOut, s)
		}
	}
	return out
}

func TestInvoke(t *testing.T) {
	f := newFakeWisp(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "order.json")
	if err := os.WriteFile(file, []byte(`{"from":"file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.json")
	cases := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string
		// route and what it must have seen, when set.
		route, path, query, body string
		header                   map[string]string
	}{
		{name: "sync GET, router from the service URL", args: []string{"invoke", "hello", "/greet?x=1"}, stdout: []string{"GET /greet "},
			route: "/s/{service}/{path...}", path: "/s/hello/greet", query: "x=1"},
		{name: "no path", args: []string{"invoke", "hello"}, stdout: []string{"GET / "}, route: "/s/{service}/{path...}", path: "/s/hello/"},
		{name: "-d makes a POST, -H adds headers", args: []string{"invoke", "hello", "/orders", "-d", `{"n":1}`, "-H", "Content-Type: application/json", "-H", "X-A:1"},
			stdout: []string{`POST /orders {"n":1}`}, route: "/s/{service}/{path...}", body: `{"n":1}`,
			header: map[string]string{"Content-Type": "application/json", "X-A": "1"}},
		{name: "-X and -d @file", args: []string{"invoke", "hello", "/orders", "-X", "put", "-d", "@" + file}, stdout: []string{`PUT /orders {"from":"file"}`}},
		{name: "--router", args: []string{"invoke", "hello", "/r", "--router", f.srv.URL}, stdout: []string{"GET /r "}},
		{name: "404 of the service", args: []string{"invoke", "hello", "/x?status=404"}, code: 1, stdout: []string{"GET /x "},
			stderr: []string{"HTTP 404 Not Found", "the service answered 404 Not Found"}},
		{name: "500 of the service", args: []string{"invoke", "hello", "/x?status=500"}, code: 1, stderr: []string{"HTTP 500 Internal Server Error"}},
		{name: "sync -o json", args: []string{"invoke", "hello", "/j", "-o", "json"}, stdout: []string{`"status": 200`, `"body": "GET /j "`}},
		{name: "async", args: []string{"invoke", "hello", "/jobs?x=1", "-d", "work", "--async", "--idempotency-key", "k1", "--callback", "http://cb.example/done"},
			stdout: []string{"Submitted async call c1 of hello", "Read it with: wisp calls get c1"},
			route:  "/async/{service}/{path...}", path: "/async/hello/jobs", query: "x=1", body: "work",
			header: map[string]string{"Prefer": "respond-async", "Idempotency-Key": "k1", "X-Callback-Url": "http://cb.example/done"}},
		{name: "async duplicate", args: []string{"invoke", "hello", "--async", "--idempotency-key", "again"}, stdout: []string{"an earlier submission with this idempotency key"}},
		{name: "async -o json", args: []string{"invoke", "hello", "--async", "-o", "json"}, stdout: []string{`"id": "c1"`, `"status_url": "/v1/calls/c1"`}},
		{name: "async --wait", args: []string{"invoke", "hello", "/jobs?id=slow", "--async", "--wait", "--poll-interval", "10ms"}, stdout: []string{"job done"}},
		{name: "async --wait, dead", args: []string{"invoke", "hello", "/jobs?id=dead1", "--async", "--wait", "--poll-interval", "10ms"}, code: 1,
			stdout: []string{"overloaded"}, stderr: []string{"HTTP 503", "call dead1 is dead: out of attempts (5)", "wisp calls retry dead1"}},
		{name: "async --wait, timeout", args: []string{"invoke", "hello", "/jobs?id=stuck", "--async", "--wait", "--timeout", "100ms", "--poll-interval", "10ms"}, code: 1,
			stderr: []string{"call stuck is still queued after 100ms", "wisp calls get stuck"}},
		{name: "missing SERVICE", args: []string{"invoke"}, code: 2, stderr: []string{"accepts between 1 and 2 arg(s)"}},
		{name: "-d @missing file", args: []string{"invoke", "hello", "-d", "@" + missing}, code: 2, stderr: []string{"-d @" + missing + ": no such file or directory"}},
		{name: "service not found", args: []string{"invoke", "nope"}, code: 1, stderr: []string{`service "nope" not found`}},
		{name: "router 404 for async", args: []string{"invoke", "nope", "--async", "--router", f.srv.URL}, code: 1, stderr: []string{`no service named "nope"`}},
		{name: "router 404 for sync", args: []string{"invoke", "nope", "--router", f.srv.URL}, code: 1, stderr: []string{"HTTP 404 Not Found"}, stdout: []string{`no service named "nope"`}},
		{name: "--wait without --async", args: []string{"invoke", "hello", "--wait"}, code: 2, stderr: []string{"--wait needs --async"}},
		{name: "--idempotency-key without --async", args: []string{"invoke", "hello", "--idempotency-key", "k"}, code: 2, stderr: []string{"need --async"}},
		{name: "bad -H", args: []string{"invoke", "hello", "-H", "NoColon"}, code: 2, stderr: []string{`-H "NoColon" is not 'Name: value'`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.check(t, tc.args, tc.code, tc.stdout, tc.stderr)
			if tc.route == "" {
				return
			}
			g := f.last(tc.route)
			if tc.path != "" && g.path != tc.path {
				t.Errorf("path %q, want %q", g.path, tc.path)
			}
			if g.query != tc.query {
				t.Errorf("query %q, want %q", g.query, tc.query)
			}
			if g.body != tc.body {
				t.Errorf("body %q, want %q", g.body, tc.body)
			}
			for k, v := range tc.header {
				if got := g.header.Get(k); got != v {
					t.Errorf("header %s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestInvokeStdin: -d @- sends standard input.
func TestInvokeStdin(t *testing.T) {
	f := newFakeWisp(t)
	in := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(in, []byte("from stdin"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	f.check(t, []string{"invoke", "hello", "/in", "-d", "@-"}, 0, []string{"POST /in from stdin"}, nil)
}

func TestCalls(t *testing.T) {
	f := newFakeWisp(t)
	cases := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string
	}{
		{"list", []string{"calls", "list", "hello", "--state", "dead", "--limit", "2"}, 0,
			[]string{"ID", "STATE", "ATTEMPTS", "LAST STATUS", "SUBMITTED", "ORIGIN", "dead1", "dead", "503", "c1", "succeeded", "200", "api"}, nil},
		{"list none", []string{"calls", "list", "hello", "--state", "queued"}, 0, []string{"No calls of hello in state queued"}, nil},
		{"list -o json", []string{"calls", "list", "hello", "-o", "json"}, 0, []string{`"id": "dead1"`}, nil},
		{"list, bad state", []string{"calls", "list", "hello", "--state", "gone"}, 2, nil, []string{"--state must be one of queued, running, succeeded, failed, dead"}},
		{"list, missing SERVICE", []string{"calls", "list"}, 2, nil, []string{"accepts 1 arg"}},
		{"list, no such service", []string{"calls", "list", "nope"}, 1, nil, []string{`service "nope" not found`}},
		{"get", []string{"calls", "get", "c1"}, 0, []string{"State:", "succeeded", "Request:", "POST /jobs?x=1", "Attempts:", "2",
			"STATUS", "503", "13ms", "v2", "503 Service Unavailable", "Response: 200 OK", "job done"}, nil},
		{"get dead", []string{"calls", "get", "dead1"}, 0, []string{"Error:", "out of attempts (5)", "Response: 503", "overloaded", "wisp calls retry dead1"}, nil},
		{"get -o json", []string{"calls", "get", "c1", "-o", "json"}, 0, []string{`"state": "succeeded"`}, nil},
		{"get, not found", []string{"calls", "get", "nope"}, 1, nil, []string{`call "nope" not found`}},
		{"get, missing ID", []string{"calls", "get"}, 2, nil, []string{"accepts 1 arg"}},
		{"retry", []string{"calls", "retry", "dead1"}, 0, []string{"Queued call dead1 again (queued)", "wisp calls get dead1"}, nil},
		{"retry, conflict", []string{"calls", "retry", "c1"}, 1, nil, []string{"only a dead or failed call can be retried"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { f.check(t, tc.args, tc.code, tc.stdout, tc.stderr) })
	}
	f.check(t, []string{"calls", "list", "hello", "--state", "dead", "--limit", "2"}, 0, nil, nil)
	if g := f.last("GET /v1/services/{name}/calls"); g.query != "limit=2&state=dead" {
		t.Errorf("last list query %q", g.query)
	}
}

func TestTrigger(t *testing.T) {
	f := newFakeWisp(t)
	cases := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string
	}{
		{"create", []string{"trigger", "create", "orders", "--service", "hello", "--subject", "orders.>", "--tag", "canary", "--path", "/events",
			"--filter", "type=x", "--filter", "source^=/eu/"}, 0, []string{"Created trigger orders: events on orders.> call hello", "wisp event publish orders.example"}, nil},
		{"create, missing --service", []string{"trigger", "create", "t", "--subject", "a"}, 2, nil, []string{"--service is required"}},
		{"create, missing both", []string{"trigger", "create", "t"}, 2, nil, []string{"--service and --subject are required"}},
		{"create, missing NAME", []string{"trigger", "create", "--service", "hello", "--subject", "a"}, 2, nil, []string{"accepts 1 arg"}},
		{"create, no such service", []string{"trigger", "create", "t", "--service", "nope", "--subject", "a"}, 1, nil, []string{`service "nope" not found`}},
		{"list", []string{"trigger", "list"}, 0, []string{"NAME", "SUBJECT", "FILTERS", "orders", "hello", "orders.>", "type=x"}, nil},
		{"get", []string{"trigger", "get", "orders"}, 0, []string{"Subject:", "orders.>", "Recent deliveries:", "ev1", "trigger:orders"}, nil},
		{"get -o json", []string{"trigger", "get", "orders", "-o", "json"}, 0, []string{`"deliveries": [`}, nil},
		{"get, not found", []string{"trigger", "get", "nope"}, 1, nil, []string{`trigger "nope" not found`}},
		{"delete", []string{"trigger", "delete", "orders"}, 0, []string{"Deleted trigger orders"}, nil},
		{"delete, not found", []string{"trigger", "delete", "nope"}, 1, nil, []string{`trigger "nope" not found`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { f.check(t, tc.args, tc.code, tc.stdout, tc.stderr) })
	}
	f.check(t, []string{"trigger", "create", "orders", "--service", "hello", "--subject", "orders.>", "--filter", "type=x", "--filter", "source^=/eu/", "--path", "/events"}, 0, nil, nil)
	var sent core.Trigger
	if err := json.Unmarshal([]byte(f.last("POST /v1/triggers").body), &sent); err != nil {
		t.Fatal(err)
	}
	if sent.Name != "orders" || sent.Service != "hello" || sent.Subject != "orders.>" || sent.Path != "/events" ||
		strings.Join(sent.Filters, " ") != "type=x source^=/eu/" {
		t.Errorf("trigger sent %+v", sent)
	}
}

func TestEventPublish(t *testing.T) {
	f := newFakeWisp(t)
	f.check(t, []string{"event", "publish", "orders.created", "--type", "com.example.order", "--source", "/shop", "-d", `{"n":1}`},
		0, []string{"Published event", "on orders.created"}, nil)
	g := f.last("POST /v1/events")
	if g.query != "subject=orders.created" || g.body != `{"n":1}` || g.header.Get("Content-Type") != "application/json" {
		t.Errorf("sent ?%s %q %q", g.query, g.body, g.header.Get("Content-Type"))
	}
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Type": "com.example.order", "Ce-Source": "/shop"} {
		if g.header.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, g.header.Get(k), v)
		}
	}
	if id := g.header.Get("Ce-Id"); len(id) != 32 {
		t.Errorf("ce-id %q, want a random one of 32 hex digits", id)
	}
	f.check(t, []string{"event", "publish", "logs", "--type", "t", "--source", "/s", "--id", "e 1", "--ext", "tenant=acme",
		"--event-subject", "order/42", "-d", "hi", "--content-type", "text/plain", "-o", "json"}, 0, []string{`"subject": "logs"`}, nil)
	g = f.last("POST /v1/events")
	for k, v := range map[string]string{"Ce-Id": "e%201", "Ce-Tenant": "acme", "Ce-Subject": "order/42", "Content-Type": "text/plain"} {
		if g.header.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, g.header.Get(k), v)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"missing --type", []string{"event", "publish", "s", "--source", "/s"}, "--type is required"},
		{"missing SUBJECT", []string{"event", "publish", "--type", "t", "--source", "/s"}, "accepts 1 arg"},
		{"-d @missing", []string{"event", "publish", "s", "--type", "t", "--source", "/s", "-d", "@" + missing}, "no such file or directory"},
		{"bad --ext", []string{"event", "publish", "s", "--type", "t", "--source", "/s", "--ext", "x"}, `--ext "x" is not NAME=VALUE`},
	} {
		t.Run(tc.name, func(t *testing.T) { f.check(t, tc.args, 2, nil, []string{tc.stderr}) })
	}
}

func TestSchedule(t *testing.T) {
	f := newFakeWisp(t)
	body := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(body, []byte(`{"digest":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f.check(t, []string{"schedule", "create", "tick", "--service", "hello", "--cron", "*/5 * * * *", "--tz", "Europe/Paris", "--path", "/tick",
		"--method", "put", "--body", "@" + body, "-H", "Content-Type: application/json", "--misfire", "skip", "--concurrency", "forbid", "--suspend"},
		0, []string{"Created schedule tick: */5 * * * * calls hello", "suspended", "wisp schedule next tick"}, nil)
	var sent core.Schedule
	if err := json.Unmarshal([]byte(f.last("POST /v1/schedules").body), &sent); err != nil {
		t.Fatal(err)
	}
	if sent.Name != "tick" || sent.Service != "hello" || sent.Cron != "*/5 * * * *" || sent.TZ != "Europe/Paris" || sent.Path != "/tick" ||
		sent.Method != "PUT" || sent.Body != `{"digest":true}` || sent.Header.Get("Content-Type") != "application/json" ||
		sent.Misfire != "skip" || sent.Concurrency != "forbid" || !sent.Suspend {
		t.Errorf("schedule sent %+v", sent)
	}
	cases := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string
	}{
		{"create, missing --cron", []string{"schedule", "create", "t", "--service", "hello"}, 2, nil, []string{"--cron is required"}},
		{"create, missing --service", []string{"schedule", "create", "t", "--cron", "@hourly"}, 2, nil, []string{"--service is required"}},
		{"create, bad --misfire", []string{"schedule", "create", "t", "--service", "hello", "--cron", "@hourly", "--misfire", "later"}, 2, nil, []string{"--misfire must be run-once or skip"}},
		{"create, bad --concurrency", []string{"schedule", "create", "t", "--service", "hello", "--cron", "@hourly", "--concurrency", "x"}, 2, nil, []string{"--concurrency must be allow, forbid, replace"}},
		{"create, server rejects the cron", []string{"schedule", "create", "t", "--service", "hello", "--cron", "bad"}, 1, nil, []string{`cron "bad": expected 5 fields`}},
		{"list", []string{"schedule", "list"}, 0, []string{"NAME", "CRON", "TZ", "STATE", "NEXT", "tick", "*/5 * * * *", "Europe/Paris", "active"}, nil},
		{"list -o json", []string{"schedule", "list", "-o", "json"}, 0, []string{`"name": "tick"`}, nil},
		{"get", []string{"schedule", "get", "tick"}, 0, []string{"Cron:", "Request:", "POST /", "Misfire:", "run-once", "Recent runs:",
			"DUE", "CALL", "c1", "succeeded", "40ms", "skipped", "concurrency forbid"}, nil},
		{"get, not found", []string{"schedule", "get", "nope"}, 1, nil, []string{`schedule "nope" not found`}},
		{"next", []string{"schedule", "next", "tick", "-n", "2"}, 0, []string{"2026-01-02T04:05:00+01:00\n2026-01-02T04:10:00+01:00\n"}, nil},
		{"next -o json", []string{"schedule", "next", "tick", "-o", "json"}, 0, []string{`"next": [`}, nil},
		{"next, bad -n", []string{"schedule", "next", "tick", "-n", "0"}, 2, nil, []string{"-n must be from 1 to 1000"}},
		{"next, not found", []string{"schedule", "next", "nope"}, 1, nil, []string{`schedule "nope" not found`}},
		{"run", []string{"schedule", "run", "tick"}, 0, []string{"Ran schedule tick: call c1", "wisp calls get c1"}, nil},
		{"run, not found", []string{"schedule", "run", "nope"}, 1, nil, []string{`schedule "nope" not found`}},
		{"suspend", []string{"schedule", "suspend", "tick"}, 0, []string{"Suspended schedule tick"}, nil},
		{"resume", []string{"schedule", "resume", "tick"}, 0, []string{"Resumed schedule tick", "Next run"}, nil},
		{"delete", []string{"schedule", "delete", "tick"}, 0, []string{"Deleted schedule tick"}, nil},
		{"delete, not found", []string{"schedule", "delete", "nope"}, 1, nil, []string{`schedule "nope" not found`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { f.check(t, tc.args, tc.code, tc.stdout, tc.stderr) })
	}
	if g := f.last("GET /v1/schedules/{name}/next"); g.query != "n=5" {
		t.Errorf("next sent ?%s, want n=5 by default", g.query)
	}
	for _, tc := range []struct{ cmd, want string }{{"suspend", `{"suspend":true}`}, {"resume", `{"suspend":false}`}} {
		f.check(t, []string{"schedule", tc.cmd, "tick"}, 0, nil, nil)
		if g := f.last("PATCH /v1/schedules/{name}"); g.body != tc.want {
			t.Errorf("schedule %s sent %s, want %s", tc.cmd, g.body, tc.want)
		}
	}
}

// TestAsyncHelp: every new command explains itself.
func TestAsyncHelp(t *testing.T) {
	f := newFakeWisp(t)
	for _, args := range [][]string{{"invoke"}, {"calls", "list"}, {"calls", "get"}, {"calls", "retry"}, {"trigger", "create"},
		{"trigger", "list"}, {"trigger", "get"}, {"trigger", "delete"}, {"event", "publish"}, {"schedule", "create"}, {"schedule", "list"},
		{"schedule", "get"}, {"schedule", "next"}, {"schedule", "run"}, {"schedule", "suspend"}, {"schedule", "resume"}, {"schedule", "delete"}} {
		f.check(t, append(args, "--help"), 0, []string{"Usage:", "wisp " + strings.Join(args, " ")}, nil)
	}
}

// TestInvokeRouterFromEnv: WISP_ROUTER_URL, set in every instance, stands
// in for --router, so that no service lookup is needed.
func TestInvokeRouterFromEnv(t *testing.T) {
	f := newFakeWisp(t)
	var out, errb bytes.Buffer
	env := map[string]string{"WISP_ROUTER_URL": f.srv.URL}
	// No token and a server that is not there: only the router is used.
	code := cli.Run(t.Context(), []string{"--server", "127.0.0.1:1", "invoke", "hello", "/env"}, &out, &errb, func(k string) string { return env[k] })
	if code != 0 || out.String() != "GET /env " {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
