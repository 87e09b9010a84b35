package router_test

import (
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/router"
)

func withRules(st []core.ServiceState, rules ...string) []core.ServiceState {
	t := st[0].Traffic.Traffic
	for _, s := range rules {
		r, err := core.ParseRequestRule(s)
		if err != nil {
			panic(err)
		}
		t.Rules = append(t.Rules, r)
	}
	st[0].Traffic = &core.TrafficEntry{Traffic: t}
	return st
}

// TestRequestRules: the first rule a request meets picks its version; a
// request that meets none takes the weighted pick (all to v1 here).
func TestRequestRules(t *testing.T) {
	b := newBackends(t, versionHandler, 1, 2, 3)
	st := withRules(states(true, core.Weight{Version: 1, Percent: 100}),
		"header:X-Beta=1 -> 2",
		"header:X-Beta^=pre && query:debug -> 3",
		"header:X-Beta^=pre -> 2",
		"header:User-Agent~=^curl/[0-9]+ -> tag:canary",
		"header:X-Present -> 3",
		"cookie:beta=yes -> 2",
		"cookie:gamma -> 3",
		"query:ab=b -> 2",
		"source:192.0.2.0/24 && header:X-Net=test -> 3",
		"source:10.0.0.0/8 -> 2",
	)
	r := newRouter(t, b, counter(), st)
	cases := []struct {
		name       string
		path       string
		remote     string
		hdr        []string
		want       string
		wantCookie bool // the weighted pick of a sticky service sets its cookie; a rule does not
	}{
		{name: "no rule matches", path: "/", want: "1", wantCookie: true},
		{name: "header exact", path: "/", hdr: []string{"X-Beta", "1"}, want: "2"},
		{name: "header exact, other value", path: "/", hdr: []string{"X-Beta", "10"}, want: "1", wantCookie: true},
		{name: "header name case", path: "/", hdr: []string{"x-beta", "1"}, want: "2"},
		{name: "all conditions: first rule with both wins", path: "/?debug", hdr: []string{"X-Beta", "pre-1"}, want: "3"},
		{name: "one condition short: next rule", path: "/", hdr: []string{"X-Beta", "pre-1"}, want: "2"},
		{name: "regex to tag", path: "/", hdr: []string{"User-Agent", "curl/8.1"}, want: "3"},
		{name: "regex not matching", path: "/", hdr: []string{"User-Agent", "Mozilla curl/8"}, want: "1", wantCookie: true},
		{name: "header present, empty value", path: "/", hdr: []string{"X-Present", ""}, want: "3"},
		{name: "cookie exact", path: "/", hdr: []string{"Cookie", "a=b; beta=yes"}, want: "2"},
		{name: "cookie other value", path: "/", hdr: []string{"Cookie", "beta=no"}, want: "1", wantCookie: true},
		{name: "cookie present", path: "/", hdr: []string{"Cookie", "gamma=1"}, want: "3"},
		{name: "query exact, any value", path: "/?ab=a&ab=b", want: "2"},
		{name: "query other value", path: "/?ab=c", want: "1", wantCookie: true},
		{name: "source and header", path: "/", hdr: []string{"X-Net", "test"}, want: "3"},
		{name: "source only", path: "/", remote: "10.1.2.3:4567", want: "2"},
		{name: "source v4-mapped v6", path: "/", remote: "[::ffff:10.1.2.3]:4567", want: "2"},
		{name: "X-Forwarded-For is not trusted", path: "/", hdr: []string{"X-Forwarded-For", "10.1.2.3"}, want: "1", wantCookie: true},
		{name: "a pin beats the rules", path: "/", hdr: []string{"X-Beta", "1", "Wisp-Version", "3"}, want: "3"},
		{name: "a rule beats the sticky cookie", path: "/", hdr: []string{"X-Beta", "1", "Cookie", "wisp-version-hello=1"}, want: "2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://hello.localhost"+tc.path, nil)
			if tc.remote != "" {
				req.RemoteAddr = tc.remote
			}
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body.String())
			}
			if got := w.Header().Get("Wisp-Version"); got != tc.want {
				t.Fatalf("Wisp-Version %q, want %q", got, tc.want)
			}
			if got := w.Header().Get("Set-Cookie") != ""; got != tc.wantCookie {
				t.Fatalf("Set-Cookie %q, want a sticky cookie: %v", w.Header().Get("Set-Cookie"), tc.wantCookie)
			}
		})
	}
}

// TestRuleToZeroPercentVersion: a rule reaches a version without weight.
func TestRuleToZeroPercentVersion(t *testing.T) {
	b := newBackends(t, versionHandler, 1, 2, 3)
	r := newRouter(t, b, counter(), withRules(states(false, core.Weight{Version: 1, Percent: 100}), "header:X-Beta=1 -> 2"))
	for range 20 {
		if got := do(r, "hello.localhost", "/", "X-Beta", "1").Header().Get("Wisp-Version"); got != "2" {
			t.Fatalf("Wisp-Version %q, want 2", got)
		}
		if got := do(r, "hello.localhost", "/").Header().Get("Wisp-Version"); got != "1" {
			t.Fatalf("Wisp-Version %q, want 1", got)
		}
	}
}

// TestSourceRuleBehindProxy: with Config.TrustedProxies, a source rule
// tests the client's address that a trusted proxy put in X-Forwarded-For;
// the same header from anyone else is ignored.
func TestSourceRuleBehindProxy(t *testing.T) {
	b := newBackends(t, versionHandler, 1, 2, 3)
	r, err := router.New(router.Config{Domain: "localhost", Acquire: b.acquire, IntN: counter(),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.Swap(router.NewSnapshot(withRules(states(false, core.Weight{Version: 1, Percent: 100}), "source:203.0.113.0/24 -> 2")))
	for _, tc := range []struct {
		name, remote, xff, want string
	}{
		{"from the balancer, client in range", "10.0.0.5:4000", "203.0.113.9", "2"},
		{"from the balancer, client out of range", "10.0.0.5:4000", "198.51.100.1", "1"},
		{"from the balancer, client spoofs to the left", "10.0.0.5:4000", "203.0.113.9, 198.51.100.1", "1"},
		{"straight from a client, spoofed", "198.51.100.1:4000", "203.0.113.9", "1"},
		{"from the balancer, malformed", "10.0.0.5:4000", "203.0.113.9, x", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://hello.localhost/", nil)
			req.RemoteAddr = tc.remote
			req.Header.Set("X-Forwarded-For", tc.xff)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if got := w.Header().Get("Wisp-Version"); w.Code != 200 || got != tc.want {
				t.Fatalf("status %d, Wisp-Version %q, want 200 and %q", w.Code, got, tc.want)
			}
		})
	}
}
