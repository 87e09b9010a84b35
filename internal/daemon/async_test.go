package daemon_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/fake"
)

// asyncFunction is a service that records the call IDs it serves: /fail
// answers 500 until healed, /flaky 503 (Retry-After 0) on a call's first
// attempt, anything else 200 with its path.
type asyncFunction struct {
	healed atomic.Bool
	mu     sync.Mutex
	served map[string]int
}

func (f *asyncFunction) handler(runtime.InstanceSpec) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Wisp-Call-Id")
		f.mu.Lock()
		f.served[id]++
		f.mu.Unlock()
		switch {
		case r.URL.Path == "/fail" && !f.healed.Load():
			http.Error(w, "broken", http.StatusInternalServerError)
		case r.URL.Path == "/flaky" && r.Header.Get("Wisp-Attempt") == "1":
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Seen", r.Header.Get("X-Custom"))
			_, _ = fmt.Fprintf(w, "done %s %s %s", r.Method, r.URL.RequestURI(), body)
		}
	})
}

type asyncEnv struct {
	t       *testing.T
	service string // "" means jobs
	router  string
	admin   string
	token   string
}

func (e asyncEnv) do(method, url string, h http.Header, body string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (e asyncEnv) submit(path string, h http.Header, body string) string {
	e.t.Helper()
	svc := e.service
	if svc == "" {
		svc = "jobs"
	}
	res, b := e.do("POST", e.router+"/async/"+svc+path, h, body)
	if res.StatusCode != http.StatusAccepted {
		e.t.Fatalf("submit %s: got %d %s, want 202", path, res.StatusCode, b)
	}
	id := res.Header.Get("Wisp-Call-Id")
	if loc := res.Header.Get("Location"); id == "" || loc != "/v1/calls/"+id {
		e.t.Fatalf("submit %s: Wisp-Call-Id %q, Location %q", path, id, loc)
	}
	return id
}

func (e asyncEnv) call(id string) core.Call {
	e.t.Helper()
	res, b := e.do("GET", e.admin+"/v1/calls/"+id, http.Header{"Authorization": {"Bearer " + e.token}}, "")
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("get call %s: %d %s", id, res.StatusCode, b)
	}
	var c core.Call
	if err := json.Unmarshal([]byte(b), &c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// wait polls a call until it is done.
func (e asyncEnv) wait(id string) core.Call {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := e.call(id)
		if c.Done() {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("call %s not done after 20s: %+v", id, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAsyncCalls(t *testing.T) {
	t.Parallel()
	fn := &asyncFunction{served: map[string]int{}}
	rt := fake.New(fake.Config{Images: map[string]string{"jobs:1": "sha256:jobs1"}, Handler: fn.handler})
	// The callback receiver below listens on loopback, which callbacks
	// may not reach unless the operator allows it.
	d, _ := runDaemon(t, t.TempDir(), func(c *config.Config) { c.CallbackAllow = "127.0.0.1" }, daemon.Options{Out: io.Discard, Runtime: rt})
	env := asyncEnv{t: t, router: "http://" + d.RouterAddr().String(), admin: "http://" + d.AdminAddr().String(), token: d.Token()}
	c := apiclient.New(d.AdminAddr().String(), d.Token())
	ctx := t.Context()
	three, ms := 3, core.Duration(10*time.Millisecond)
	if _, err := c.CreateService(ctx, "jobs", core.PolicyPatch{MaxAttempts: &three, MinBackoff: &ms, MaxBackoff: &ms}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVersion(ctx, "jobs", core.VersionSpec{Image: "jobs:1"}); err != nil {
		t.Fatal(err)
	}

	t.Run("missing service is a 404 at once", func(t *testing.T) {
		res, b := env.do("POST", env.router+"/async/nope/x", nil, "")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(b, `"nope"`) {
			t.Fatalf("got %d %s, want 404 naming the service", res.StatusCode, b)
		}
		res, b = env.do("GET", env.admin+"/v1/calls/0123456789abcdefghijklmnop", http.Header{"Authorization": {"Bearer " + env.token}}, "")
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown call: got %d %s, want 404", res.StatusCode, b)
		}
		res, b = env.do("GET", env.admin+"/v1/calls/not-an-id", http.Header{"Authorization": {"Bearer " + env.token}}, "")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(b, "26 characters") {
			t.Fatalf("bad call ID: got %d %s, want 404 saying what an ID is", res.StatusCode, b)
		}
	})

	t.Run("bad submissions and queries name the problem", func(t *testing.T) {
		auth := http.Header{"Authorization": {"Bearer " + env.token}}
		for _, tc := range []struct {
			method, url string
			h           http.Header
			body        string
			status      int
			want        string
		}{
			{"POST", env.router + "/async/jobs/", http.Header{"Idempotency-Key": {strings.Repeat("k", 257)}}, "", 400, "Idempotency-Key"},
			{"POST", env.router + "/async/jobs/", nil, strings.Repeat("x", 6<<20+1), 413, "at most"},
			{"GET", env.admin + "/v1/services/jobs/calls?state=sleeping", auth, "", 422, "sleeping"},
			{"GET", env.admin + "/v1/services/jobs/calls?limit=0", auth, "", 400, "limit"},
			{"GET", env.admin + "/v1/services/jobs/calls?limit=5000", auth, "", 422, "limit"},
			{"GET", env.admin + "/v1/services/nope/calls", auth, "", 404, "nope"},
		} {
			res, b := env.do(tc.method, tc.url, tc.h, tc.body)
			if res.StatusCode != tc.status || !strings.Contains(b, tc.want) {
				t.Errorf("%s %s: got %d %.200s, want %d with %q", tc.method, tc.url, res.StatusCode, b, tc.status, tc.want)
			}
		}
	})

	t.Run("a call succeeds with its request and result", func(t *testing.T) {
		id := env.submit("/work?x=1", http.Header{"X-Custom": {"yes"}}, "payload")
		got := env.wait(id)
		if got.State != core.CallSucceeded || len(got.Attempts) != 1 || got.Attempts[0].Status != 200 {
			t.Fatalf("got %+v, want succeeded after one attempt with 200", got)
		}
		if body := string(got.Response.Body); body != "done POST /work?x=1 payload" || got.Response.Header.Get("X-Seen") != "yes" {
			t.Fatalf("response %q (X-Seen %q), want the function's answer to the stored request", body, got.Response.Header.Get("X-Seen"))
		}
	})

	t.Run("Prefer respond-async on the service's host", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, "PUT", env.router+"/p", strings.NewReader("b"))
		req.Host = "jobs.localhost"
		req.Header.Set("Prefer", "wait=5, respond-async")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("got %d, want 202", res.StatusCode)
		}
		if got := env.wait(res.Header.Get("Wisp-Call-Id")); string(got.Response.Body) != "done PUT /p b" {
			t.Fatalf("got %q", got.Response.Body)
		}
	})

	t.Run("503 with Retry-After is retried", func(t *testing.T) {
		got := env.wait(env.submit("/flaky", nil, ""))
		if got.State != core.CallSucceeded || len(got.Attempts) != 2 || got.Attempts[0].Status != 503 || got.Attempts[1].Status != 200 {
			t.Fatalf("got %+v, want succeeded after 503 then 200", got)
		}
	})

	t.Run("three 500s make a dead call, and its replay succeeds", func(t *testing.T) {
		id := env.submit("/fail", nil, "")
		got := env.wait(id)
		if got.State != core.CallDead || len(got.Attempts) != 3 {
			t.Fatalf("got %s with %d attempts, want dead with 3", got.State, len(got.Attempts))
		}
		for i, a := range got.Attempts {
			if a.Status != 500 {
				t.Errorf("attempt %d: status %d, want 500", i+1, a.Status)
			}
		}
		res, b := env.do("GET", env.admin+"/v1/services/jobs/calls?state=dead", http.Header{"Authorization": {"Bearer " + env.token}}, "")
		if res.StatusCode != 200 || !strings.Contains(b, id) {
			t.Fatalf("dead calls: %d %s, want the dead call listed", res.StatusCode, b)
		}
		fn.healed.Store(true)
		res, b = env.do("POST", env.admin+"/v1/calls/"+id+"/retry", http.Header{"Authorization": {"Bearer " + env.token}}, "")
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("retry: %d %s", res.StatusCode, b)
		}
		got = env.wait(id)
		if got.State != core.CallSucceeded || len(got.Attempts) != 4 {
			t.Fatalf("after replay: %s with %d attempts, want succeeded with 4", got.State, len(got.Attempts))
		}
		res, b = env.do("POST", env.admin+"/v1/calls/"+id+"/retry", http.Header{"Authorization": {"Bearer " + env.token}}, "")
		if res.StatusCode != http.StatusConflict {
			t.Fatalf("retry of a succeeded call: %d %s, want 409", res.StatusCode, b)
		}
	})

	t.Run("the same Idempotency-Key makes one call", func(t *testing.T) {
		h := http.Header{"Idempotency-Key": {"order-42"}}
		first := env.submit("/once", h, "")
		second := env.submit("/once", h, "")
		if first != second {
			t.Fatalf("two submissions with one key: IDs %s and %s, want one", first, second)
		}
		env.wait(first)
		fn.mu.Lock()
		n := fn.served[first]
		fn.mu.Unlock()
		if n != 1 {
			t.Fatalf("the function served the call %d times, want 1", n)
		}
	})

	t.Run("a callback gets the result", func(t *testing.T) {
		got := make(chan http.Header, 1)
		cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Clone()
		}))
		defer cb.Close()
		id := env.submit("/cb", http.Header{"X-Callback-Url": {cb.URL}}, "")
		select {
		case h := <-got:
			if h.Get("Wisp-Call-Id") != id || h.Get("Wisp-Call-Status") != "200" || h.Get("Wisp-Call-State") != "succeeded" {
				t.Fatalf("callback headers %v", h)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no callback within 20s")
		}
		res, b := env.do("POST", env.router+"/async/jobs/", http.Header{"X-Callback-Url": {"ftp://x"}}, "")
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(b, "callback") {
			t.Fatalf("bad callback URL: %d %s, want 400 naming it", res.StatusCode, b)
		}
		// Outside the allow-list: the metadata address and another
		// loopback address are refused at submission, naming why.
		for url, want := range map[string]string{"http://169.254.169.254/latest": "link-local", "http://127.0.0.2:9/": "loopback"} {
			res, b := env.do("POST", env.router+"/async/jobs/", http.Header{"X-Callback-Url": {url}}, "")
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(b, want) || !strings.Contains(b, "--callback-allow") {
				t.Fatalf("callback to %s: %d %s, want 400 naming %q and --callback-allow", url, res.StatusCode, b, want)
			}
		}
	})

	// No call ran after it succeeded: each succeeded call was served once,
	// but for the ones designed to be retried.
	fn.mu.Lock()
	defer fn.mu.Unlock()
	for id, n := range fn.served {
		if n > 1 {
			if c := env.call(id); c.Request.Path != "/flaky" && c.Request.Path != "/fail" {
				t.Errorf("call %s (%s) served %d times", id, c.Request.Path, n)
			}
		}
	}
}
