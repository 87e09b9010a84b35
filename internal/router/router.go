// Package router is Wisp's data plane: for every request it picks a service
// from the Host header (or the /s/<service>/ path), a version (tag or version
// host, Wisp-Version header, request rules, sticky cookie, or a weighted
// random pick), asks
// for an instance, and proxies to it with the standard library's
// ReverseProxy. It reads an immutable snapshot swapped atomically on every
// admin change, so no request touches the database.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
)

// Lease is a request's hold on an instance.
type Lease struct {
	Addr string
	// Instance is the ID of the instance, for request logs.
	Instance string
	// ColdStart is how long the request waited for an instance to start;
	// 0 if none.
	ColdStart time.Duration
	// QueueWait is how long the request waited for capacity of instances
	// that were already running (it queued, no start); 0 if none.
	QueueWait time.Duration
	// Handle is told how the request ended. An interface rather than three
	// funcs: the activator's lease satisfies it as is, with no allocation.
	Handle LeaseHandle
}

// LeaseHandle is told how a request ended.
type LeaseHandle interface {
	// Release returns the instance's capacity; called once per lease.
	Release()
	// Fail reports that the instance refused the connection.
	Fail()
	// Suspect reports that the instance failed a request after connecting
	// (it timed out, broke the connection or answered garbage), and why.
	Suspect(reason string)
}

type noHandle struct{}

func (noHandle) Release()       {}
func (noHandle) Fail()          {}
func (noHandle) Suspect(string) {}

// AcquireFunc returns an instance of v that can take one more request.
// Errors wrapping core.ErrUnavailable become 503 with Retry-After.
type AcquireFunc func(ctx context.Context, v *core.Version) (Lease, error)

// Config configures the router.
type Config struct {
	// Domain: service hello is served at hello.<Domain>.
	Domain string
	// Acquire hands out instances (the activator, wired by the daemon).
	Acquire AcquireFunc
	// IntN returns a uniform random int in [0, n); nil means math/rand/v2.
	IntN func(n int) int
	// Transport reaches instances; nil means a tuned default.
	Transport http.RoundTripper
	// Registerer receives the router's metrics; nil means none are exported.
	Registerer prometheus.Registerer
	// Limits bound what slow clients and upgraded connections may hold.
	Limits Limits
	// RequestLogs receives the request lines of services whose policy
	// has request_logs on (requestlog.go); nil writes none.
	RequestLogs RequestLogSink
	// RequestLogRate is the lines per second per service written before
	// they are sampled; 0 means DefaultRequestLogRate.
	RequestLogRate float64
	// Async stores async calls (async.go); nil turns them off.
	Async AsyncSubmitter
	// Events takes CloudEvents posted to /events/<subject> (async.go);
	// nil turns that off.
	Events EventIngester
	// TrustedProxies are the address ranges of the proxies in front of the
	// router: when a connection comes from one, source rules take the
	// client's address from X-Forwarded-For (clientAddr). Empty: the
	// connection's address, always.
	TrustedProxies []netip.Prefix
	// Observer sees every request a version answered (rollouts judge
	// versions by them); nil: none.
	Observer RequestObserver
	// Mirroring (mirror.go): at most MirrorMaxInFlight copies per service
	// in flight (more are dropped), request bodies up to MirrorMaxBody
	// copied, the first MirrorCompareLimit bytes of each answer kept for
	// the JSON comparison and the excerpts, and at most
	// MirrorAcquireTimeout waited for an instance of the mirror version.
	// Zero means the defaults: 16, 64 KiB, 1 MiB, 5 s.
	MirrorMaxInFlight    int
	MirrorMaxBody        int
	MirrorCompareLimit   int
	MirrorAcquireTimeout time.Duration
	// CatchUp, when set, waits until every change committed to the store
	// is in the routes (the change feed's Sync). A request for a service
	// the routes do not have, or one with no traffic, waits for it (at most
	// 2 s, shared by concurrent requests) before it is refused
	// (catchup.go).
	CatchUp func(context.Context) error
	// MirrorStateTTL is how long, on the leader, another replica's mirror
	// state counts in the reports after it was received (ReceiveMirrors);
	// zero means 3 s, as load reports.
	MirrorStateTTL time.Duration
	// Now is the clock of the received states' expiry; nil means
	// time.Now.
	Now func() time.Time
}

// RequestObserver is told of every request a version answered: its
// status (499 when the client left first) and how long it took, less the
// time it waited for an instance to start. It must
// be cheap and never block.
type RequestObserver interface {
	ObserveRequest(service string, version, status int, d time.Duration)
}

// Header names.
const (
	HeaderVersion   = "Wisp-Version"    // request: pin a version; response: who served it
	HeaderColdStart = "Wisp-Cold-Start" // response: milliseconds waited for an instance to start
	HeaderQueueWait = "Wisp-Queue-Wait" // response: milliseconds queued for a running instance's capacity
)

// Router is an http.Handler.
type Router struct {
	cfg     Config
	log     *slog.Logger
	snap    atomic.Pointer[Snapshot]
	writeMu sync.Mutex // serialises Swap, Apply and Remove
	proxy   *httputil.ReverseProxy
	metrics *metrics
	// mirrorMetrics counts mirrored requests; mirrorWG owns their
	// goroutines.
	mirrorMetrics *mirrorMetrics
	mirrorWG      sync.WaitGroup
	// remoteMirrors are the other replicas' latest mirror states, on the
	// leader.
	remoteMirrors remoteMirrors
	// unrouted counts requests that matched no version.
	unrouted *versionMetrics
	// suffix is "." + Domain, precomputed for host matching.
	suffix string
	// caught brings the routes up to the store on a miss.
	caught *catchUp
}

// New returns a router serving an empty snapshot until Swap.
func New(cfg Config, logger *slog.Logger) (*Router, error) {
	if cfg.Domain == "" {
		return nil, errors.New("router: a domain is required")
	}
	if cfg.Acquire == nil {
		return nil, errors.New("router: an instance source (Acquire) is required")
	}
	if cfg.IntN == nil {
		cfg.IntN = rand.IntN
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport()
	}
	if cfg.MirrorMaxInFlight <= 0 {
		cfg.MirrorMaxInFlight = 16
	}
	if cfg.MirrorMaxBody <= 0 {
		cfg.MirrorMaxBody = 64 << 10
	}
	if cfg.MirrorCompareLimit <= 0 {
		cfg.MirrorCompareLimit = 1 << 20
	}
	if cfg.MirrorAcquireTimeout <= 0 {
		cfg.MirrorAcquireTimeout = 5 * time.Second
	}
	if cfg.MirrorStateTTL <= 0 {
		cfg.MirrorStateTTL = 3 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Router{cfg: cfg, log: logger.With("component", "router"), suffix: "." + strings.ToLower(cfg.Domain), caught: &catchUp{wait: cfg.CatchUp}}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var err error
	if r.metrics, err = newMetrics(reg); err != nil {
		return nil, err
	}
	if r.mirrorMetrics, err = newMirrorMetrics(reg); err != nil {
		return nil, err
	}
	r.unrouted = r.metrics.forVersion(0, "", 0, 0)
	r.snap.Store(NewSnapshot(nil))
	r.proxy = &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: cfg.Transport,
		// 0, not -1: the proxy already flushes every write of a stream
		// (no Content-Length, or text/event-stream). -1 would also start
		// a timer goroutine per fixed-length response that flushes its
		// headers on their own, costing a write and a wake-up.
		FlushInterval:  0,
		BufferPool:     bufferPool{},
		ErrorHandler:   r.proxyError,
		ModifyResponse: r.modifyResponse,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	return r, nil
}

// CloseIdleConnections closes the idle connections to instances; call it
// once the router serves no more requests.
func (r *Router) CloseIdleConnections() {
	if c, ok := r.cfg.Transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// bufferPool recycles the proxy's 32 KiB copy buffers, which it would
// otherwise allocate for every request.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte { return *buffers.Get().(*[]byte) }

func (bufferPool) Put(b []byte) {
	if cap(b) >= 32<<10 {
		b = b[:32<<10]
		buffers.Put(&b)
	}
}

// Swap installs a whole new snapshot (at start-up, and for a full
// resync); requests in flight keep the one they read. The series of
// versions it no longer has are deleted.
func (r *Router) Swap(s *Snapshot) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old := r.snap.Load()
	s.each(r.withRequestLog)
	old.each(func(sr *serviceRoute) {
		next := s.lookup(sr.name)
		r.forgetMetrics(sr, next)
		if next != nil {
			keepRequestLogs(sr, next)
			keepMirror(sr, next)
		}
	})
	r.snap.Store(s)
}

// Apply installs the new state of some services, leaving every other
// service's route as it is: it costs time in proportion to the services
// given, not to all there are.
func (r *Router) Apply(states ...core.ServiceState) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old := r.snap.Load()
	routes := make([]*serviceRoute, len(states))
	for i, st := range states {
		routes[i] = newRoute(st)
		r.withRequestLog(routes[i])
		if prev := old.lookup(routes[i].name); prev != nil {
			r.forgetMetrics(prev, routes[i])
			keepRequestLogs(prev, routes[i])
			keepMirror(prev, routes[i])
		}
	}
	r.snap.Store(old.with(routes, nil))
}

// Remove drops deleted services from the routing table.
func (r *Router) Remove(names ...string) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old := r.snap.Load()
	for _, name := range names {
		if prev := old.lookup(name); prev != nil {
			r.forgetMetrics(prev, nil)
		}
	}
	r.snap.Store(old.with(nil, names))
}

// withRequestLog gives a route whose service logs requests its request
// log state, when the router has somewhere to write them.
func (r *Router) withRequestLog(sr *serviceRoute) {
	if !sr.logRequests || r.cfg.RequestLogs == nil {
		sr.reqLog = nil
		return
	}
	if sr.reqLog == nil {
		sr.reqLog = newRequestLog(r.cfg.RequestLogRate)
	}
}

// forgetMetrics deletes the series of the versions of prev that next (nil:
// none) no longer has.
func (r *Router) forgetMetrics(prev, next *serviceRoute) {
	for n, v := range prev.versions {
		if next == nil || next.versions[n] == nil || next.versions[n].ID != v.ID {
			r.metrics.forget(v.ID, prev.name, v.Number)
		}
	}
}

type targetKey struct{}

type target struct {
	addr    string
	path    string // the path to send, when the /s/<service> prefix was stripped
	timeout time.Duration
	// For one retry on a new instance when the connection is refused.
	lease   Lease
	version *core.Version
	retried bool
	// handshake, for an upgrade, ends the wait for the instance's 101 at
	// the version's timeout; the upgraded connection is not bound by it.
	handshake *time.Timer
}

func rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(*target)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = t.addr
	if t.path != "" {
		pr.Out.URL.Path = t.path
		pr.Out.URL.RawPath = ""
	}
	pr.SetXForwarded()
}

// reqState is the per-request state, pooled: the status recorder and the
// proxy target.
type reqState struct {
	w statusWriter
	t target
}

var statePool = sync.Pool{New: func() any { return new(reqState) }}

// ServeHTTP routes one request.
func (r *Router) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	start := time.Now()
	st := statePool.Get().(*reqState)
	st.w = statusWriter{ResponseWriter: rw}
	w := &st.w
	if hasBody(req) {
		w.body = newLimitedBody(req.Body, http.NewResponseController(rw), r.cfg.Limits)
		req.Body = w.body
		// Whatever answered, an unfinished body is not read any more:
		// the server would otherwise drain it after the handler.
		defer w.body.stopReading()
	}
	vm := r.unrouted
	var (
		sr *serviceRoute
		v  *core.Version
	)
	defer func() {
		status := w.status
		if status == 0 {
			status = 499 // the client went away before an answer
		}
		vm.observe(status, start)
		if v != nil && r.cfg.Observer != nil {
			// The version's own latency: without the wait for an
			// instance to start, which a new version's first requests
			// always pay.
			r.cfg.Observer.ObserveRequest(v.Service, v.Number, status, time.Since(start)-st.t.lease.ColdStart)
		}
		if sr != nil && sr.reqLog != nil {
			r.logRequest(sr, v, req.Method, req.URL.Path, status, start, &st.t.lease)
		}
		*st = reqState{}
		statePool.Put(st)
	}()
	snap := r.snap.Load()
	if subject, ok := strings.CutPrefix(req.URL.Path, eventsPrefix); ok && r.cfg.Events != nil && r.serviceLabel(req.Host) == "" {
		r.ingestEvent(w, req, subject)
		return
	}
	sr, pin, path, viaAsync, err := r.resolve(snap, req)
	if isMiss(err) && r.caught.run(req) {
		snap = r.snap.Load()
		sr, pin, path, viaAsync, err = r.resolve(snap, req)
	}
	if err != nil {
		r.fail(w, req, err)
		return
	}
	if viaAsync || preferAsync(req) {
		r.submitAsync(w, req, sr.name, pin, path)
		return
	}
	v, err = r.chooseVersion(sr, pin, w, req)
	if isMiss(err) && r.caught.run(req) {
		if fresh := r.snap.Load().lookup(sr.name); fresh != nil {
			sr = fresh
			v, err = r.chooseVersion(sr, pin, w, req)
		}
	}
	if err != nil {
		r.fail(w, req, err)
		return
	}
	if m := sr.metrics[v].get(r.metrics, v, sr.name); m != nil {
		vm = m
	}
	// Before Acquire: a 503 from the activator names the version too.
	w.Header().Set(HeaderVersion, strconv.Itoa(v.Number))
	lease, err := r.cfg.Acquire(req.Context(), v)
	if err != nil {
		r.fail(w, req, err)
		return
	}
	setWaitHeaders(w.Header(), lease)
	if sr.mirror != nil {
		if mc := r.startMirror(sr, v, w, req, path); mc != nil {
			defer func() { r.finishMirror(mc, w.status, time.Since(start)) }()
		}
	}
	t := &st.t
	*t = target{addr: lease.Addr, path: path, timeout: v.Timeout.Std(), lease: lease, version: v}
	defer func() { t.lease.Handle.Release() }()
	var ctx context.Context
	if isUpgrade(req.Header) {
		// The timeout bounds the handshake only (modifyResponse stops
		// it at the 101); the upgraded connection has its own idle
		// timeout.
		c, cancel := context.WithCancelCause(req.Context())
		defer cancel(nil)
		t.handshake = time.AfterFunc(v.Timeout.Std(), func() { cancel(context.DeadlineExceeded) })
		defer t.handshake.Stop()
		ctx = c
	} else {
		c, cancel := context.WithTimeout(req.Context(), v.Timeout.Std())
		defer cancel()
		ctx = c
	}
	r.proxy.ServeHTTP(w, req.WithContext(context.WithValue(ctx, targetKey{}, t)))
}

// retry proxies req once more on a new instance after the first refused the
// connection. Nothing was sent then, so any request can be retried as long as
// its body was not read.
func (r *Router) retry(w http.ResponseWriter, req *http.Request, t *target) bool {
	if t.retried || (req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0) {
		return false
	}
	t.retried = true
	t.lease.Handle.Fail()
	t.lease.Handle.Release()
	lease, err := r.cfg.Acquire(req.Context(), t.version)
	if err != nil {
		t.lease = Lease{Handle: noHandle{}}
		r.fail(w, req, err)
		return true
	}
	t.lease, t.addr = lease, lease.Addr
	setWaitHeaders(w.Header(), lease)
	r.proxy.ServeHTTP(w, req)
	return true
}

// setWaitHeaders reports what the request waited for: a start, or room at
// running instances.
func setWaitHeaders(h http.Header, lease Lease) {
	if lease.ColdStart > 0 {
		h.Set(HeaderColdStart, strconv.FormatInt(lease.ColdStart.Milliseconds(), 10))
	}
	if lease.QueueWait > 0 {
		h.Set(HeaderQueueWait, strconv.FormatInt(lease.QueueWait.Milliseconds(), 10))
	}
}

// resolve finds the service of a request, the version pinned by its host
// (tag or v<N>) if any, and the path to forward when the /s/ prefix is used.
func (r *Router) resolve(snap *Snapshot, req *http.Request) (sr *serviceRoute, pin, path string, viaAsync bool, err error) {
	label := r.serviceLabel(req.Host)
	if label == "" {
		// Clients that cannot set Host use /s/<service>/…, and
		// /async/<service>/… for an async call.
		rest, ok := strings.CutPrefix(req.URL.Path, "/s/")
		if !ok {
			rest, ok = strings.CutPrefix(req.URL.Path, asyncPrefix)
			viaAsync = ok
		}
		if !ok {
			return nil, "", "", false, &routeError{status: http.StatusNotFound, msg: fmt.Sprintf(
				"no service is served at host %q; services are reached at <service>%s or under /s/<service>/ (/async/<service>/ for async calls)", req.Host, r.suffix)}
		}
		label, path, _ = strings.Cut(rest, "/")
		path = "/" + path
	}
	name := label
	if before, after, ok := strings.Cut(label, core.TagSeparator); ok {
		pin, name = before, after
	}
	sr = snap.lookup(name)
	if sr == nil {
		return nil, "", "", false, &routeError{status: http.StatusNotFound, msg: fmt.Sprintf("no service named %q", name), miss: true}
	}
	return sr, pin, path, viaAsync, nil
}

// serviceLabel returns the label before the domain when host is a
// service's (<[tag--]service>.<domain>), else "".
func (r *Router) serviceLabel(host string) string {
	host = strings.ToLower(host)
	if h, _, splitErr := net.SplitHostPort(host); splitErr == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	label, ok := strings.CutSuffix(host, r.suffix)
	if !ok || strings.Contains(label, ".") {
		return ""
	}
	return label
}

// chooseVersion picks the version that serves a request.
func (r *Router) chooseVersion(sr *serviceRoute, pin string, w http.ResponseWriter, req *http.Request) (*core.Version, error) {
	if pin == "" {
		pin = req.Header.Get(HeaderVersion)
	}
	if pin != "" {
		return sr.lookup(pin)
	}
	// Rules come before stickiness: a rule is a person's explicit choice,
	// and its requests set no sticky cookie.
	if len(sr.rules) > 0 {
		if v := matchRules(sr.rules, req, r.cfg.TrustedProxies); v != nil {
			return v, nil
		}
	}
	if len(sr.split) == 0 {
		return nil, &routeError{status: http.StatusServiceUnavailable, miss: true, msg: fmt.Sprintf(
			"service %q has no traffic yet; create a version (wisp version create %s --image IMAGE)", sr.name, sr.name)}
	}
	if sr.sticky {
		if c, err := req.Cookie(sr.cookie); err == nil {
			if n, err := strconv.Atoi(c.Value); err == nil {
				if v := sr.versions[n]; v != nil && sr.inSplit(v) {
					return v, nil
				}
			}
		}
	}
	v := sr.pick(r.cfg.IntN(sr.total()))
	if sr.sticky {
		// Secure only over TLS: the router usually serves plain HTTP.
		http.SetCookie(w, &http.Cookie{Name: sr.cookie, Value: strconv.Itoa(v.Number), Path: "/", //nolint:gosec // G124: see above
			HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: 86400, Secure: req.TLS != nil})
	}
	return v, nil
}

// lookup finds a version by "3", "v3" or a tag.
func (sr *serviceRoute) lookup(pin string) (*core.Version, error) {
	if v := sr.tags[pin]; v != nil {
		return v, nil
	}
	if n, ok := core.ParseVersionNumber(pin); ok {
		if v := sr.versions[n]; v != nil {
			return v, nil
		}
	}
	return nil, &routeError{status: http.StatusNotFound, msg: fmt.Sprintf("service %q has no version or tag %q", sr.name, pin), miss: true}
}

type routeError struct {
	status int
	msg    string
	// miss: the routes do not have the service, or it has no traffic; a
	// replica whose feed lags the store may not know it yet.
	miss bool
}

func isMiss(err error) bool {
	var re *routeError
	return errors.As(err, &re) && re.miss
}

func (e *routeError) Error() string { return e.msg }

// fail answers a request that could not be routed or served.
func (r *Router) fail(w http.ResponseWriter, req *http.Request, err error) {
	var re *routeError
	status := http.StatusBadGateway
	msg := err.Error()
	switch {
	case errors.As(err, &re):
		status = re.status
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
	case errors.Is(err, core.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, core.ErrUnavailable):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, core.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, core.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, context.Canceled) && req.Context().Err() != nil:
		return // the client is gone; nobody reads an answer
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
		msg = "the request timed out"
	}
	writeError(w, req, status, msg)
}

// modifyResponse hands an upgraded connection its idle timeout in place of
// the version's request timeout.
func (r *Router) modifyResponse(res *http.Response) error {
	if res.StatusCode != http.StatusSwitchingProtocols {
		return nil
	}
	t, _ := res.Request.Context().Value(targetKey{}).(*target)
	if t == nil || t.handshake == nil {
		return nil
	}
	if !t.handshake.Stop() {
		return context.DeadlineExceeded // the 101 came after the timeout
	}
	if idle := r.cfg.Limits.UpgradeIdleTimeout; idle > 0 {
		if rwc, ok := res.Body.(io.ReadWriteCloser); ok {
			host, path := res.Request.Host, res.Request.URL.Path
			res.Body = newIdleConn(rwc, idle, func() {
				r.log.Info("closed an idle upgraded connection", "host", host, "path", path, "idle_timeout", idle)
			})
		}
	}
	return nil
}

// isUpgrade reports whether a request asks for a protocol upgrade
// (Connection: upgrade and an Upgrade header), as ReverseProxy tells them.
func isUpgrade(h http.Header) bool {
	if h.Get("Upgrade") == "" {
		return false
	}
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// proxyError maps ReverseProxy failures to 408, 502 and 504.
func (r *Router) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	ctx := req.Context()
	var body *limitedBody
	if sw, ok := w.(*statusWriter); ok {
		body = sw.body
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		t, _ := ctx.Value(targetKey{}).(*target)
		limit := ""
		if t != nil {
			limit = " of " + t.timeout.String()
			// A hung or frozen instance must not keep its share of the
			// traffic: it gets no request until a health probe passes.
			t.lease.Handle.Suspect("a request timed out after " + t.timeout.String())
		}
		writeError(w, req, http.StatusGatewayTimeout, fmt.Sprintf("version %s did not answer within its timeout%s", w.Header().Get(HeaderVersion), limit))
	case body != nil && body.tooSlow.Load():
		writeError(w, req, http.StatusRequestTimeout, errBodyTooSlow.Error()+r.limitsText())
	case body != nil && body.failed.Load():
		// The client broke off its body (and is gone, most likely): not
		// the instance's fault.
		writeError(w, req, http.StatusBadRequest, "reading the request body failed")
	case errors.Is(err, context.Canceled):
		// The client went away.
	case isDialError(err) && r.retry(w, req, ctx.Value(targetKey{}).(*target)):
		// Served (or answered) by a new instance.
	default:
		if t, ok := ctx.Value(targetKey{}).(*target); ok {
			t.lease.Handle.Suspect(err.Error())
		}
		r.log.Warn("proxy error", "host", req.Host, "path", req.URL.Path, "err", err)
		writeError(w, req, http.StatusBadGateway, "the instance failed to answer: "+err.Error())
	}
}

// isDialError reports whether err happened while connecting, before any of
// the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// writeError answers with JSON to clients that ask for it and text otherwise.
func writeError(w http.ResponseWriter, req *http.Request, status int, msg string) {
	h := w.Header()
	h.Del("Content-Length")
	if strings.Contains(req.Header.Get("Accept"), "application/json") {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"status": status, "message": msg}})
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "wisp: %s\n", msg) //nolint:gosec // G705: text/plain with nosniff is not rendered as HTML
}
