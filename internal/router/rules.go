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
	trusted   []netip.Prefix
	query     url.Values
	queryDone bool
	addr      netip.Addr
	addrDone  bool
}

// matchRules returns the target of the first of rules that req meets, or
// nil; trusted are the proxies whose X-Forwarded-For source rules believe.
func matchRules(rules []rule, req *http.Request, trusted []netip.Prefix) *core.Version {
	in := ruleInput{req: req, trusted: trusted}
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
			in.addr, in.addrDone = clientAddr(in.req, in.trusted), true
		}
		return in.addr.IsValid() && c.prefix.Contains(in.addr)
	}
	return false
}

// clientAddr is the address source rules test: the connection's, unless it
// comes from a trusted proxy. Then it is the right-most address of
// X-Forwarded-For that is not itself a trusted proxy: each proxy appends
// the address it received the request from, so the entries right of that
// one were written by trusted proxies and the ones left of it by the
// client, who can write anything. When every entry is a trusted proxy the
// client is the left-most one (inside the network). A malformed entry on
// the way means a proxy that is not what it is said to be: the
// connection's address is used. Several X-Forwarded-For lines are one
// list, in order (RFC 9110, section 5.3). It allocates nothing.
func clientAddr(req *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	peer := ap.Addr().Unmap()
	if !inPrefixes(trusted, peer) {
		return peer
	}
	client := peer
	lines := req.Header["X-Forwarded-For"]
	for i := len(lines) - 1; i >= 0; i-- {
		list := lines[i]
		for {
			comma := strings.LastIndexByte(list, ',')
			a, ok := forwardedAddr(strings.TrimSpace(list[comma+1:]))
			if !ok {
				return peer
			}
			if !inPrefixes(trusted, a) {
				return a
			}
			client = a
			if comma < 0 {
				break
			}
			list = list[:comma]
		}
	}
	return client
}

// forwardedAddr reads one X-Forwarded-For entry: an address, or an address
// and a port (some proxies add it: 192.0.2.1:4711, [2001:db8::1]:4711).
func forwardedAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap(), true
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
