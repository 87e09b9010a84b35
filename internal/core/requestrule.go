package core

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RequestRule sends the requests that meet all its conditions to one
// version (by number) or tag, before the weighted pick. A traffic entry's
// rules are tried in order; the first that matches decides.
type RequestRule struct {
	// Match lists the conditions; all must hold (1 to MaxRuleConditions).
	Match []Condition `json:"match"`
	// Version or Tag is the target; exactly one is set.
	Version int    `json:"version,omitempty"`
	Tag     string `json:"tag,omitempty"`
}

// Condition is one test of a request.
type Condition struct {
	// Kind is what is tested: header, cookie, query (a query parameter) or
	// source (the client's address: the connection's, or from
	// X-Forwarded-For when the connection comes from a trusted proxy; see
	// router.Config.TrustedProxies).
	Kind string `json:"kind"`
	// Name is the header, cookie or query parameter; empty for source.
	Name string `json:"name,omitempty"`
	// Op is how: exact, prefix, regex (RE2, unanchored: add ^ and $ for a
	// whole value) or present for a header; exact or present for a cookie
	// or a query parameter; cidr for source.
	Op string `json:"op"`
	// Value is what the op compares with: the text, the prefix, the
	// regular expression or the address range; empty for present.
	Value string `json:"value,omitempty"`
}

// The kinds and ops of a condition.
const (
	MatchHeader = "header"
	MatchCookie = "cookie"
	MatchQuery  = "query"
	MatchSource = "source"

	OpExact   = "exact"
	OpPrefix  = "prefix"
	OpRegex   = "regex"
	OpPresent = "present"
	OpCIDR    = "cidr"
)

// The bounds of an entry's rules. A request tries every rule before the
// weighted pick, so their number bounds the router's work per request.
const (
	MaxRequestRules   = 50
	MaxRuleConditions = 10
	maxConditionValue = 1024
	maxConditionName  = 256
)

// opsOf lists the ops each kind allows.
var opsOf = map[string][]string{
	MatchHeader: {OpExact, OpPrefix, OpRegex, OpPresent},
	MatchCookie: {OpExact, OpPresent},
	MatchQuery:  {OpExact, OpPresent},
	MatchSource: {OpCIDR},
}

// validateRules checks t's rules: exists reports the service's versions,
// and a tag target must be one of t's tags.
func (t Traffic) validateRules(service string, exists func(int) bool) error {
	if len(t.Rules) > MaxRequestRules {
		return Invalidf("rules", "%d rules; the limit is %d", len(t.Rules), MaxRequestRules)
	}
	for i, r := range t.Rules {
		field := "rules[" + strconv.Itoa(i) + "]"
		where := "rule " + strconv.Itoa(i+1)
		if len(r.Match) == 0 {
			return Invalidf(field+".match", "%s: give at least one condition, for example header:X-Beta=1", where)
		}
		if len(r.Match) > MaxRuleConditions {
			return Invalidf(field+".match", "%s: %d conditions; the limit is %d", where, len(r.Match), MaxRuleConditions)
		}
		for j, c := range r.Match {
			if err := c.Validate(field+".match["+strconv.Itoa(j)+"]", where+", condition "+strconv.Itoa(j+1)); err != nil {
				return err
			}
		}
		switch {
		case r.Version != 0 && r.Tag != "":
			return Invalidf(field, "%s: give a version or a tag as its target, not both", where)
		case r.Tag != "":
			if _, ok := t.Tags[r.Tag]; !ok {
				return Invalidf(field+".tag", "%s: tag %q is not one of this split's tags; add it with the split (--tag %s=VERSION)", where, r.Tag, r.Tag)
			}
		case r.Version < 1:
			return Invalidf(field+".version", "%s: the target must be a version number of %s (1 or more) or a tag, got %d", where, service, r.Version)
		case !exists(r.Version):
			return Invalidf(field+".version", "%s: service %s has no version %d", where, service, r.Version)
		}
	}
	return nil
}

// Validate checks c; field is its place in the request body and where its
// place in words, for the message.
func (c Condition) Validate(field, where string) error {
	ops, ok := opsOf[c.Kind]
	if !ok {
		return Invalidf(field+".kind", "%s: kind must be header, cookie, query or source, got %q", where, c.Kind)
	}
	if !contains(ops, c.Op) {
		return Invalidf(field+".op", "%s: a %s condition's op is %s, got %q", where, c.Kind, strings.Join(ops, ", "), c.Op)
	}
	if len(c.Value) > maxConditionValue {
		return Invalidf(field+".value", "%s: the value is %d bytes long; the limit is %d", where, len(c.Value), maxConditionValue)
	}
	if c.Kind == MatchSource {
		if c.Name != "" {
			return Invalidf(field+".name", "%s: a source condition has no name", where)
		}
		if _, err := netip.ParsePrefix(c.Value); err != nil {
			return Invalidf(field+".value", "%s: %q is not an address range in CIDR notation, such as 10.0.0.0/8 or fd00::/8", where, c.Value)
		}
		return nil
	}
	switch {
	case c.Name == "":
		return Invalidf(field+".name", "%s: the %s name is empty", where, c.Kind)
	case len(c.Name) > maxConditionName:
		return Invalidf(field+".name", "%s: the %s name is %d bytes long; the limit is %d", where, c.Kind, len(c.Name), maxConditionName)
	case c.Kind == MatchHeader && !isToken(c.Name):
		return Invalidf(field+".name", "%s: %q is not a valid header name (letters, digits and !#$%%&'*+-.^_`|~)", where, c.Name)
	case strings.ContainsAny(c.Name, " \t\r\n;=&"):
		return Invalidf(field+".name", "%s: the %s name %q must not contain spaces or any of ;=&", where, c.Kind, c.Name)
	case c.Op == OpPresent && c.Value != "":
		return Invalidf(field+".value", "%s: a present condition has no value", where)
	case c.Op == OpRegex:
		if _, err := regexp.Compile(c.Value); err != nil {
			return Invalidf(field+".value", "%s: the regular expression %q does not compile: %v", where, c.Value, err)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isToken reports whether s is an HTTP token (RFC 9110, section 5.6.2), the
// syntax of a header name.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// RuleTargets returns the version numbers that t's rules send requests to,
// tags resolved.
func (t Traffic) RuleTargets() map[int]bool {
	out := map[int]bool{}
	for _, r := range t.Rules {
		if r.Tag != "" {
			if n, ok := t.Tags[r.Tag]; ok {
				out[n] = true
			}
			continue
		}
		out[r.Version] = true
	}
	return out
}

// The text form of a rule, which the CLI's --rule and the dashboard's
// editor take and print:
//
//	header:X-Beta=1 && query:debug -> 2
//	cookie:beta=yes -> tag:canary
//	header:X-Query="a && b" -> 2
//
// Conditions, joined by &&: header:NAME=VALUE (exact), header:NAME^=PREFIX,
// header:NAME~=REGEX, header:NAME (present), cookie:NAME=VALUE,
// cookie:NAME, query:NAME=VALUE, query:NAME, source:CIDR. The target after
// the last -> is a version (2 or v2) or tag:NAME. A value that starts
// right after the = with a double quote is a quoted string with Go's
// backslash escapes (\" and \\ among them) and ends the condition: it may
// hold &&, ->, spaces at either end and any character. Any other value is
// taken as written, up to the next && (or the last ->), without the spaces
// at its end; it may contain -> and quotes, but not start with one.

// ParseRequestRule reads a rule in its text form. The error names the part
// that is wrong.
func ParseRequestRule(s string) (RequestRule, error) {
	quoted, err := quotedValues(s)
	if err != nil {
		return RequestRule{}, Invalidf("rules", "rule %q: %v", s, err)
	}
	i := lastOutside(s, "->", quoted)
	if i < 0 {
		return RequestRule{}, Invalidf("rules", "rule %q has no target: end it with -> VERSION or -> tag:NAME, for example header:X-Beta=1 -> 2", s)
	}
	var r RequestRule
	target := strings.TrimSpace(s[i+2:])
	if name, ok := strings.CutPrefix(target, "tag:"); ok {
		if name == "" {
			return RequestRule{}, Invalidf("rules", "rule %q: target %q names no tag", s, target)
		}
		r.Tag = name
	} else if n, ok := ParseVersionNumber(target); ok {
		r.Version = n
	} else {
		return RequestRule{}, Invalidf("rules", "rule %q: target %q is not a version (2 or v2) nor tag:NAME", s, target)
	}
	if strings.TrimSpace(s[:i]) == "" {
		return RequestRule{}, Invalidf("rules", "rule %q has no condition before ->, for example header:X-Beta=1", s)
	}
	for _, part := range splitOutside(s[:i], "&&", quoted) {
		c, err := parseCondition(strings.TrimSpace(part))
		if err != nil {
			return RequestRule{}, Invalidf("rules", "rule %q: %v", s, err)
		}
		r.Match = append(r.Match, c)
	}
	return r, nil
}

// quotedValues returns where s's quoted values are, [start, end) with
// their quotes: a header, cookie or query condition whose value begins
// with " right after its =. Any other " is a character of a value, as it
// was before values could be quoted.
func quotedValues(s string) ([][2]int, error) {
	var out [][2]int
	for start := 0; start < len(s); {
		seg := s[start:]
		amp, eq := strings.Index(seg, "&&"), strings.IndexByte(seg, '=')
		if eq >= 0 && (amp < 0 || eq < amp) && strings.HasPrefix(seg[eq+1:], `"`) && valueKind(seg[:eq]) {
			q := start + eq + 1
			end, ok := closingQuote(s, q)
			if !ok {
				return nil, Invalidf("rules", "the quoted value %s has no closing quote (write a quote inside it as \\\")", s[q:])
			}
			out = append(out, [2]int{q, end})
			start, seg = end, s[end:]
			amp = strings.Index(seg, "&&")
		}
		if amp < 0 {
			break
		}
		start += amp + 2
	}
	return out, nil
}

// valueKind reports whether head, the text of a condition before its
// first =, is of a kind whose value may be quoted.
func valueKind(head string) bool {
	kind, _, _ := strings.Cut(strings.TrimSpace(head), ":")
	return kind == MatchHeader || kind == MatchCookie || kind == MatchQuery
}

// closingQuote returns the index after the quote that closes the quoted
// string opening at s[q], skipping backslash escapes.
func closingQuote(s string, q int) (int, bool) {
	for i := q + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return len(s), false
}

func inside(i int, quoted [][2]int) bool {
	for _, q := range quoted {
		if q[0] <= i && i < q[1] {
			return true
		}
	}
	return false
}

// lastOutside is strings.LastIndex(s, sep) for a sep outside quoted.
func lastOutside(s, sep string, quoted [][2]int) int {
	for end := len(s); ; {
		i := strings.LastIndex(s[:end], sep)
		if i < 0 || !inside(i, quoted) {
			return i
		}
		end = i
	}
}

// splitOutside is strings.Split(s, sep) at the seps outside quoted.
func splitOutside(s, sep string, quoted [][2]int) []string {
	var parts []string
	from := 0
	for at := 0; ; {
		i := strings.Index(s[at:], sep)
		if i < 0 {
			break
		}
		i += at
		at = i + len(sep)
		if !inside(i, quoted) {
			parts = append(parts, s[from:i])
			from = at
		}
	}
	return append(parts, s[from:])
}

func parseCondition(s string) (Condition, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || opsOf[kind] == nil {
		return Condition{}, Invalidf("rules", "condition %q must start with header:, cookie:, query: or source:", s)
	}
	c := Condition{Kind: kind}
	if kind == MatchSource {
		c.Op, c.Value = OpCIDR, strings.TrimSpace(rest)
		if _, err := netip.ParsePrefix(c.Value); err != nil {
			return Condition{}, Invalidf("rules", "condition %q: %q is not an address range in CIDR notation, such as 10.0.0.0/8", s, c.Value)
		}
		return c, nil
	}
	eq := strings.IndexByte(rest, '=')
	switch {
	case eq < 0:
		c.Name, c.Op = rest, OpPresent
	case eq > 0 && kind == MatchHeader && rest[eq-1] == '^':
		c.Name, c.Op, c.Value = rest[:eq-1], OpPrefix, rest[eq+1:]
	case eq > 0 && kind == MatchHeader && rest[eq-1] == '~':
		c.Name, c.Op, c.Value = rest[:eq-1], OpRegex, rest[eq+1:]
	default:
		c.Name, c.Op, c.Value = rest[:eq], OpExact, rest[eq+1:]
	}
	c.Name = strings.TrimSpace(c.Name)
	if strings.HasPrefix(c.Value, `"`) {
		end, _ := closingQuote(c.Value, 0) // quotedValues found the closing quote
		if after := c.Value[end:]; after != "" {
			return Condition{}, Invalidf("rules", "condition %q: %q follows the quoted value; a quoted value ends its condition (then && or ->)", s, after)
		}
		v, err := strconv.Unquote(c.Value)
		if err != nil {
			return Condition{}, Invalidf("rules", "condition %q: the quoted value %s is not a valid quoted string: escape a quote as \\\" and a backslash as \\\\", s, c.Value)
		}
		c.Value = v
	}
	if err := c.Validate("rules", "condition "+strconv.Quote(s)); err != nil {
		return Condition{}, err
	}
	return c, nil
}

// String returns r in its text form, which ParseRequestRule reads back.
func (r RequestRule) String() string {
	parts := make([]string, len(r.Match))
	for i, c := range r.Match {
		parts[i] = c.String()
	}
	target := strconv.Itoa(r.Version)
	if r.Tag != "" {
		target = "tag:" + r.Tag
	}
	return strings.Join(parts, " && ") + " -> " + target
}

// String returns c in the text form of a rule's condition, its value
// quoted when it must be to read back the same (or to be one printable
// line).
func (c Condition) String() string {
	v := c.Value
	if c.Op != OpCIDR && needsQuotes(v) {
		v = strconv.Quote(v)
	}
	switch c.Op {
	case OpCIDR:
		return c.Kind + ":" + c.Value
	case OpPresent:
		return c.Kind + ":" + c.Name
	case OpPrefix:
		return c.Kind + ":" + c.Name + "^=" + v
	case OpRegex:
		return c.Kind + ":" + c.Name + "~=" + v
	default:
		return c.Kind + ":" + c.Name + "=" + v
	}
}

// needsQuotes reports whether value v must be quoted in the text form: it
// starts with a quote, holds &&, has spaces at an end (which an unquoted
// value loses), or holds a character that does not print (a newline would
// break the dashboard's one rule per line) or is not UTF-8.
func needsQuotes(v string) bool {
	if strings.HasPrefix(v, `"`) || strings.Contains(v, "&&") || strings.TrimSpace(v) != v || !utf8.ValidString(v) {
		return true
	}
	for _, r := range v {
		if !strconv.IsPrint(r) {
			return true
		}
	}
	return false
}
