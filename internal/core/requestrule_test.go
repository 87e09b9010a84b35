package core_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
)

func cond(kind, name, op, value string) core.Condition {
	return core.Condition{Kind: kind, Name: name, Op: op, Value: value}
}

func mustRule(t *testing.T, s string) core.RequestRule {
	t.Helper()
	r, err := core.ParseRequestRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseRequestRule(t *testing.T) {
	cases := []struct {
		in   string
		want core.RequestRule
		text string // String() when it differs from in
	}{
		{in: "header:X-Beta=1 -> 2", want: core.RequestRule{Match: []core.Condition{cond("header", "X-Beta", "exact", "1")}, Version: 2}},
		{in: "header:X-Beta^=pre -> v3", want: core.RequestRule{Match: []core.Condition{cond("header", "X-Beta", "prefix", "pre")}, Version: 3},
			text: "header:X-Beta^=pre -> 3"},
		{in: "header:User-Agent~=^curl/[0-9]+ (x=y) -> tag:canary", want: core.RequestRule{
			Match: []core.Condition{cond("header", "User-Agent", "regex", "^curl/[0-9]+ (x=y)")}, Tag: "canary"}},
		{in: "header:X-Beta -> 2", want: core.RequestRule{Match: []core.Condition{cond("header", "X-Beta", "present", "")}, Version: 2}},
		{in: "header:X-Empty= -> 2", want: core.RequestRule{Match: []core.Condition{cond("header", "X-Empty", "exact", "")}, Version: 2}},
		{in: "cookie:beta=1 -> 2", want: core.RequestRule{Match: []core.Condition{cond("cookie", "beta", "exact", "1")}, Version: 2}},
		{in: "cookie:beta -> 2", want: core.RequestRule{Match: []core.Condition{cond("cookie", "beta", "present", "")}, Version: 2}},
		{in: "query:beta=a=b -> 2", want: core.RequestRule{Match: []core.Condition{cond("query", "beta", "exact", "a=b")}, Version: 2}},
		{in: "query:beta -> 2", want: core.RequestRule{Match: []core.Condition{cond("query", "beta", "present", "")}, Version: 2}},
		{in: "source:10.0.0.0/8 -> 2", want: core.RequestRule{Match: []core.Condition{cond("source", "", "cidr", "10.0.0.0/8")}, Version: 2}},
		{in: "  header:X-Beta=1&&source:fd00::/8 &&  query:q   ->2 ", want: core.RequestRule{Match: []core.Condition{
			cond("header", "X-Beta", "exact", "1"), cond("source", "", "cidr", "fd00::/8"), cond("query", "q", "present", "")}, Version: 2},
			text: "header:X-Beta=1 && source:fd00::/8 && query:q -> 2"},
		{in: "header:X-Arrow=a->b -> 2", want: core.RequestRule{Match: []core.Condition{cond("header", "X-Arrow", "exact", "a->b")}, Version: 2}},
		// A quote that does not open the value is a character of it, as
		// before values could be quoted; so are spaces before it.
		{in: `header:X-Q=a"b -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "exact", `a"b`)}, Version: 2}},
		{in: `header:X-Q= "a" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "exact", ` "a"`)}, Version: 2},
			text: `header:X-Q=" \"a\"" -> 2`},
		// Quoted values.
		{in: `header:X-Q="a && b" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "exact", "a && b")}, Version: 2}},
		{in: `header:X-Q="a -> b" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "exact", "a -> b")}, Version: 2},
			text: `header:X-Q=a -> b -> 2`},
		{in: `header:X-Q=" padded " -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "exact", " padded ")}, Version: 2}},
		{in: `header:X-Q="say \"hi\"" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "exact", `say "hi"`)}, Version: 2},
			text: `header:X-Q=say "hi" -> 2`},
		{in: `header:If-None-Match="\"v1\"" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "If-None-Match", "exact", `"v1"`)}, Version: 2}},
		{in: `header:X-Q="back\\slash" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "exact", `back\slash`)}, Version: 2},
			text: `header:X-Q=back\slash -> 2`},
		{in: `header:X-Q="two\nlines" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "exact", "two\nlines")}, Version: 2}},
		{in: `header:X-Q^="a&&" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "prefix", "a&&")}, Version: 2}},
		{in: `header:X-Q~="^(a && b|c)$" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("header", "X-Q", "regex", "^(a && b|c)$")}, Version: 2}},
		{in: `cookie:c="x && y"&&query:q="1&&2" && header:X-Beta=1 -> tag:canary`, want: core.RequestRule{Match: []core.Condition{
			cond("cookie", "c", "exact", "x && y"), cond("query", "q", "exact", "1&&2"), cond("header", "X-Beta", "exact", "1")}, Tag: "canary"},
			text: `cookie:c="x && y" && query:q="1&&2" && header:X-Beta=1 -> tag:canary`},
		{in: `query:q="" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("query", "q", "exact", "")}, Version: 2}, text: "query:q= -> 2"},
		{in: `query:q="日本" -> 2`, want: core.RequestRule{Match: []core.Condition{cond("query", "q", "exact", "日本")}, Version: 2}, text: "query:q=日本 -> 2"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got := mustRule(t, tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			text := tc.text
			if text == "" {
				text = tc.in
			}
			if got.String() != text {
				t.Fatalf("String() = %q, want %q", got.String(), text)
			}
			back := mustRule(t, got.String())
			if diff := cmp.Diff(got, back); diff != "" {
				t.Fatalf("String does not parse back (-first +again):\n%s", diff)
			}
		})
	}
}

func TestParseRequestRuleErrors(t *testing.T) {
	cases := []struct{ in, msg string }{
		{"header:X-Beta=1", "has no target"},
		{"header:X-Beta=1 -> ", `target "" is not a version`},
		{"header:X-Beta=1 -> two", `target "two" is not a version`},
		{"header:X-Beta=1 -> 0", `target "0" is not a version`},
		{"header:X-Beta=1 -> tag:", "names no tag"},
		{" -> 2", "has no condition"},
		{"host:x=1 -> 2", `condition "host:x=1" must start with header:, cookie:, query: or source:`},
		{"X-Beta=1 -> 2", "must start with header:"},
		{"header:=1 -> 2", "the header name is empty"},
		{"header:X Beta=1 -> 2", `"X Beta" is not a valid header name`},
		{"header:X-Beta~=( -> 2", "the regular expression \"(\" does not compile"},
		{"cookie:be ta=x -> 2", "the cookie name \"be ta\" must not contain"},
		{"query: -> 2", "the query name is empty"},
		{"source:10.0.0.0/33 -> 2", `"10.0.0.0/33" is not an address range`},
		{"source:10.0.0.1 -> 2", `"10.0.0.1" is not an address range`},
		{"header:X-Beta=1 && -> 2", "must start with header:"},
		{`header:X-Q="a -> 2`, `the quoted value "a -> 2 has no closing quote`},
		{`header:X-Q="a" && cookie:c="b -> 2`, `the quoted value "b -> 2 has no closing quote`},
		{`header:X-Q="a"b -> 2`, `"b" follows the quoted value`},
		{`header:X-Q="a" b && query:q -> 2`, `" b" follows the quoted value`},
		{`header:X-Q="a\q" -> 2`, `the quoted value "a\q" is not a valid quoted string`},
		{`source:"10.0.0.0/8" -> 2`, `"\"10.0.0.0/8\"" is not an address range`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			_, err := core.ParseRequestRule(tc.in)
			wantErr(t, err, core.ErrInvalid, tc.msg)
			if !strings.Contains(err.Error(), "rule") {
				t.Fatalf("error %q does not say it is about a rule", err)
			}
		})
	}
}

// TestRequestRuleRoundTrip: any rule, however its values read, prints as
// text that parses back to the same rule.
func TestRequestRuleRoundTrip(t *testing.T) {
	values := []string{"", "1", "a && b", "&&", "a&", "&b", " lead", "trail ", "\t", `"`, `"quoted"`, `a"b`, `\`, `\"`,
		"->", "a->", "a-", "-", ">", "a -> b", "two\nlines", "\r\n", "\x00", "\xff\xfe", "日本", "a=b", "^=", "~=", "%", "\u200b"}
	for _, v := range values {
		for _, op := range []string{core.OpExact, core.OpPrefix, core.OpRegex} {
			r := core.RequestRule{Match: []core.Condition{
				cond("header", "X-Q", op, v), cond("query", "q", "exact", v), cond("cookie", "c", "exact", v), cond("cookie", "p", "present", ""),
			}, Version: 2}
			text := r.String()
			got, err := core.ParseRequestRule(text)
			if err != nil {
				if op == core.OpRegex {
					continue // not every value is a regular expression
				}
				t.Fatalf("value %q: %q does not parse: %v", v, text, err)
			}
			if diff := cmp.Diff(r, got); diff != "" {
				t.Fatalf("value %q: %q parses to another rule (-want +got):\n%s", v, text, diff)
			}
			if strings.ContainsAny(text, "\n\r") {
				t.Fatalf("value %q: %q is more than one line", v, text)
			}
		}
	}
}

// FuzzParseRequestRule: a text either fails with an invalid error about a
// rule, or parses to a rule whose text parses back to the same rule.
func FuzzParseRequestRule(f *testing.F) {
	for _, s := range []string{"header:X-Beta=1 -> 2", `header:X-Q="a && b" && query:q -> tag:canary`, "cookie:c=x->y -> v3",
		`header:X-Q="\"v1\"" -> 2`, "source:10.0.0.0/8 && header:A~=^x$ -> 2", `query:q="a\nb" -> 2`, `header:X="a -> 2`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := core.ParseRequestRule(s)
		if err != nil {
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "rule") {
				t.Fatalf("error of another kind or not about a rule: %v", err)
			}
			return
		}
		back, err := core.ParseRequestRule(r.String())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose text %q does not parse: %v", s, r, r.String(), err)
		}
		if diff := cmp.Diff(r, back); diff != "" {
			t.Fatalf("%q: its text %q parses to another rule (-first +again):\n%s", s, r.String(), diff)
		}
	})
}

func TestTrafficValidateRules(t *testing.T) {
	base := func(rules ...core.RequestRule) core.Traffic {
		return core.Traffic{Weights: w(1, 100), Tags: map[string]int{"canary": 2}, Rules: rules}
	}
	hdr := []core.Condition{cond("header", "X-Beta", "exact", "1")}
	many := make([]core.RequestRule, core.MaxRequestRules+1)
	for i := range many {
		many[i] = core.RequestRule{Match: hdr, Version: 2}
	}
	manyConds := make([]core.Condition, core.MaxRuleConditions+1)
	for i := range manyConds {
		manyConds[i] = hdr[0]
	}
	cases := []struct {
		name string
		t    core.Traffic
		msg  string // empty: valid
	}{
		{"valid", base(core.RequestRule{Match: hdr, Version: 2}, core.RequestRule{Match: hdr, Tag: "canary"}), ""},
		{"at the bound", base(many[1:]...), ""},
		{"too many rules", base(many...), "51 rules; the limit is 50"},
		{"too many conditions", base(core.RequestRule{Match: manyConds, Version: 2}), "rule 1: 11 conditions; the limit is 10"},
		{"no condition", base(core.RequestRule{Version: 2}), "rule 1: give at least one condition"},
		{"unknown version", base(core.RequestRule{Match: hdr, Version: 1}, core.RequestRule{Match: hdr, Version: 9}), "rule 2: service hello has no version 9"},
		{"no target", base(core.RequestRule{Match: hdr}), "rule 1: the target must be a version number"},
		{"both targets", base(core.RequestRule{Match: hdr, Version: 2, Tag: "canary"}), "not both"},
		{"unknown tag", base(core.RequestRule{Match: hdr, Tag: "beta"}), `rule 1: tag "beta" is not one of this split's tags`},
		{"bad regex", base(core.RequestRule{Match: []core.Condition{hdr[0], cond("header", "X", "regex", "a(")}, Version: 2}),
			`rule 1, condition 2: the regular expression "a(" does not compile`},
		{"empty header name", base(core.RequestRule{Match: []core.Condition{cond("header", "", "exact", "1")}, Version: 2}), "rule 1, condition 1: the header name is empty"},
		{"bad CIDR", base(core.RequestRule{Match: []core.Condition{cond("source", "", "cidr", "10.0.0/8")}, Version: 2}), `"10.0.0/8" is not an address range`},
		{"source with a name", base(core.RequestRule{Match: []core.Condition{cond("source", "x", "cidr", "10.0.0.0/8")}, Version: 2}), "a source condition has no name"},
		{"unknown kind", base(core.RequestRule{Match: []core.Condition{cond("path", "x", "exact", "1")}, Version: 2}), `kind must be header, cookie, query or source, got "path"`},
		{"op of another kind", base(core.RequestRule{Match: []core.Condition{cond("cookie", "x", "regex", "1")}, Version: 2}), `a cookie condition's op is exact, present, got "regex"`},
		{"present with a value", base(core.RequestRule{Match: []core.Condition{cond("query", "x", "present", "1")}, Version: 2}), "a present condition has no value"},
		{"value too long", base(core.RequestRule{Match: []core.Condition{cond("header", "X", "exact", strings.Repeat("a", 1025))}, Version: 2}), "the limit is 1024"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate("hello", versions(1, 2))
			if tc.msg == "" {
				wantErr(t, err, nil, "")
				return
			}
			wantErr(t, err, core.ErrInvalid, tc.msg)
		})
	}
}

// TestRulesKeptByDerivedEntries: a deploy's shift and a rollback keep the
// rules; a version a rule targets cannot be deleted, and an entry whose
// rule targets a deleted version cannot come back.
func TestRulesKeptByDerivedEntries(t *testing.T) {
	rules := []core.RequestRule{mustRule(t, "header:X-Beta=1 -> 2"), mustRule(t, "cookie:c -> tag:canary")}
	cur := entry(5, core.Traffic{Weights: w(1, 100), Tags: map[string]int{"canary": 3}, Rules: rules})

	next, ok, err := core.DeployTraffic("hello", cur, 4, 10, "canary", versions(1, 2, 3, 4))
	if err != nil || !ok {
		t.Fatalf("DeployTraffic: %v %v", ok, err)
	}
	if diff := cmp.Diff(rules, next.Rules); diff != "" {
		t.Fatalf("the deploy's shift lost rules (-want +got):\n%s", diff)
	}

	wantErr(t, core.CheckDeleteVersion("hello", 2, cur), core.ErrConflict, `version 2 of service "hello" is the target of request rule 1 (header:X-Beta=1 -> 2)`)
	wantErr(t, core.CheckDeleteVersion("hello", 4, cur), nil, "")

	back, err := core.RollbackTraffic("hello", 5, entry(6, core.Traffic{Weights: w(1, 100)}), cur, versions(1, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rules, back.Rules); diff != "" {
		t.Fatalf("rollback lost rules (-want +got):\n%s", diff)
	}
	_, err = core.RollbackTraffic("hello", 5, entry(6, core.Traffic{Weights: w(1, 100)}), cur, versions(1, 3))
	wantErr(t, err, core.ErrConflict, "rule 1: service hello has no version 2")

	if got := cur.Routable(); !got[2] || !got[3] || !got[1] || len(got) != 3 {
		t.Fatalf("Routable() = %v, want 1 (weight), 2 (rule), 3 (tag and rule)", got)
	}
}
