package router_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/router"
)

// backends is an AcquireFunc over one httptest server per version number.
type backends struct {
	mu        sync.Mutex
	servers   map[int]*httptest.Server
	err       error
	leases    int
	onSuspect func()
}

func newBackends(t *testing.T, handler func(n int) http.Handler, versions ...int) *backends {
	b := &backends{servers: map[int]*httptest.Server{}}
	for _, n := range versions {
		s := httptest.NewServer(handler(n))
		t.Cleanup(s.Close)
		b.servers[n] = s
	}
	return b
}

func (b *backends) acquire(ctx context.Context, v *core.Version) (router.Lease, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return router.Lease{}, b.err
	}
	b.leases++
	s := b.servers[v.Number]
	return router.Lease{Addr: strings.TrimPrefix(s.URL, "http://"), Handle: &handle{b: b}}, nil
}

// handle counts releases and suspicions.
type handle struct{ b *backends }

func (h *handle) Release() {
	h.b.mu.Lock()
	h.b.leases--
	h.b.mu.Unlock()
}
func (h *handle) Fail() {}
func (h *handle) Suspect(string) {
	if h.b.onSuspect != nil {
		h.b.onSuspect()
	}
}

func versionHandler(n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
				return
			}
		case "/headers":
			h := map[string]string{"Host": r.Host, "Path": r.URL.Path, "XFF": r.Header.Get("X-Forwarded-For"),
				"XFH": r.Header.Get("X-Forwarded-Host"), "XFP": r.Header.Get("X-Forwarded-Proto")}
			_ = json.NewEncoder(w).Encode(h)
			return
		case "/stream":
			f := w.(http.Flusher)
			fmt.Fprintln(w, "first")
			f.Flush()
			// Hold the response open until the client goes away: a proxy
			// that buffers would deliver nothing before this returns.
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			fmt.Fprintln(w, "second")
			return
		}
		fmt.Fprintf(w, "v%d %s", n, r.URL.Path)
	})
}

func states(sticky bool, weights ...core.Weight) []core.ServiceState {
	var versions []core.Version
	for n := 1; n <= 3; n++ {
		versions = append(versions, core.Version{ID: int64(100 + n), Service: "hello", Number: n,
			VersionSpec: core.VersionSpec{Image: "hello:1", Port: 8080, Timeout: core.Duration(500 * time.Millisecond)}})
	}
	st := core.ServiceState{Service: core.Service{Name: "hello", Policy: core.DefaultPolicy()}, Versions: versions}
	if len(weights) > 0 {
		st.Traffic = &core.TrafficEntry{Traffic: core.Traffic{Weights: weights, Tags: map[string]int{"canary": 3}, Sticky: sticky}}
	}
	return []core.ServiceState{st, {Service: core.Service{Name: "empty", Policy: core.DefaultPolicy()}}}
}

// counter returns 0, 1, 2, … modulo n: a deterministic "random" source that
// visits every slot once per cycle.
func counter() func(int) int {
	var mu sync.Mutex
	i := 0
	return func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		i++
		return (i - 1) % n
	}
}

func newRouter(t *testing.T, b *backends, intn func(int) int, st []core.ServiceState) *router.Router {
	t.Helper()
	r, err := router.New(router.Config{Domain: "localhost", Acquire: b.acquire, IntN: intn}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.Swap(router.NewSnapshot(st))
	return r
}

func do(r http.Handler, host, path string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "http://"+host+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestRouting(t *testing.T) {
	b := newBackends(t, versionHandler, 1, 2, 3)
	r := newRouter(t, b, counter(), states(false, core.Weight{Version: 1, Percent: 100}, core.Weight{Version: 2, Percent: 0}))
	cases := []struct {
		name, host, path string
		hdr              []string
		status           int
		body             string // prefix
		version          string
	}{
		{"service host", "hello.localhost:8080", "/x", nil, 200, "v1 /x", "1"},
		{"host without port", "hello.localhost", "/", nil, 200, "v1 /", "1"},
		{"uppercase host", "HELLO.LocalHost:8080", "/", nil, 200, "v1 /", "1"},
		{"version host", "v2--hello.localhost:8080", "/", nil, 200, "v2 /", "2"},
		{"tag host", "canary--hello.localhost:8080", "/", nil, 200, "v3 /", "3"},
		{"header pins number", "hello.localhost", "/", []string{"Wisp-Version", "2"}, 200, "v2", "2"},
		{"header pins v<N>", "hello.localhost", "/", []string{"Wisp-Version", "v3"}, 200, "v3", "3"},
		{"header pins tag", "hello.localhost", "/", []string{"Wisp-Version", "canary"}, 200, "v3", "3"},
		{"path fallback strips prefix", "127.0.0.1:8080", "/s/hello/api/x?q=1", nil, 200, "v1 /api/x", "1"},
		{"path fallback root", "127.0.0.1:8080", "/s/hello", nil, 200, "v1 /", "1"},
		{"path fallback with tag", "127.0.0.1:8080", "/s/canary--hello/x", nil, 200, "v3 /x", "3"},
		{"unknown host", "example.com", "/", nil, 404, "wisp: no service is served at host", ""},
		{"unknown service", "nope.localhost", "/", nil, 404, `wisp: no service named "nope"`, ""},
		{"unknown tag", "beta--hello.localhost", "/", nil, 404, `wisp: service "hello" has no version or tag "beta"`, ""},
		{"unknown version", "v9--hello.localhost", "/", nil, 404, "wisp: service \"hello\" has no version or tag \"v9\"", ""},
		{"bad header pin", "hello.localhost", "/", []string{"Wisp-Version", "nine"}, 404, "wisp: service \"hello\" has no version or tag", ""},
		{"no traffic", "empty.localhost", "/", nil, 503, `wisp: service "empty" has no traffic yet`, ""},
		{"upstream timeout", "hello.localhost", "/slow", nil, 504, "wisp: version 1 did not answer within its timeout of 500ms", "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(r, tc.host, tc.path, tc.hdr...)
			if w.Code != tc.status || !strings.HasPrefix(w.Body.String(), tc.body) {
				t.Fatalf("got %d %q, want %d %q", w.Code, w.Body.String(), tc.status, tc.body)
			}
			if got := w.Header().Get("Wisp-Version"); got != tc.version {
				t.Fatalf("Wisp-Version %q, want %q", got, tc.version)
			}
		})
	}
	if b.leases != 0 {
		t.Fatalf("%d leases not released", b.leases)
	}
}

func TestJSONErrors(t *testing.T) {
	b := newBackends(t, versionHandler, 1)
	r := newRouter(t, b, counter(), states(false, core.Weight{Version: 1, Percent: 100}))
	w := do(r, "nope.localhost", "/", "Accept", "application/json")
	var body struct {
		Error struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Status != 404 || !strings.Contains(body.Error.Message, "nope") {
		t.Fatalf("JSON error: %s (%v)", w.Body.String(), err)
	}
}

func TestActivatorErrors(t *testing.T) {
	b := newBackends(t, versionHandler, 1)
	r := newRouter(t, b, counter(), states(false, core.Weight{Version: 1, Percent: 100}))
	b.err = core.Unavailablef("version 1 of hello failed to start: boom")
	w := do(r, "hello.localhost", "/")
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "failed to start: boom") {
		t.Fatalf("unavailable: %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	if got := w.Header().Get("Wisp-Version"); got != "1" {
		t.Fatalf("a 503 of version 1 says Wisp-Version %q, want 1", got)
	}
	// No traffic yet: 503 with the Retry-After the docs promise.
	if w := do(r, "empty.localhost", "/"); w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("no traffic yet: %d %v", w.Code, w.Header())
	}
}

// TestWaitHeaders: a request that waited for a start says Wisp-Cold-Start,
// one that only queued for a running instance says Wisp-Queue-Wait.
func TestWaitHeaders(t *testing.T) {
	srv := httptest.NewServer(versionHandler(1))
	defer srv.Close()
	cases := []struct {
		name            string
		lease           router.Lease
		cold, queueWait string
	}{
		{"no wait", router.Lease{}, "", ""},
		{"cold start", router.Lease{ColdStart: 300 * time.Millisecond}, "300", ""},
		{"queued", router.Lease{QueueWait: 25 * time.Millisecond}, "", "25"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			acquire := func(ctx context.Context, v *core.Version) (router.Lease, error) {
				l := tc.lease
				l.Addr, l.Handle = strings.TrimPrefix(srv.URL, "http://"), failCounter{fail: func() {}}
				return l, nil
			}
			r, err := router.New(router.Config{Domain: "localhost", Acquire: acquire}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			r.Swap(router.NewSnapshot(states(false, core.Weight{Version: 1, Percent: 100})))
			w := do(r, "hello.localhost", "/")
			if got := w.Header().Get("Wisp-Cold-Start"); got != tc.cold {
				t.Errorf("Wisp-Cold-Start %q, want %q", got, tc.cold)
			}
			if got := w.Header().Get("Wisp-Queue-Wait"); got != tc.queueWait {
				t.Errorf("Wisp-Queue-Wait %q, want %q", got, tc.queueWait)
			}
		})
	}
}

func TestUpstreamFailure(t *testing.T) {
	b := newBackends(t, versionHandler, 1)
	b.servers[1].Close() // nothing listens there any more
	r := newRouter(t, b, counter(), states(false, core.Weight{Version: 1, Percent: 100}))
	w := do(r, "hello.localhost", "/")
	if w.Code != 502 || !strings.Contains(w.Body.String(), "the instance failed to answer") {
		t.Fatalf("got %d %q, want 502", w.Code, w.Body.String())
	}
	// An instance that answers and then breaks the connection: 502 too.
	b2 := newBackends(t, func(int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _, _ := w.(http.Hijacker).Hijack()
			_ = c.Close()
		})
	}, 1)
	var suspected atomic.Int64
	b2.onSuspect = func() { suspected.Add(1) }
	r2 := newRouter(t, b2, counter(), states(false, core.Weight{Version: 1, Percent: 100}))
	if w := do(r2, "hello.localhost", "/"); w.Code != 502 {
		t.Fatalf("broken connection: got %d, want 502", w.Code)
	}
	if suspected.Load() != 1 {
		t.Fatalf("the failing instance was reported %d times, want 1", suspected.Load())
	}
}

// TestRefusedConnectionRetriesOnce: an instance that refuses the connection
// is reported, and the request is served by the next instance.
func TestRefusedConnectionRetriesOnce(t *testing.T) {
	good := httptest.NewServer(versionHandler(1))
	defer good.Close()
	dead := httptest.NewServer(versionHandler(1))
	deadAddr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	var mu sync.Mutex
	failed, acquired := 0, 0
	acquire := func(ctx context.Context, v *core.Version) (router.Lease, error) {
		mu.Lock()
		defer mu.Unlock()
		acquired++
		addr := strings.TrimPrefix(good.URL, "http://")
		if failed == 0 {
			addr = deadAddr
		}
		return router.Lease{Addr: addr, Handle: failCounter{fail: func() { mu.Lock(); failed++; mu.Unlock() }}}, nil
	}
	r, err := router.New(router.Config{Domain: "localhost", Acquire: acquire}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.Swap(router.NewSnapshot(states(false, core.Weight{Version: 1, Percent: 100})))
	w := do(r, "hello.localhost", "/x")
	if w.Code != 200 || w.Body.String() != "v1 /x" || failed != 1 || acquired != 2 {
		t.Fatalf("got %d %q after %d failures and %d acquires", w.Code, w.Body.String(), failed, acquired)
	}
}

// TestSplit: with a source that visits every slot, shares are exact and a 0%
// version gets nothing; with the real random source they are within ±3 points.
func TestSplit(t *testing.T) {
	b := newBackends(t, versionHandler, 1, 2, 3)
	weights := []core.Weight{{Version: 1, Percent: 10}, {Version: 2, Percent: 0}, {Version: 3, Percent: 90}}
	for _, tc := range []struct {
		name  string
		intn  func(int) int
		n     int
		slack float64
	}{{"exact", counter(), 1000, 0}, {"random", nil, 3000, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(t, b, tc.intn, states(false, weights...))
			counts := map[string]int{}
			for range tc.n {
				counts[do(r, "hello.localhost", "/").Header().Get("Wisp-Version")]++
			}
			if counts["2"] != 0 {
				t.Fatalf("a 0%% version got %d requests", counts["2"])
			}
			for v, want := range map[string]float64{"1": 10, "3": 90} {
				got := 100 * float64(counts[v]) / float64(tc.n)
				if got < want-tc.slack || got > want+tc.slack {
					t.Fatalf("version %s got %.1f%%, want %.0f±%.0f", v, got, want, tc.slack)
				}
			}
		})
	}
}

func TestSticky(t *testing.T) {
	b := newBackends(t, versionHandler, 1, 2, 3)
	r := newRouter(t, b, nil, states(true, core.Weight{Version: 1, Percent: 50}, core.Weight{Version: 3, Percent: 50}))
	seen := map[string]int{}
	for range 20 {
		// A new client gets a cookie and then stays on its version.
		w := do(r, "hello.localhost", "/")
		cookie := w.Result().Cookies()
		if len(cookie) != 1 || cookie[0].Name != "wisp-version-hello" {
			t.Fatalf("sticky response sets cookies %v", cookie)
		}
		first := w.Header().Get("Wisp-Version")
		seen[first]++
		for range 10 {
			w2 := do(r, "hello.localhost", "/", "Cookie", cookie[0].Name+"="+cookie[0].Value)
			if got := w2.Header().Get("Wisp-Version"); got != first {
				t.Fatalf("sticky client moved from v%s to v%s", first, got)
			}
		}
	}
	if len(seen) != 2 {
		t.Fatalf("new clients were not split: %v", seen)
	}
	// A cookie for a version that lost its share is replaced.
	w := do(r, "hello.localhost", "/", "Cookie", "wisp-version-hello=2")
	if w.Header().Get("Wisp-Version") == "2" || len(w.Result().Cookies()) != 1 {
		t.Fatalf("stale cookie kept: v%s", w.Header().Get("Wisp-Version"))
	}
}

func TestForwardedHeadersAndStreaming(t *testing.T) {
	b := newBackends(t, versionHandler, 1)
	r := newRouter(t, b, counter(), states(false, core.Weight{Version: 1, Percent: 100}))
	srv := httptest.NewServer(r)
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/headers", nil)
	req.Host = "hello.localhost:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h["Host"] != "hello.localhost:8080" || h["XFH"] != "hello.localhost:8080" || h["XFP"] != "http" || h["XFF"] != "127.0.0.1" {
		t.Fatalf("forwarded headers: %v", h)
	}
	// Streaming: the first line arrives while the handler still holds the
	// response open (for 10 s, or until this client goes away).
	req, _ = http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/stream", nil)
	req.Host = "hello.localhost"
	start := time.Now()
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("first chunk: %q %v", buf, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("first chunk took %s: the response was buffered until the handler returned", d)
	}
}

func TestSnapshotSwap(t *testing.T) {
	b := newBackends(t, versionHandler, 1, 2, 3)
	r := newRouter(t, b, counter(), states(false, core.Weight{Version: 1, Percent: 100}))
	if got := do(r, "hello.localhost", "/").Header().Get("Wisp-Version"); got != "1" {
		t.Fatalf("before swap: v%s", got)
	}
	r.Swap(router.NewSnapshot(states(false, core.Weight{Version: 2, Percent: 100})))
	if got := do(r, "hello.localhost", "/").Header().Get("Wisp-Version"); got != "2" {
		t.Fatalf("after swap: v%s", got)
	}
}

type failCounter struct{ fail func() }

func (f failCounter) Release()       {}
func (f failCounter) Fail()          { f.fail() }
func (f failCounter) Suspect(string) {}

// TestUpgradeIsProxied: a protocol upgrade (a WebSocket, say) reaches the
// instance and the two ends then talk through the router.
func TestUpgradeIsProxied(t *testing.T) {
	b := newBackends(t, func(int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "echo" {
				http.Error(w, "upgrade to echo expected", http.StatusBadRequest)
				return
			}
			c, rw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			_ = rw.Flush()
			line, _ := rw.ReadString('\n')
			_, _ = rw.WriteString("echo: " + line)
			_ = rw.Flush()
		})
	}, 1)
	r := newRouter(t, b, counter(), states(false, core.Weight{Version: 1, Percent: 100}))
	srv := httptest.NewServer(r)
	defer srv.Close()
	var d net.Dialer
	c, err := d.DialContext(t.Context(), "tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: hello.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v %v, want 101", resp, err)
	}
	_, _ = io.WriteString(c, "hello\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo: hello\n" {
		t.Fatalf("after the upgrade: %q %v", line, err)
	}
}

// TestTimeoutMakesSuspect: a request that times out at an instance reports
// it as suspect, so that a hung or frozen instance stops getting traffic.
func TestTimeoutMakesSuspect(t *testing.T) {
	b := newBackends(t, versionHandler, 1)
	var reasons []string
	var mu sync.Mutex
	b.onSuspect = func() { mu.Lock(); reasons = append(reasons, "x"); mu.Unlock() }
	r := newRouter(t, b, counter(), states(false, core.Weight{Version: 1, Percent: 100}))
	if w := do(r, "hello.localhost", "/slow"); w.Code != 504 {
		t.Fatalf("got %d, want 504", w.Code)
	}
	if w := do(r, "hello.localhost", "/"); w.Code != 200 {
		t.Fatalf("got %d, want 200", w.Code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reasons) != 1 {
		t.Fatalf("the instance was reported suspect %d times, want once (for the timeout only)", len(reasons))
	}
}

// TestCatchUpOnAMiss: a request for a service the routes do not have yet,
// or one with no traffic, waits for the feed to catch up (here: the
// service arrives during the catch-up) instead of failing; concurrent
// misses share one catch-up; one that fails or has nothing new still gets
// the clear 404.
func TestCatchUpOnAMiss(t *testing.T) {
	b := newBackends(t, versionHandler, 1, 2, 3)
	var calls atomic.Int32
	var r *router.Router
	full := states(false, core.Weight{Version: 1, Percent: 100})
	release := make(chan struct{})
	catchUp := func(ctx context.Context) error {
		calls.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.Apply(full...)
		return nil
	}
	var err error
	r, err = router.New(router.Config{Domain: "localhost", Acquire: b.acquire, IntN: counter(), CatchUp: catchUp}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// "hello" is not known yet; "empty" has no traffic.
	r.Swap(router.NewSnapshot(full[1:]))
	var wg sync.WaitGroup
	codes := make([]int, 10)
	for i := range codes {
		wg.Go(func() { codes[i] = do(r, "hello.localhost", "/").Code })
	}
	time.Sleep(100 * time.Millisecond) // all ten wait on the one catch-up
	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d after the catch-up: %d, want 200", i, c)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d catch-ups for 10 concurrent misses, want 1", n)
	}

	// A service that still does not exist: the catch-up finds nothing new,
	// and the answer is the 404 that names it.
	time.Sleep(60 * time.Millisecond) // past the least time between catch-ups
	if w := do(r, "nope.localhost", "/"); w.Code != 404 || !strings.Contains(w.Body.String(), `no service named "nope"`) {
		t.Errorf("unknown service: %d %s", w.Code, w.Body)
	}
	// Misses in a burst: at most one catch-up per period.
	before := calls.Load()
	for range 50 {
		do(r, "nope.localhost", "/")
	}
	if n := calls.Load() - before; n > 2 {
		t.Errorf("50 misses in a row cost %d catch-ups, want at most one per 50 ms", n)
	}
}

// TestCatchUpFails: a catch-up that fails (the store is down) leaves the
// clear answer, never a 500.
func TestCatchUpFails(t *testing.T) {
	b := newBackends(t, versionHandler, 1)
	r, err := router.New(router.Config{Domain: "localhost", Acquire: b.acquire,
		CatchUp: func(context.Context) error { return errors.New("store down") }}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.Swap(router.NewSnapshot(states(false)))
	if w := do(r, "empty.localhost", "/"); w.Code != 503 || !strings.Contains(w.Body.String(), "has no traffic yet") {
		t.Errorf("no traffic, catch-up failing: %d %s", w.Code, w.Body)
	}
	if w := do(r, "nope.localhost", "/"); w.Code != 404 {
		t.Errorf("unknown, catch-up failing: %d %s", w.Code, w.Body)
	}
}
