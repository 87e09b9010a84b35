package router

import (
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
)

func tenRules(tb testing.TB) *serviceRoute {
	tb.Helper()
	st := svcState("hello", 1, 2)
	for i := range 9 {
		r, err := core.ParseRequestRule("header:X-Group-" + strconv.Itoa(i) + "~=^(a|b)[0-9]+$ && query:q" + strconv.Itoa(i) + " -> 2")
		if err != nil {
			tb.Fatal(err)
		}
		st.Traffic.Rules = append(st.Traffic.Rules, r)
	}
	last, err := core.ParseRequestRule("header:X-Beta=1 -> 2")
	if err != nil {
		tb.Fatal(err)
	}
	st.Traffic.Rules = append(st.Traffic.Rules, last)
	return newRoute(st)
}

// TestMatchRulesAllocs: evaluating rules allocates nothing when they test
// headers only, matching or not.
func TestMatchRulesAllocs(t *testing.T) {
	sr := tenRules(t)
	if len(sr.rules) != 10 {
		t.Fatalf("compiled %d rules, want 10", len(sr.rules))
	}
	miss := httptest.NewRequest("GET", "http://hello.localhost/", nil)
	hit := httptest.NewRequest("GET", "http://hello.localhost/", nil)
	hit.Header.Set("X-Beta", "1")
	if v := matchRules(sr.rules, miss, nil); v != nil {
		t.Fatalf("miss matched %v", v)
	}
	if v := matchRules(sr.rules, hit, nil); v != sr.versions[2] {
		t.Fatalf("hit got %v, want v2", v)
	}
	if n := testing.AllocsPerRun(100, func() { matchRules(sr.rules, miss, nil); matchRules(sr.rules, hit, nil) }); n != 0 {
		t.Fatalf("%v allocations per evaluation, want 0", n)
	}
}

// TestClientAddr: the address source rules test. X-Forwarded-For counts
// only when the connection comes from a trusted proxy, and then it is
// walked from the right past the trusted proxies to the first address that
// is not one.
func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string // one per header line
		want    string   // "" for no address
	}{
		{name: "no trusted proxies: XFF is never believed", remote: "10.0.0.1:80", xff: []string{"203.0.113.9"}, want: "10.0.0.1"},
		{name: "untrusted peer, spoofed XFF", trusted: trusted, remote: "198.51.100.7:5555", xff: []string{"10.1.1.1, 10.2.2.2"}, want: "198.51.100.7"},
		{name: "trusted peer without XFF", trusted: trusted, remote: "10.0.0.1:80", want: "10.0.0.1"},
		{name: "trusted peer", trusted: trusted, remote: "10.0.0.1:80", xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "trusted peer, the client's own entries left of the real one are ignored", trusted: trusted, remote: "10.0.0.1:80",
			xff: []string{"10.9.9.9, 192.0.2.1, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "chain of trusted proxies", trusted: trusted, remote: "10.0.0.1:80", xff: []string{"192.0.2.1, 203.0.113.9, 10.3.3.3,10.2.2.2"}, want: "203.0.113.9"},
		{name: "chain over several header lines", trusted: trusted, remote: "10.0.0.1:80", xff: []string{"192.0.2.1, 203.0.113.9", "10.3.3.3", " 10.2.2.2 "}, want: "203.0.113.9"},
		{name: "all-trusted chain: the left-most", trusted: trusted, remote: "10.0.0.1:80", xff: []string{"10.7.7.7, 10.3.3.3", "10.2.2.2"}, want: "10.7.7.7"},
		{name: "malformed entry: the peer", trusted: trusted, remote: "10.0.0.1:80", xff: []string{"203.0.113.9, nonsense, 10.2.2.2"}, want: "10.0.0.1"},
		{name: "empty entry: the peer", trusted: trusted, remote: "10.0.0.1:80", xff: []string{"203.0.113.9,, 10.2.2.2"}, want: "10.0.0.1"},
		{name: "empty line: the peer", trusted: trusted, remote: "10.0.0.1:80", xff: []string{"203.0.113.9", ""}, want: "10.0.0.1"},
		{name: "malformed left of the client does not matter", trusted: trusted, remote: "10.0.0.1:80", xff: []string{"garbage, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "entry with a port", trusted: trusted, remote: "10.0.0.1:80", xff: []string{"203.0.113.9:4711"}, want: "203.0.113.9"},
		{name: "IPv6 peer and client", trusted: trusted, remote: "[fd00::1]:80", xff: []string{"2001:db8::7, fd12::3"}, want: "2001:db8::7"},
		{name: "IPv6 entry with a port", trusted: trusted, remote: "[fd00::1]:80", xff: []string{"[2001:db8::7]:4711"}, want: "2001:db8::7"},
		{name: "IPv6 untrusted peer", trusted: trusted, remote: "[2001:db8::1]:80", xff: []string{"fd00::9"}, want: "2001:db8::1"},
		{name: "v4-mapped peer and entry", trusted: trusted, remote: "[::ffff:10.0.0.1]:80", xff: []string{"::ffff:203.0.113.9"}, want: "203.0.113.9"},
		{name: "bad peer address", trusted: trusted, remote: "pipe", xff: []string{"203.0.113.9"}, want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://hello.localhost/", nil)
			req.RemoteAddr = tc.remote
			for _, l := range tc.xff {
				req.Header.Add("X-Forwarded-For", l)
			}
			got := clientAddr(req, tc.trusted)
			if tc.want == "" {
				if got.IsValid() {
					t.Fatalf("got %s, want no address", got)
				}
				return
			}
			if got != netip.MustParseAddr(tc.want) {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestSourceRuleAllocs: a source rule behind trusted proxies walks
// X-Forwarded-For without allocating.
func TestSourceRuleAllocs(t *testing.T) {
	st := svcState("hello", 1, 2)
	r, err := core.ParseRequestRule("source:203.0.113.0/24 -> 2")
	if err != nil {
		t.Fatal(err)
	}
	st.Traffic.Rules = []core.RequestRule{r}
	sr := newRoute(st)
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	req := httptest.NewRequest("GET", "http://hello.localhost/", nil)
	req.RemoteAddr = "10.0.0.1:80"
	req.Header.Set("X-Forwarded-For", "192.0.2.1, 203.0.113.9, 10.2.2.2")
	if v := matchRules(sr.rules, req, trusted); v != sr.versions[2] {
		t.Fatalf("got %v, want v2", v)
	}
	if n := testing.AllocsPerRun(100, func() { matchRules(sr.rules, req, trusted) }); n != 0 {
		t.Fatalf("%v allocations per evaluation, want 0", n)
	}
}

// TestCompileRulesSkipsGoneTarget: a rule whose version is not in the
// snapshot is left out rather than routing nowhere.
func TestCompileRulesSkipsGoneTarget(t *testing.T) {
	st := svcState("hello", 1)
	st.Traffic.Rules = []core.RequestRule{
		{Match: []core.Condition{{Kind: core.MatchHeader, Name: "X", Op: core.OpPresent}}, Version: 7},
		{Match: []core.Condition{{Kind: core.MatchHeader, Name: "X", Op: core.OpPresent}}, Tag: "gone"},
		{Match: []core.Condition{{Kind: core.MatchHeader, Name: "x-y", Op: core.OpPresent}}, Version: 1},
	}
	sr := newRoute(st)
	if len(sr.rules) != 1 || sr.rules[0].v != sr.versions[1] || sr.rules[0].conds[0].name != "X-Y" {
		t.Fatalf("rules %+v, want only the rule to v1, its header name canonical", sr.rules)
	}
}

func BenchmarkMatchRules(b *testing.B) {
	sr := tenRules(b)
	req := httptest.NewRequest("GET", "http://hello.localhost/", nil)
	b.ReportAllocs()
	for b.Loop() {
		matchRules(sr.rules, req, nil)
	}
}
