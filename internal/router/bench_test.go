package router_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/router"
)

type nopHandle struct{}

func (nopHandle) Release()       {}
func (nopHandle) Fail()          {}
func (nopHandle) Suspect(string) {}

// discard is a ResponseWriter that keeps nothing, so the benchmark measures
// the router and the proxy, not a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkServeHTTP: one request through the router's handler to a real
// backend on loopback (go test -bench ServeHTTP -benchmem ./internal/router).
func BenchmarkServeHTTP(b *testing.B) {
	benchServe(b, states(false, core.Weight{Version: 1, Percent: 100}))
}

// benchServe times one GET to hello through a router with the services
// st, proxied to a real backend on loopback.
func benchServe(b *testing.B, st []core.ServiceState, after ...func(*router.Router)) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "Hello, World!\n")
	}))
	defer backend.Close()
	addr := strings.TrimPrefix(backend.URL, "http://")
	acquire := func(ctx context.Context, v *core.Version) (router.Lease, error) {
		return router.Lease{Addr: addr, Handle: nopHandle{}}, nil
	}
	r, err := router.New(router.Config{Domain: "localhost", Acquire: acquire}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	r.Swap(router.NewSnapshot(st))
	req := httptest.NewRequest("GET", "http://hello.localhost/", nil)
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		r.ServeHTTP(w, req)
		for _, f := range after {
			f(r)
		}
	}
}

// BenchmarkBaselineProxy is the same request through a default
// httputil.ReverseProxy, for comparison in the same process.
func BenchmarkBaselineProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "Hello, World!\n")
	}))
	defer backend.Close()
	u, _ := url.Parse(backend.URL)
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = router.NewTransport()
	req := httptest.NewRequest("GET", "http://hello.localhost/", nil)
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		p.ServeHTTP(w, req)
	}
}

// BenchmarkServeHTTPRules is BenchmarkServeHTTP with 10 request rules that
// the request does not meet (go test -bench 'ServeHTTP' ./internal/router
// runs both, for the ratio).
func BenchmarkServeHTTPRules(b *testing.B) {
	benchServe(b, withRules(states(false, core.Weight{Version: 1, Percent: 100}),
		"header:X-Group=a -> 1", "header:X-Group^=beta- -> 1", "header:User-Agent~=^curl/[0-9]+ -> 1", "header:X-Canary -> 1",
		"cookie:beta=1 -> 1", "query:beta=1 -> 1", "query:debug -> 1", "source:203.0.113.0/24 -> 1",
		"header:X-Tenant~=^(acme|initech)$ -> 1", "header:X-Beta=1 -> 1"))
}

// BenchmarkServeHTTPMirror is BenchmarkServeHTTP with every request copied
// to version 2 and compared, each copy waited for: the difference from
// BenchmarkServeHTTP is what one copy costs the router.
func BenchmarkServeHTTPMirror(b *testing.B) {
	st := states(false, core.Weight{Version: 1, Percent: 100})
	st[0].Traffic.Mirror = &core.Mirror{Version: 2, Percent: 100}
	benchServe(b, st, func(r *router.Router) { r.WaitMirrors() })
}
