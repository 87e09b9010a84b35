package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTrafficRules: --rule sets rules in order, get and history print
// them, a later set keeps them unless told otherwise, and a bad rule is a
// usage error (exit 2) that names the flag and the bad part.
func TestTrafficRules(t *testing.T) {
	e := newEnv(t)
	e.ok("service", "create", "hello")
	e.ok("version", "create", "hello", "--image", "hello:1")
	e.ok("version", "create", "hello", "--image", "hello:2")
	out := e.ok("traffic", "set", "hello", "1=100", "--tag", "canary=2",
		"--rule", "header:X-Beta=1 -> 2", "--rule", "cookie:beta && source:10.0.0.0/8 -> tag:canary")
	for _, want := range []string{"Rules, first match wins:", "1. header:X-Beta=1 -> 2", "2. cookie:beta && source:10.0.0.0/8 -> tag:canary"} {
		if !strings.Contains(out, want) {
			t.Fatalf("traffic set does not print %q:\n%s", want, out)
		}
	}
	e.ok("traffic", "set", "hello", "1=50", "2=50")
	var cur struct {
		Rules []struct {
			Match   []struct{ Kind, Name, Op, Value string }
			Version int
			Tag     string
		}
	}
	if err := json.Unmarshal([]byte(e.ok("traffic", "get", "hello", "-o", "json")), &cur); err != nil {
		t.Fatal(err)
	}
	if len(cur.Rules) != 2 || cur.Rules[0].Version != 2 || cur.Rules[0].Match[0].Name != "X-Beta" || cur.Rules[1].Tag != "canary" ||
		cur.Rules[1].Match[1].Value != "10.0.0.0/8" {
		t.Fatalf("a set without --rule must keep the rules: %+v", cur)
	}
	hist := e.ok("traffic", "history", "hello")
	if !strings.Contains(hist, "RULES") || strings.Count(hist, "header:X-Beta=1 -> 2; cookie:beta && source:10.0.0.0/8 -> tag:canary") != 2 {
		t.Fatalf("history does not show the rules of both entries:\n%s", hist)
	}
	// A quoted value holds && and keeps its spaces; get and history print
	// it quoted, as it parses back.
	out = e.ok("traffic", "set", "hello", "1=100", "--rule", `header:X-Q=" a && b" && query:q=x->y -> 2`)
	if want := `1. header:X-Q=" a && b" && query:q=x->y -> 2`; !strings.Contains(out, want) {
		t.Fatalf("traffic set does not print %q:\n%s", want, out)
	}
	if err := json.Unmarshal([]byte(e.ok("traffic", "get", "hello", "-o", "json")), &cur); err != nil {
		t.Fatal(err)
	}
	if len(cur.Rules) != 1 || len(cur.Rules[0].Match) != 2 || cur.Rules[0].Match[0].Value != " a && b" || cur.Rules[0].Match[1].Value != "x->y" {
		t.Fatalf("quoted value: %+v", cur)
	}
	if hist := e.ok("traffic", "history", "hello"); !strings.Contains(hist, `header:X-Q=" a && b" && query:q=x->y -> 2`) {
		t.Fatalf("history does not print the quoted value:\n%s", hist)
	}
	out = e.ok("traffic", "set", "hello", "1=100", "--no-rules")
	if strings.Contains(out, "Rules") {
		t.Fatalf("--no-rules left rules:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rule", "header:X-Beta=1"}, `--rule 1: rule "header:X-Beta=1" has no target`},
		{[]string{"--rule", "header:A -> 2", "--rule", "header:X~=( -> 2"}, `--rule 2: rule "header:X~=( -> 2": condition "header:X~=(": the regular expression "(" does not compile`},
		{[]string{"--rule", "source:10.0.0.0/40 -> 2"}, `"10.0.0.0/40" is not an address range`},
		{[]string{"--rule", "path:/x -> 2"}, `must start with header:, cookie:, query: or source:`},
		{[]string{"--rule", "header:A -> 2", "--no-rules"}, "give --rule or --no-rules, not both"},
		{[]string{"--rule", `header:X-Q="a && b -> 2`}, `--rule 1: rule "header:X-Q=\"a && b -> 2": the quoted value "a && b -> 2 has no closing quote`},
	} {
		code, _, errOut := e.run(append([]string{"traffic", "set", "hello", "1=100"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Fatalf("%v: exit %d %q, want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	// The daemon's checks come back as they are.
	code, _, errOut := e.run("traffic", "set", "hello", "1=100", "--rule", "header:X -> 9")
	if code != 1 || !strings.Contains(errOut, "rule 1: service hello has no version 9") {
		t.Fatalf("unknown version: exit %d %q", code, errOut)
	}
}
