package router_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/router"
)

type logSink struct {
	mu  sync.Mutex
	all []core.LogEntry
}

func (s *logSink) Append(e core.LogEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, e)
}

func (s *logSink) take() []core.LogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.all
	s.all = nil
	return out
}

// logged returns states of service hello (all traffic on v1) with
// request_logs as given.
func logged(on bool) []core.ServiceState {
	st := states(false, core.Weight{Version: 1, Percent: 100})
	st[0].Service.Policy.RequestLogs = on
	return st
}

func newLoggingRouter(t testing.TB, sink router.RequestLogSink, rate float64, lease router.Lease) *router.Router {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			w.WriteHeader(http.StatusNotFound)
		}
		_, _ = io.WriteString(w, "Hello\n")
	}))
	t.Cleanup(backend.Close)
	lease.Addr, lease.Handle = strings.TrimPrefix(backend.URL, "http://"), nopHandle{}
	acquire := func(ctx context.Context, v *core.Version) (router.Lease, error) { return lease, nil }
	r, err := router.New(router.Config{Domain: "localhost", Acquire: acquire, RequestLogs: sink, RequestLogRate: rate},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func serve(t testing.TB, r http.Handler, method, target string) int {
	t.Helper()
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w.Code
}

// TestRequestLogs: with request_logs on, every request is one entry of
// kind request with its method, path, status, duration, version, instance,
// cold start and queue time; off (the default) writes nothing.
func TestRequestLogs(t *testing.T) {
	sink := &logSink{}
	r := newLoggingRouter(t, sink, 1000, router.Lease{Instance: "hello-v1-abcd", ColdStart: 120 * time.Millisecond, QueueWait: 7 * time.Millisecond})
	r.Swap(router.NewSnapshot(logged(false)))
	serve(t, r, "GET", "http://hello.localhost/hello")
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("request_logs off wrote %+v", got)
	}

	r.Apply(logged(true)[0])
	before := time.Now()
	if code := serve(t, r, "POST", "http://hello.localhost/missing"); code != 404 {
		t.Fatalf("status %d", code)
	}
	serve(t, r, "GET", "http://hello.localhost/s/x")  // the path as asked
	serve(t, r, "GET", "http://v9--hello.localhost/") // no such version: 404, no version or instance
	serve(t, r, "GET", "http://empty.localhost/")     // request_logs off there
	got := sink.take()
	if len(got) != 3 {
		t.Fatalf("got %d entries, want 3: %+v", len(got), got)
	}
	e := got[0]
	want := map[string]string{"method": "POST", "path": "/missing", "status": "404", "version": "1", "instance": "hello-v1-abcd",
		"cold": "true", "cold_ms": "120", "queue_ms": "7"}
	for k, v := range want {
		if e.Fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, e.Fields[k], v)
		}
	}
	if _, err := strconv.Atoi(e.Fields["duration_ms"]); err != nil {
		t.Errorf("duration_ms %q", e.Fields["duration_ms"])
	}
	if e.Kind != core.LogRequest || e.Service != "hello" || e.Version != 1 || e.Instance != "hello-v1-abcd" ||
		e.Time.Before(before) || !strings.HasPrefix(e.Message, "POST /missing 404 ") || !strings.HasSuffix(e.Message, "ms") {
		t.Errorf("entry %+v", e)
	}
	if _, ok := e.Fields["skipped"]; ok {
		t.Errorf("skipped %q below the rate", e.Fields["skipped"])
	}
	if got[1].Fields["path"] != "/s/x" {
		t.Errorf("path %q", got[1].Fields["path"])
	}
	if e := got[2]; e.Service != "hello" || e.Fields["status"] != "404" || e.Version != 0 || e.Fields["instance"] != "" || e.Fields["cold"] != "false" {
		t.Errorf("a request for a missing version: %+v", e)
	}

	r.Apply(logged(false)[0])
	serve(t, r, "GET", "http://hello.localhost/")
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("after turning request_logs off: %+v", got)
	}
}

// TestRequestLogSampling: a burst far above the rate writes about one
// second's worth of lines, and the line after a pause says how many were
// skipped.
func TestRequestLogSampling(t *testing.T) {
	sink := &logSink{}
	r := newLoggingRouter(t, sink, 50, router.Lease{Instance: "i"})
	r.Swap(router.NewSnapshot(logged(true)))
	const burst = 1000
	began := time.Now()
	for range burst {
		serve(t, r, "GET", "http://hello.localhost/")
	}
	took := time.Since(began)
	got := sink.take()
	// One second of burst (50) plus what the rate adds while the burst runs.
	limit := 51 + int(took.Seconds()*50) + 1
	if len(got) < 50 || len(got) > limit {
		t.Fatalf("%d lines written of %d requests in %s, want between 50 and %d", len(got), burst, took, limit)
	}
	time.Sleep(40 * time.Millisecond) // a token: the next line is written
	serve(t, r, "GET", "http://hello.localhost/")
	last := sink.take()
	if len(last) != 1 {
		t.Fatalf("after a pause: %d lines", len(last))
	}
	// Every request is written or counted in the skipped of a later line
	// (the line after the burst, unless the burst ran slowly enough at
	// its end, on a busy machine, that its last requests were written).
	total, carriers := 0, 0
	for _, e := range append(got, last...) {
		total++
		if s, ok := e.Fields["skipped"]; ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("skipped %q", s)
			}
			total += n
			carriers++
		}
	}
	if carriers == 0 || total != burst+1 {
		t.Fatalf("%d lines carry skipped (the one after the burst %q); written and skipped add up to %d, want %d",
			carriers, last[0].Fields["skipped"], total, burst+1)
	}
}

// BenchmarkServeHTTPRequestLogs: the same request as BenchmarkServeHTTP
// with request logs off (the default) and on, into a sink that keeps
// nothing.
func BenchmarkServeHTTPRequestLogs(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run("request_logs="+strconv.FormatBool(on), func(b *testing.B) {
			r := newLoggingRouter(b, nopSink{}, 1e9, router.Lease{Instance: "hello-v1-abcd"})
			r.Swap(router.NewSnapshot(logged(on)))
			req := httptest.NewRequest("GET", "http://hello.localhost/", nil)
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				r.ServeHTTP(w, req)
			}
		})
	}
}

type nopSink struct{}

func (nopSink) Append(core.LogEntry) {}
