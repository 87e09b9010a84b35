package router

import (
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"github.com/wisp-run/wisp/internal/core"
)

// A request rule (core.RequestRule) as the router runs it: compiled once,
// when the snapshot is built, so a request compiles no regular expression,
// parses no address range and canonicalises no header name.
type rule struct {
	conds []cond
	v     *core.Version
}

type condKind uint8

const (
	headerExact condKind = iota
	headerPrefix
	headerRegex
	headerPresent
	cookieExact
	cookiePresent
	queryExact
	queryPresent
	sourceIn
)

type cond struct {
	kind   condKind
	name   string // canonical header key, cookie or query parameter name
	value  string
	re     *regexp.Regexp
	prefix netip.Prefix
}

// compileRules compiles t's rules against the route's versions and tags. A
// rule that no longer compiles or whose target is gone is left out: the
// store validated every rule, so that is a version deleted under it, and
// its requests take the weighted pick.
func compileRules(rules []core.RequestRule, sr *serviceRoute, tags map[string]int) []rule {
	if len(rules) == 0 {
		return nil
	}
	out := make([]rule, 0, len(rules))
next:
	for _, r := range rules {
		n := r.Version
		if r.Tag != "" {
			n = tags[r.Tag]
		}
		cr := rule{v: sr.versions[n], conds: make([]cond, 0, len(r.Match))}
		if cr.v == nil {
			continue
		}
		for _, c := range r.Match {
			cc, ok := compileCond(c)
			if !ok {
				continue next
			}
			cr.conds = append(cr.conds, cc)
		}
		out = append(out, cr)
	}
	return out
}

func compileCond(c core.Condition) (cond, bool) {
	out := cond{name: c.Name, value: c.Value}
	switch c.Kind + "/" + c.Op {
	case core.MatchHeader + "/" + core.OpExact:
		out.kind = headerExact
	case core.MatchHeader + "/" + core.OpPrefix:
		out.kind = headerPrefix
	case core.MatchHeader + "/" + core.OpRegex:
		re, err := regexp.Compile(c.Value)
		if err != nil {
			return cond{}, false
		}
		out.kind, out.re = headerRegex, re
	case core.MatchHeader + "/" + core.OpPresent:
		out.kind = headerPresent
	case core.MatchCookie + "/" + core.OpExact:
		out.kind = cookieExact
	case core.MatchCookie + "/" + core.OpPresent:
		out.kind = cookiePresent
	case core.MatchQuery + "/" + core.OpExact:
		out.kind = queryExact
	case core.MatchQuery + "/" + core.OpPresent:
		out.kind = queryPresent
	case core.MatchSource + "/" + core.OpCIDR:
		p, err := netip.ParsePrefix(c.Value)
		if err != nil {
			return cond{}, false
		}
		out.kind, out.prefix = sourceIn, p.Masked()
	default:
		return cond{}, false
	}
	if c.Kind == core.MatchHeader {
		out.name = http.CanonicalHeaderKey(c.Name)
	}
	return out, true
}

// ruleInput is what the conditions read of one request; the query and the
// client's address are parsed at most once, and only if a condition asks.
type ruleInput struct {
	req       *http.Request
	query     url.Values
	queryDone bool
	addr      netip.Addr
	addrDone  bool
}

// matchRules returns the target of the first of rules that req meets, or
// nil.
func matchRules(rules []rule, req *http.Request) *core.Version {
	in := ruleInput{req: req}
	for i := range rules {
		if in.meets(rules[i].conds) {
			return rules[i].v
		}
	}
	return nil
}

func (in *ruleInput) meets(conds []cond) bool {
	for i := range conds {
		if !in.holds(&conds[i]) {
			return false
		}
	}
	return true
}

func (in *ruleInput) holds(c *cond) bool {
	switch c.kind {
	case headerExact, headerPrefix, headerRegex:
		// Any of the header's values may match.
		for _, hv := range in.req.Header[c.name] {
			switch {
			case c.kind == headerExact && hv == c.value,
				c.kind == headerPrefix && strings.HasPrefix(hv, c.value),
				c.kind == headerRegex && c.re.MatchString(hv):
				return true
			}
		}
		return false
	case headerPresent:
		return len(in.req.Header[c.name]) > 0
	case cookieExact, cookiePresent:
		ck, err := in.req.Cookie(c.name)
		return err == nil && (c.kind == cookiePresent || ck.Value == c.value)
	case queryExact, queryPresent:
		if !in.queryDone {
			// A malformed pair is skipped; the others still count. No
			// query is no map (ParseQuery would allocate one).
			if raw := in.req.URL.RawQuery; raw != "" {
				in.query, _ = url.ParseQuery(raw)
			}
			in.queryDone = true
		}
		vs, ok := in.query[c.name]
		if c.kind == queryPresent {
			return ok
		}
		for _, qv := range vs {
			if qv == c.value {
				return true
			}
		}
		return false
	case sourceIn:
		if !in.addrDone {
			// The connection's address: X-Forwarded-For is the client's
			// word and is not trusted (docs/api.md).
			if ap, err := netip.ParseAddrPort(in.req.RemoteAddr); err == nil {
				in.addr = ap.Addr().Unmap()
			}
			in.addrDone = true
		}
		return in.addr.IsValid() && c.prefix.Contains(in.addr)
	}
	return false
}
