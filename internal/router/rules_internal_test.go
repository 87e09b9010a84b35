package router

import (
	"net/http/httptest"
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
	if v := matchRules(sr.rules, miss); v != nil {
		t.Fatalf("miss matched %v", v)
	}
	if v := matchRules(sr.rules, hit); v != sr.versions[2] {
		t.Fatalf("hit got %v, want v2", v)
	}
	if n := testing.AllocsPerRun(100, func() { matchRules(sr.rules, miss); matchRules(sr.rules, hit) }); n != 0 {
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
		matchRules(sr.rules, req)
	}
}
