package router

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/latency"
)

// Mirroring (issue 15, part 3): a share of a service's requests is copied
// to the mirror version and both answers are compared; the client only
// ever gets the primary's.
//
// The primary never waits for the mirror. A bodiless copy is sent when the
// primary is, from its own goroutine; a copy with a body is sent once the
// primary has read the body, from the bytes teed off while it read (up to
// MirrorMaxBody; the primary's stream is never held to fill the copy). The
// mirror's goroutine waits for the primary's answer, then compares. At most
// MirrorMaxInFlight copies of a service are in flight; beyond that a copy is
// dropped, never queued.
//
// Cold starts: a copy asks the activator for an instance like any request,
// so the first copy starts the mirror version, but it waits at most
// MirrorAcquireTimeout for one; a copy that gets none counts as an error.
// While the start runs, that copy holds one in-flight slot, so the others
// beyond the bound are dropped rather than piling up behind the start.

// mirrorRoute is a service's compiled mirror setting, in its route.
type mirrorRoute struct {
	cfg     core.Mirror
	target  *core.Version
	headers map[string]bool // ignored, canonical
	fields  [][]string      // ignored JSON paths
	state   *mirrorState
}

// mirrorState is what the router saw of a setting: kept across snapshots
// while the setting stays the same, new when it changes.
type mirrorState struct {
	since    time.Time
	inFlight atomic.Int64
	mu       sync.Mutex
	pairs    map[int]*pairStats // by primary version number
}

type pairStats struct {
	compared, matched, dropped, tooLarge, errors int64
	mismatches                                   map[string]int64
	examples                                     []core.MirrorExample
	// Each side's latency of every compared pair: a histogram, so that
	// the leader can add up what every replica saw.
	primary, mirror latency.Histogram
}

func newPairStats() *pairStats { return &pairStats{mismatches: map[string]int64{}} }

// add adds o's numbers to p's; the examples are the first by time, up to
// the bound.
func (p *pairStats) add(o *pairStats) {
	p.compared += o.compared
	p.matched += o.matched
	p.dropped += o.dropped
	p.tooLarge += o.tooLarge
	p.errors += o.errors
	for k, n := range o.mismatches {
		p.mismatches[k] += n
	}
	p.examples = append(p.examples, o.examples...)
	sort.SliceStable(p.examples, func(i, j int) bool { return p.examples[i].At.Before(p.examples[j].At) })
	p.examples = p.examples[:min(len(p.examples), core.MaxMirrorExamples)]
	p.primary = p.primary.Add(o.primary)
	p.mirror = p.mirror.Add(o.mirror)
}

func summary(h *latency.Histogram) core.LatencySummary {
	ms := func(q float64) float64 { return float64(h.Quantile(q).Microseconds()) / 1000 }
	return core.LatencySummary{Count: int(h.Count()), P50: ms(0.50), P90: ms(0.90), P99: ms(0.99)}
}

// alwaysIgnored are response headers that differ between any two answers
// or that the proxy itself sets.
var alwaysIgnored = map[string]bool{
	"Date": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Trailer": true, "Upgrade": true, "Proxy-Connection": true, "Retry-After": true,
}

// compileMirror compiles t's mirror for route sr; nil when off or its
// version is unknown.
func compileMirror(m *core.Mirror, sr *serviceRoute) *mirrorRoute {
	if m == nil || sr.versions[m.Version] == nil {
		return nil
	}
	mr := &mirrorRoute{cfg: *m, target: sr.versions[m.Version], headers: map[string]bool{}, state: newMirrorState()}
	for _, h := range m.IgnoreHeaders {
		mr.headers[http.CanonicalHeaderKey(h)] = true
	}
	for _, f := range m.IgnoreFields {
		mr.fields = append(mr.fields, strings.Split(f, "."))
	}
	return mr
}

func newMirrorState() *mirrorState {
	return &mirrorState{since: time.Now().UTC(), pairs: map[int]*pairStats{}}
}

// keepMirror carries prev's report over to next while the setting (and
// the mirror version) stay the same: a report is reset when the setting
// changes.
func keepMirror(prev, next *serviceRoute) {
	if prev == nil || prev.mirror == nil || next.mirror == nil {
		return
	}
	p, n := prev.mirror, next.mirror
	if p.target.ID == n.target.ID && p.cfg.Equal(&n.cfg) {
		n.state = p.state
	}
}

// wants reports whether req's method may be copied.
func (m *mirrorRoute) wants(req *http.Request) bool {
	if m.cfg.AllMethods {
		return !isUpgrade(req.Header)
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return !isUpgrade(req.Header)
	}
	return false
}

func (s *mirrorState) pair(primary int) *pairStats {
	p := s.pairs[primary]
	if p == nil {
		p = newPairStats()
		s.pairs[primary] = p
	}
	return p
}

func (s *mirrorState) count(primary int, f func(p *pairStats)) {
	s.mu.Lock()
	f(s.pair(primary))
	s.mu.Unlock()
}

// capture hashes a body and keeps its first bytes, up to limit.
type capture struct {
	limit     int
	buf       []byte
	h         hash.Hash
	truncated bool
}

func newCapture(limit int) *capture { return &capture{limit: limit, h: sha256.New()} }

func (c *capture) Write(b []byte) (int, error) {
	c.h.Write(b)
	room := c.limit - len(c.buf)
	if len(b) > room {
		c.truncated = true
	}
	if room > 0 {
		c.buf = append(c.buf, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

// tap is what a mirrored request's statusWriter records of the primary's
// answer.
type tap struct {
	header http.Header
	body   *capture
}

func (t *tap) wroteHeader(h http.Header) {
	if t.header == nil {
		t.header = h.Clone()
	}
}

// teeBody copies what the primary reads of a request body, up to max; more
// marks the copy as too large (and stops copying).
type teeBody struct {
	io.ReadCloser
	buf  bytes.Buffer
	max  int
	over bool
	eof  bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if !t.over {
		if t.buf.Len()+n > t.max {
			t.over = true
			t.buf = bytes.Buffer{}
		} else {
			t.buf.Write(p[:n])
		}
	}
	if err == io.EOF {
		t.eof = true
	}
	return n, err
}

// mirrorCall is one copied request.
type mirrorCall struct {
	m       *mirrorRoute
	service string
	primary int
	method  string
	path    string // the path the primary was sent
	query   string
	host    string
	header  http.Header
	body    *teeBody // nil without a body
	ctx     context.Context
	tap     tap
	// Set by the primary before done is closed.
	done           chan struct{}
	primaryStatus  int
	primaryLatency time.Duration
	cookie         string
}

type mirrorMetrics struct {
	requests *prometheus.CounterVec
}

func newMirrorMetrics(reg prometheus.Registerer) (*mirrorMetrics, error) {
	m := &mirrorMetrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wisp_mirror_requests_total",
		Help: "Requests copied to a mirror version, by service and result: match, mismatch, dropped (too many in flight, or a request body over the bound) or error (the mirror failed).",
	}, []string{"service", "result"})}
	return m, reg.Register(m.requests)
}

func (m *mirrorMetrics) inc(service, result string) {
	m.requests.WithLabelValues(service, result).Inc()
}

// startMirror decides whether req (served by version v of sr) is copied,
// and if so prepares the copy; the caller calls finish once the primary
// has answered. nil: no copy.
func (r *Router) startMirror(sr *serviceRoute, v *core.Version, w *statusWriter, req *http.Request, path string) *mirrorCall {
	m := sr.mirror
	if m == nil || v == m.target || !m.wants(req) || r.cfg.IntN(100) >= m.cfg.Percent {
		return nil
	}
	withBody := req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
	if withBody && req.ContentLength > int64(r.cfg.MirrorMaxBody) {
		m.state.count(v.Number, func(p *pairStats) { p.tooLarge++ })
		r.mirrorMetrics.inc(sr.name, "dropped")
		return nil
	}
	if m.state.inFlight.Add(1) > int64(r.cfg.MirrorMaxInFlight) {
		m.state.inFlight.Add(-1)
		m.state.count(v.Number, func(p *pairStats) { p.dropped++ })
		r.mirrorMetrics.inc(sr.name, "dropped")
		return nil
	}
	if path == "" {
		path = req.URL.Path
	}
	mc := &mirrorCall{
		m: m, service: sr.name, primary: v.Number, method: req.Method, path: path, query: req.URL.RawQuery,
		host: req.Host, header: req.Header.Clone(), ctx: context.WithoutCancel(req.Context()),
		done: make(chan struct{}), cookie: sr.cookie + "=",
	}
	mc.tap.body = newCapture(r.cfg.MirrorCompareLimit)
	w.tap = &mc.tap
	if withBody {
		mc.body = &teeBody{ReadCloser: req.Body, max: r.cfg.MirrorMaxBody}
		req.Body = mc.body
	} else {
		r.mirrorWG.Go(func() { r.runMirror(mc) })
	}
	return mc
}

// finish records the primary's answer; it never waits for the mirror.
func (r *Router) finishMirror(mc *mirrorCall, status int, latency time.Duration) {
	mc.primaryStatus, mc.primaryLatency = status, latency
	close(mc.done)
	if mc.body == nil {
		return
	}
	if mc.body.over || !mc.body.eof {
		// Over the bound, or the primary did not read it all: there is
		// no whole body to send.
		mc.m.state.inFlight.Add(-1)
		mc.m.state.count(mc.primary, func(p *pairStats) { p.tooLarge++ })
		r.mirrorMetrics.inc(mc.service, "dropped")
		return
	}
	r.mirrorWG.Go(func() { r.runMirror(mc) })
}

// runMirror sends the copy, waits for the primary's answer and compares.
func (r *Router) runMirror(mc *mirrorCall) {
	m := mc.m
	defer m.state.inFlight.Add(-1)
	status, hdr, body, took, err := r.sendMirror(mc)
	<-mc.done
	if err != nil || mc.primaryStatus == 0 {
		// The mirror failed, or the client left before the primary
		// answered: nothing to compare.
		m.state.count(mc.primary, func(p *pairStats) { p.errors++ })
		r.mirrorMetrics.inc(mc.service, "error")
		if err != nil {
			r.log.Debug("mirror request failed", "service", mc.service, "version", m.target.Number, "err", err)
		}
		return
	}
	var kinds, headers []string
	if status != mc.primaryStatus {
		kinds = append(kinds, core.MismatchStatus)
	}
	if headers = m.diffHeaders(mc.tap.header, hdr, mc.cookie); len(headers) > 0 {
		kinds = append(kinds, core.MismatchHeader)
	}
	if !bytes.Equal(m.bodyHash(mc.tap.header, mc.tap.body), m.bodyHash(hdr, body)) {
		kinds = append(kinds, core.MismatchBody)
	}
	m.state.count(mc.primary, func(p *pairStats) {
		p.compared++
		p.primary.Observe(mc.primaryLatency)
		p.mirror.Observe(took)
		if len(kinds) == 0 {
			p.matched++
			return
		}
		for _, k := range kinds {
			p.mismatches[k]++
		}
		if len(p.examples) < core.MaxMirrorExamples {
			p.examples = append(p.examples, core.MirrorExample{
				At: time.Now().UTC(), Method: mc.method, Path: cut(mc.path, core.MaxMirrorPath), Kinds: kinds,
				Headers:       headers[:min(len(headers), core.MaxMirrorHeaders)],
				PrimaryStatus: mc.primaryStatus, MirrorStatus: status,
				PrimaryBody: excerpt(mc.tap.body.buf), MirrorBody: excerpt(body.buf),
			})
		}
	})
	result := "match"
	if len(kinds) > 0 {
		result = "mismatch"
	}
	r.mirrorMetrics.inc(mc.service, result)
}

// sendMirror sends the copy to an instance of the mirror version and reads
// its whole answer.
func (r *Router) sendMirror(mc *mirrorCall) (int, http.Header, *capture, time.Duration, error) {
	start := time.Now()
	v := mc.m.target
	ctx, cancel := context.WithTimeout(mc.ctx, r.cfg.MirrorAcquireTimeout+v.Timeout.Std())
	defer cancel()
	actx, acancel := context.WithTimeout(ctx, r.cfg.MirrorAcquireTimeout)
	lease, err := r.cfg.Acquire(actx, v)
	acancel()
	if err != nil {
		return 0, nil, nil, 0, err
	}
	defer lease.Handle.Release()
	var body io.Reader = http.NoBody
	if mc.body != nil {
		body = bytes.NewReader(mc.body.buf.Bytes())
	}
	url := "http://" + lease.Addr + mc.path
	if mc.query != "" {
		url += "?" + mc.query
	}
	out, err := http.NewRequestWithContext(ctx, mc.method, url, body) //nolint:gosec // G704: the address is an instance the activator handed out, not the client's
	if err != nil {
		return 0, nil, nil, 0, err
	}
	out.Header = mc.header
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Set(HeaderMirror, "1")
	out.Host = mc.host
	res, err := r.cfg.Transport.RoundTrip(out)
	if err != nil {
		return 0, nil, nil, 0, err
	}
	defer res.Body.Close()
	c := newCapture(r.cfg.MirrorCompareLimit)
	buf := buffers.Get().(*[]byte) // io.Copy would allocate 32 KiB per copy
	defer buffers.Put(buf)
	if _, err := io.CopyBuffer(c, res.Body, *buf); err != nil {
		return 0, nil, nil, 0, err
	}
	return res.StatusCode, res.Header, c, time.Since(start), nil
}

// HeaderMirror marks the copies a mirror version gets.
const HeaderMirror = "Wisp-Mirror"

var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// diffHeaders names the headers whose values differ, ignoring the always
// ignored ones, Wisp-*, the configured ones and the sticky cookie.
func (m *mirrorRoute) diffHeaders(a, b http.Header, cookie string) []string {
	var out []string
	seen := map[string]bool{}
	for _, h := range []http.Header{a, b} {
		for k := range h {
			if seen[k] || alwaysIgnored[k] || m.headers[k] || strings.HasPrefix(k, "Wisp-") {
				continue
			}
			seen[k] = true
			av, bv := a[k], b[k]
			if k == "Set-Cookie" {
				av, bv = dropCookie(av, cookie), dropCookie(bv, cookie)
			}
			if !slices.Equal(av, bv) {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func dropCookie(vals []string, prefix string) []string {
	return slices.DeleteFunc(slices.Clone(vals), func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// bodyHash hashes a body: a whole JSON body without the ignored fields,
// re-encoded (so the order of keys does not matter), else the bytes.
func (m *mirrorRoute) bodyHash(h http.Header, c *capture) []byte {
	if !c.truncated && strings.Contains(h.Get("Content-Type"), "json") {
		dec := json.NewDecoder(bytes.NewReader(c.buf))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err == nil {
			for _, f := range m.fields {
				dropField(doc, f)
			}
			if b, err := json.Marshal(doc); err == nil {
				sum := sha256.Sum256(b)
				return sum[:]
			}
		}
	}
	return c.h.Sum(nil)
}

// dropField deletes path from doc; through an array it applies to each
// element.
func dropField(doc any, path []string) {
	switch d := doc.(type) {
	case map[string]any:
		if len(path) == 1 {
			delete(d, path[0])
			return
		}
		if next, ok := d[path[0]]; ok {
			dropField(next, path[1:])
		}
	case []any:
		for _, e := range d {
			dropField(e, path)
		}
	}
}

// cut is at most the first n bytes of s, without a rune cut in two.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// excerpt is the start of a body, cut at a rune boundary.
func excerpt(b []byte) string {
	if len(b) > core.MaxMirrorExcerpt {
		b = b[:core.MaxMirrorExcerpt]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// MirrorReport returns the report of service's mirror (core.ErrNotFound
// for an unknown service): this router's numbers, plus the latest state
// of every other replica received in the last MirrorStateTTL
// (ReceiveMirrors) for the same setting. Replicas counts them all.
func (r *Router) MirrorReport(service string) (core.MirrorReport, error) {
	sr := r.snap.Load().lookup(service)
	if sr == nil {
		return core.MirrorReport{}, core.NotFoundf("no service named %q", service)
	}
	rep := core.MirrorReport{Service: service, Pairs: []core.MirrorPair{}}
	m := sr.mirror
	if m == nil {
		return rep, nil
	}
	cfg := m.cfg
	rep.Mirror, rep.Since, rep.Replicas = &cfg, m.state.since, 1
	sum := map[int]*pairStats{}
	addTo := func(pairs map[int]*pairStats) {
		for primary, p := range pairs {
			if sum[primary] == nil {
				sum[primary] = newPairStats()
			}
			sum[primary].add(p)
		}
	}
	m.state.mu.Lock()
	addTo(m.state.pairs)
	m.state.mu.Unlock()
	rep.Replicas += r.remoteMirrors.each(service, m, r.cfg.Now().Add(-r.cfg.MirrorStateTTL), addTo)
	for primary, p := range sum {
		pair := core.MirrorPair{
			Primary: primary, Mirror: m.target.Number, Compared: p.compared, Matched: p.matched,
			Mismatches: maps(p.mismatches), Dropped: p.dropped, TooLarge: p.tooLarge, Errors: p.errors,
			Examples: slices.Clone(p.examples), PrimaryLatency: summary(&p.primary), MirrorLatency: summary(&p.mirror),
		}
		if pair.Examples == nil {
			pair.Examples = []core.MirrorExample{}
		}
		if p.compared > 0 {
			pair.MatchRate = float64(p.matched) / float64(p.compared)
		}
		rep.Pairs = append(rep.Pairs, pair)
	}
	sort.Slice(rep.Pairs, func(i, j int) bool { return rep.Pairs[i].Primary < rep.Pairs[j].Primary })
	return rep, nil
}

func maps(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// MirrorStates returns this router's cumulative numbers of every service
// whose route has a mirror setting, for a load report to the leader.
func (r *Router) MirrorStates() []core.MirrorState {
	var out []core.MirrorState
	r.snap.Load().each(func(sr *serviceRoute) {
		m := sr.mirror
		if m == nil {
			return
		}
		st := core.MirrorState{Service: sr.name, Mirror: m.cfg, VersionID: m.target.ID, Pairs: []core.MirrorPairState{}}
		m.state.mu.Lock()
		for primary, p := range m.state.pairs {
			ps := core.MirrorPairState{Primary: primary, Compared: p.compared, Matched: p.matched,
				Dropped: p.dropped, TooLarge: p.tooLarge, Errors: p.errors, Examples: slices.Clone(p.examples),
				PrimaryLatency: p.primary.Sparse(), MirrorLatency: p.mirror.Sparse()}
			for k, n := range p.mismatches {
				if n != 0 {
					if ps.Mismatches == nil {
						ps.Mismatches = map[string]int64{}
					}
					ps.Mismatches[k] = n
				}
			}
			st.Pairs = append(st.Pairs, ps)
		}
		m.state.mu.Unlock()
		sort.Slice(st.Pairs, func(i, j int) bool { return st.Pairs[i].Primary < st.Pairs[j].Primary })
		out = append(out, st)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// ReceiveMirrors takes another replica's mirror states (its MirrorStates),
// in place of the ones it sent before: a service it no longer names has
// no mirror there any more. A state counts in the reports for
// MirrorStateTTL, and only while it is of the setting this router has (the
// same setting and mirror version). A state that breaks the rules (a
// negative count, more matched than compared, an unknown kind, too many
// examples, a latency bucket out of range) is refused with an error naming
// it, and nothing of the report is taken.
func (r *Router) ReceiveMirrors(replica string, states []core.MirrorState) error {
	parsed := make(map[string]*remoteMirror, len(states))
	for i, st := range states {
		rm, err := parseMirrorState(st)
		if err != nil {
			return fmt.Errorf("mirrors[%d]: %w", i, err)
		}
		if parsed[st.Service] != nil {
			return fmt.Errorf("mirrors[%d]: service %q is sent twice", i, st.Service)
		}
		parsed[st.Service] = rm
	}
	r.remoteMirrors.put(replica, parsed, r.cfg.Now(), 10*r.cfg.MirrorStateTTL)
	return nil
}

// The bounds of a received example's bodies: an excerpt is at most
// MaxMirrorExcerpt bytes, but invalid UTF-8 in it becomes U+FFFD (three
// bytes per byte).
const maxReceivedExcerpt = 3 * core.MaxMirrorExcerpt

func parseMirrorState(st core.MirrorState) (*remoteMirror, error) {
	switch {
	case st.Service == "":
		return nil, errors.New("service is empty")
	case st.Mirror.Version < 1 || st.VersionID < 1:
		return nil, fmt.Errorf("mirror.version %d and version_id %d: want a version number and ID of 1 or more", st.Mirror.Version, st.VersionID)
	}
	rm := &remoteMirror{cfg: st.Mirror, versionID: st.VersionID, pairs: make(map[int]*pairStats, len(st.Pairs))}
	for j, ps := range st.Pairs {
		p, err := parsePairState(ps)
		if err == nil && rm.pairs[ps.Primary] != nil {
			err = fmt.Errorf("primary version %d is sent twice", ps.Primary)
		}
		if err != nil {
			return nil, fmt.Errorf("pairs[%d]: %w", j, err)
		}
		rm.pairs[ps.Primary] = p
	}
	return rm, nil
}

func parsePairState(ps core.MirrorPairState) (*pairStats, error) {
	switch {
	case ps.Primary < 1:
		return nil, fmt.Errorf("primary %d: want a version number of 1 or more", ps.Primary)
	case ps.Compared < 0 || ps.Matched < 0 || ps.Dropped < 0 || ps.TooLarge < 0 || ps.Errors < 0:
		return nil, fmt.Errorf("counts compared %d, matched %d, dropped %d, too_large %d, errors %d: none may be negative",
			ps.Compared, ps.Matched, ps.Dropped, ps.TooLarge, ps.Errors)
	case ps.Matched > ps.Compared:
		return nil, fmt.Errorf("matched %d > compared %d", ps.Matched, ps.Compared)
	case len(ps.Examples) > core.MaxMirrorExamples:
		return nil, fmt.Errorf("%d examples; the limit is %d", len(ps.Examples), core.MaxMirrorExamples)
	}
	p := newPairStats()
	p.compared, p.matched, p.dropped, p.tooLarge, p.errors = ps.Compared, ps.Matched, ps.Dropped, ps.TooLarge, ps.Errors
	for k, n := range ps.Mismatches {
		if !knownKind(k) || n < 0 || n > ps.Compared {
			return nil, fmt.Errorf("mismatches[%q] = %d: want a kind of status, header or body and 0 to compared (%d)", k, n, ps.Compared)
		}
		p.mismatches[k] = n
	}
	for i, ex := range ps.Examples {
		if len(ex.PrimaryBody) > maxReceivedExcerpt || len(ex.MirrorBody) > maxReceivedExcerpt {
			return nil, fmt.Errorf("examples[%d]: a body excerpt over %d bytes", i, maxReceivedExcerpt)
		}
		if len(ex.Path) > core.MaxMirrorPath || len(ex.Headers) > core.MaxMirrorHeaders {
			return nil, fmt.Errorf("examples[%d]: a path over %d bytes or over %d headers", i, core.MaxMirrorPath, core.MaxMirrorHeaders)
		}
		if len(ex.Kinds) == 0 || slices.ContainsFunc(ex.Kinds, func(k string) bool { return !knownKind(k) }) {
			return nil, fmt.Errorf("examples[%d]: kinds %q: want one or more of status, header and body", i, ex.Kinds)
		}
	}
	p.examples = slices.Clone(ps.Examples)
	var err error
	for _, side := range []struct {
		name string
		in   map[int]int64
		out  *latency.Histogram
	}{{"primary_latency_buckets", ps.PrimaryLatency, &p.primary}, {"mirror_latency_buckets", ps.MirrorLatency, &p.mirror}} {
		if *side.out, err = latency.FromSparse(side.in); err != nil {
			return nil, fmt.Errorf("%s: %w", side.name, err)
		}
		if n := side.out.Count(); n != ps.Compared {
			return nil, fmt.Errorf("%s count %d latencies; want one per compared pair (%d)", side.name, n, ps.Compared)
		}
	}
	return p, nil
}

func knownKind(k string) bool {
	return k == core.MismatchStatus || k == core.MismatchHeader || k == core.MismatchBody
}

// remoteMirrors are, on the leader, the latest mirror states of every
// other replica.
type remoteMirrors struct {
	mu sync.Mutex
	by map[string]*replicaMirrors
}

type replicaMirrors struct {
	received time.Time
	services map[string]*remoteMirror
}

// remoteMirror is one service's state on another replica, with its
// identity: the setting and the mirror version's ID.
type remoteMirror struct {
	cfg       core.Mirror
	versionID int64
	pairs     map[int]*pairStats
}

// put keeps services as replica's latest states, received at now, and
// forgets replicas silent for longer than forget.
func (rm *remoteMirrors) put(replica string, services map[string]*remoteMirror, now time.Time, forget time.Duration) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rm.by == nil {
		rm.by = map[string]*replicaMirrors{}
	}
	for id, l := range rm.by {
		if now.Sub(l.received) > forget {
			delete(rm.by, id)
		}
	}
	rm.by[replica] = &replicaMirrors{received: now, services: services}
}

// each calls f with the pairs of every replica's state of service
// received after since and of m's setting, and returns how many it
// called it for.
func (rm *remoteMirrors) each(service string, m *mirrorRoute, since time.Time, f func(map[int]*pairStats)) int {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	n := 0
	for _, l := range rm.by {
		st := l.services[service]
		if st == nil || !l.received.After(since) || st.versionID != m.target.ID || !st.cfg.Equal(&m.cfg) {
			continue
		}
		f(st.pairs)
		n++
	}
	return n
}

// WaitMirrors waits until no mirrored request is in flight (tests and
// shutdown).
func (r *Router) WaitMirrors() { r.mirrorWG.Wait() }
