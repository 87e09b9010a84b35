package router_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/router"
)

// mirrorHandler answers JSON naming a greeting (version 3 greets
// differently), with a timestamp that differs per answer; /echo answers
// the request body, /block waits for release.
func mirrorHandler(release chan struct{}, mirrored *atomic.Int32) func(n int) http.Handler {
	return func(n int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(router.HeaderMirror) != "" {
				mirrored.Add(1)
			}
			greeting := "hello"
			if n == 3 {
				greeting = "bonjour"
			}
			switch r.URL.Path {
			case "/echo":
				b, _ := io.ReadAll(r.Body)
				_, _ = w.Write(b)
				return
			case "/block":
				if n == 2 {
					<-release
				}
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"greeting":"`+greeting+`","timestamp":`+strconv.FormatInt(time.Now().UnixNano(), 10)+`,"data":[{"id":`+strconv.Itoa(n)+`,"x":1}]}`)
		})
	}
}

func mirrorRouter(t *testing.T, b *backends, m *core.Mirror, cfg router.Config) *router.Router {
	t.Helper()
	cfg.Domain, cfg.Acquire, cfg.IntN = "localhost", b.acquire, counter()
	r, err := router.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.WaitMirrors)
	st := states(false, core.Weight{Version: 1, Percent: 100})
	st[0].Traffic.Mirror = m
	r.Swap(router.NewSnapshot(st))
	return r
}

func report(t *testing.T, r *router.Router) core.MirrorPair {
	t.Helper()
	r.WaitMirrors()
	rep, err := r.MirrorReport("hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pairs) != 1 {
		t.Fatalf("report has %d pairs, want 1: %+v", len(rep.Pairs), rep)
	}
	return rep.Pairs[0]
}

// TestMirrorCompare: copies of every request are compared; the ignored
// fields decide whether identical versions match, a different greeting is
// caught with examples, and the client always gets the primary's answer.
func TestMirrorCompare(t *testing.T) {
	var mirrored atomic.Int32
	b := newBackends(t, mirrorHandler(nil, &mirrored), 1, 2, 3)
	cases := []struct {
		name       string
		mirror     core.Mirror
		wantMatch  int64
		wantKinds  map[string]int64
		wantInBody string
	}{
		{name: "identical versions, timestamp and data.id ignored", mirror: core.Mirror{Version: 2, Percent: 100, IgnoreFields: []string{"timestamp", "data.id"}}, wantMatch: 10},
		{name: "identical versions, nothing ignored", mirror: core.Mirror{Version: 2, Percent: 100}, wantKinds: map[string]int64{"body": 10}, wantInBody: "hello"},
		{name: "a different greeting", mirror: core.Mirror{Version: 3, Percent: 100, IgnoreFields: []string{"timestamp", "data.id"}}, wantKinds: map[string]int64{"body": 10}, wantInBody: "bonjour"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mirrorRouter(t, b, &tc.mirror, router.Config{})
			for range 10 {
				w := do(r, "hello.localhost", "/")
				if w.Code != 200 || !strings.Contains(w.Body.String(), `"greeting":"hello"`) || w.Header().Get(router.HeaderVersion) != "1" {
					t.Fatalf("the client got %d %q from version %s, want the primary's answer", w.Code, w.Body, w.Header().Get(router.HeaderVersion))
				}
			}
			p := report(t, r)
			compared := tc.wantMatch
			for _, n := range tc.wantKinds {
				compared = max(compared, n)
			}
			if p.Primary != 1 || p.Mirror != tc.mirror.Version || p.Compared != compared || p.Matched != tc.wantMatch {
				t.Fatalf("got pair %d→%d compared %d matched %d, want 1→%d %d %d", p.Primary, p.Mirror, p.Compared, p.Matched, tc.mirror.Version, compared, tc.wantMatch)
			}
			for k, n := range tc.wantKinds {
				if p.Mismatches[k] != n {
					t.Fatalf("mismatches %v, want %s=%d", p.Mismatches, k, n)
				}
			}
			if tc.wantInBody == "" {
				if len(p.Examples) != 0 || p.MatchRate != 1 {
					t.Fatalf("match rate %v, examples %+v; want 1 and none", p.MatchRate, p.Examples)
				}
			} else {
				if len(p.Examples) == 0 || len(p.Examples) > core.MaxMirrorExamples {
					t.Fatalf("%d examples, want 1..%d", len(p.Examples), core.MaxMirrorExamples)
				}
				ex := p.Examples[0]
				if ex.Method != "GET" || ex.Path != "/" || ex.PrimaryStatus != 200 || ex.MirrorStatus != 200 || !strings.Contains(ex.MirrorBody, tc.wantInBody) || !strings.Contains(ex.PrimaryBody, "hello") {
					t.Fatalf("example %+v", ex)
				}
			}
			if p.PrimaryLatency.Count != int(compared) || p.MirrorLatency.Count != int(compared) || p.MirrorLatency.P50 <= 0 {
				t.Fatalf("latencies %+v / %+v, want %d samples each", p.PrimaryLatency, p.MirrorLatency, compared)
			}
		})
	}
}

// TestMirrorMethodsAndBodies: POSTs are copied only with AllMethods, with
// their body; a body over the bound is not copied, and counted.
func TestMirrorMethodsAndBodies(t *testing.T) {
	var mirrored atomic.Int32
	b := newBackends(t, mirrorHandler(nil, &mirrored), 1, 2)
	post := func(r http.Handler, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "http://hello.localhost/echo", strings.NewReader(body))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != 200 || w.Body.String() != body {
			t.Fatalf("POST answered %d with %d bytes, want 200 and the body back", w.Code, w.Body.Len())
		}
		return w
	}

	r := mirrorRouter(t, b, &core.Mirror{Version: 2, Percent: 100}, router.Config{})
	post(r, "one")
	r.WaitMirrors()
	if n := mirrored.Load(); n != 0 {
		t.Fatalf("%d POSTs mirrored without all_methods, want 0", n)
	}
	if rep, _ := r.MirrorReport("hello"); len(rep.Pairs) != 0 {
		t.Fatalf("report %+v, want no pair", rep)
	}

	r = mirrorRouter(t, b, &core.Mirror{Version: 2, Percent: 100, AllMethods: true}, router.Config{MirrorMaxBody: 1024})
	post(r, "a body to copy")
	post(r, strings.Repeat("x", 2000)) // over the bound, with a length
	req := httptest.NewRequest("POST", "http://hello.localhost/echo", io.MultiReader(strings.NewReader(strings.Repeat("y", 3000))))
	req.ContentLength = -1 // chunked: found over the bound while teed
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Body.Len() != 3000 {
		t.Fatalf("the chunked POST got %d bytes back, want 3000", w.Body.Len())
	}
	p := report(t, r)
	if mirrored.Load() != 1 || p.Compared != 1 || p.Matched != 1 || p.TooLarge != 2 {
		t.Fatalf("mirrored %d, pair %+v; want 1 copy, matching, and 2 too large", mirrored.Load(), p)
	}
}

// TestMirrorNeverDelaysThePrimary: a mirror that does not answer holds up
// no primary answer; beyond the in-flight bound copies are dropped, not
// queued.
func TestMirrorNeverDelaysThePrimary(t *testing.T) {
	var mirrored atomic.Int32
	release := make(chan struct{})
	b := newBackends(t, mirrorHandler(release, &mirrored), 1, 2)
	r := mirrorRouter(t, b, &core.Mirror{Version: 2, Percent: 100, IgnoreFields: []string{"timestamp", "data.id"}}, router.Config{MirrorMaxInFlight: 2})
	for range 5 {
		start := time.Now()
		w := do(r, "hello.localhost", "/block")
		if took := time.Since(start); w.Code != 200 || took > 300*time.Millisecond {
			t.Fatalf("primary answered %d after %v while the mirror hangs", w.Code, took)
		}
	}
	close(release)
	p := report(t, r)
	if p.Compared != 2 || p.Matched != 2 || p.Dropped != 3 {
		t.Fatalf("pair %+v, want 2 compared and matching, 3 dropped", p)
	}
}

// TestMirrorReportReset: the report survives a snapshot with the same
// setting and starts again when the setting changes; requests the mirror
// version serves itself are not copied.
func TestMirrorReportReset(t *testing.T) {
	var mirrored atomic.Int32
	b := newBackends(t, mirrorHandler(nil, &mirrored), 1, 2)
	m := &core.Mirror{Version: 2, Percent: 100}
	r := mirrorRouter(t, b, m, router.Config{})
	do(r, "hello.localhost", "/")
	do(r, "hello.localhost", "/", "Wisp-Version", "2") // served by the mirror version: not copied
	if p := report(t, r); p.Compared != 1 {
		t.Fatalf("compared %d, want 1", p.Compared)
	}
	apply := func(m *core.Mirror) {
		st := states(false, core.Weight{Version: 1, Percent: 100})
		st[0].Traffic.Mirror = m
		r.Apply(st[0])
	}
	apply(&core.Mirror{Version: 2, Percent: 100})
	if p := report(t, r); p.Compared != 1 {
		t.Fatalf("the same setting reset the report: compared %d, want 1", p.Compared)
	}
	apply(&core.Mirror{Version: 2, Percent: 100, IgnoreFields: []string{"timestamp"}})
	if rep, _ := r.MirrorReport("hello"); len(rep.Pairs) != 0 || rep.Mirror == nil || len(rep.Mirror.IgnoreFields) != 1 {
		t.Fatalf("a new setting kept the report: %+v", rep)
	}
	apply(nil)
	if rep, _ := r.MirrorReport("hello"); rep.Mirror != nil || len(rep.Pairs) != 0 {
		t.Fatalf("mirror off: report %+v", rep)
	}
	if _, err := r.MirrorReport("nope"); err == nil {
		t.Fatal("report of an unknown service: no error")
	}
}
