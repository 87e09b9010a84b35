package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// Transport reaches instances. The common request, one without a body that
// may be repeated (GET, HEAD, OPTIONS, TRACE) and that asks for no protocol
// upgrade, it sends and answers on the calling goroutine over a pooled
// HTTP/1.1 connection. Every other request goes to Fallback, the standard
// library's transport.
//
// Why not only http.Transport: it gives every connection a read goroutine
// and a write goroutine and hands each request and response between them
// and the caller over channels. Each hand-over can wake another thread, and
// at one connection those wake-ups are much of a proxy's cost. With the
// request written and the response read by the goroutine that serves it,
// make bench-proxy measured the router 1.16× as fast as before at one
// connection and 1.3× at 50 (docs/benchmarks.md). A request with a body
// keeps http.Transport, which writes the body while it reads the response
// (an instance may answer before it has read the body), and so do upgrades.
//
// Connections are kept per address, the most recently used first, and
// closed after IdleTimeout unused. No goroutine watches an idle connection,
// so one that the instance closed is found out when it is next used: if it
// fails before a byte of the response arrives, the request is sent once more
// on a new connection, which is safe because the request has no body and a
// repeatable method.
//
// Make one with NewTransport, then change its fields before its first use.
type Transport struct {
	// Fallback carries the requests the fast path leaves alone.
	Fallback *http.Transport
	// DialTimeout bounds connecting to an instance.
	DialTimeout time.Duration
	// MaxIdlePerHost bounds the idle connections kept per instance.
	MaxIdlePerHost int
	// IdleTimeout closes connections unused for this long.
	IdleTimeout time.Duration
	// MaxResponseHeaderBytes bounds a response's status line and headers.
	MaxResponseHeaderBytes int64

	mu    sync.Mutex
	idle  map[string][]*backendConn // by address, most recently used last
	sweep *time.Timer               // closes expired idle connections; nil when none are idle
}

// NewTransport returns the transport tuned for many short requests to a few
// local instances: plenty of idle connections per instance, no proxy from the
// environment, no compression negotiation.
func NewTransport() *Transport {
	const (
		dialTimeout    = 5 * time.Second
		idlePerHost    = 512
		idleTimeout    = 90 * time.Second
		tcpKeepAlive   = 30 * time.Second
		maxHeaderBytes = 1 << 20
	)
	return &Transport{
		Fallback: &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}).DialContext,
			MaxIdleConns:           4096,
			MaxIdleConnsPerHost:    idlePerHost,
			IdleConnTimeout:        idleTimeout,
			MaxResponseHeaderBytes: maxHeaderBytes,
			ExpectContinueTimeout:  time.Second,
			DisableCompression:     true,
		},
		DialTimeout:            dialTimeout,
		MaxIdlePerHost:         idlePerHost,
		IdleTimeout:            idleTimeout,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
}

// backendConn is one HTTP/1.1 connection to an instance.
type backendConn struct {
	addr     string
	conn     net.Conn
	r        limitReader // under br: bounds the response headers
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
}

// limitReader reads from a connection, at most n bytes, and counts them.
type limitReader struct {
	c    net.Conn
	n    int64
	read int64
}

var errHeaderTooLarge = errors.New("the instance's response headers are too large")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= int64(n)
	l.read += int64(n)
	return n, err
}

// fast reports whether req takes the fast path.
func fast(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return false
	}
	return req.URL.Scheme == "http" && (req.Body == nil || req.Body == http.NoBody) &&
		req.Header.Get("Upgrade") == "" && req.Header.Get("Expect") == ""
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !fast(req) {
		return t.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	addr := req.URL.Host
	for attempt := 0; ; attempt++ {
		// The retry dials: when one idle connection has gone stale, the
		// others to the same instance likely have too.
		bc, reused, err := t.conn(ctx, addr, attempt == 0)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, bc, req)
		if err == nil {
			return resp, nil
		}
		bc.conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if reused && attempt == 0 && bc.r.read == 0 && !errors.Is(err, errHeaderTooLarge) {
			continue // the instance closed the idle connection: once more, on a new one
		}
		return nil, err
	}
}

// exchange sends req on bc and reads the response's head. The returned
// response's body gives bc back to the pool once read to its end.
func (t *Transport) exchange(ctx context.Context, bc *backendConn, req *http.Request) (*http.Response, error) {
	// A cancelled or expired request unblocks the reads and writes below,
	// and the connection is not used again.
	stop := context.AfterFunc(ctx, func() { _ = bc.conn.SetDeadline(time.Unix(1, 0)) })
	bc.r.n, bc.r.read = t.MaxResponseHeaderBytes, 0
	if err := req.Write(bc.bw); err != nil {
		stop()
		return nil, err
	}
	if err := bc.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	resp, err := readResponse(bc.br, req)
	if err != nil {
		stop()
		return nil, err
	}
	bc.r.n = math.MaxInt64
	resp.Body = &backendBody{rc: resp.Body, t: t, bc: bc, stop: stop, ctx: ctx,
		reuse: !resp.Close && !req.Close && resp.ProtoAtLeast(1, 1)}
	return resp, nil
}

// readResponse reads the final response to req, passing 1xx interim
// responses (103 Early Hints) to the request's trace, as http.Transport does,
// which is how httputil.ReverseProxy forwards them.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(req.Context())
	for interim := 0; ; interim++ {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		code := resp.StatusCode
		switch {
		case code == http.StatusSwitchingProtocols:
			return nil, errors.New("the instance switched protocols, but the request asked for no upgrade")
		case code >= 100 && code < 200:
			if interim == 5 {
				return nil, errors.New("the instance sent too many 1xx responses")
			}
			if trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
					return nil, err
				}
			}
			continue
		}
		return resp, nil
	}
}

// backendBody is a response body on a pooled connection.
type backendBody struct {
	rc    io.ReadCloser
	t     *Transport
	bc    *backendConn
	stop  func() bool
	ctx   context.Context
	reuse bool
	done  bool
}

func (b *backendBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		b.finish(true)
	case err != nil:
		b.finish(false)
		if b.ctx.Err() != nil {
			err = b.ctx.Err() // the deadline set by the AfterFunc, not the instance
		}
	}
	return n, err
}

func (b *backendBody) Close() error {
	b.finish(false)
	return nil
}

// finish ends the response once: a body read to its end leaves the
// connection ready for the next request, unless the request was cancelled
// meanwhile, the instance asked to close, or it sent more than it should.
func (b *backendBody) finish(complete bool) {
	if b.done {
		return
	}
	b.done = true
	stopped := b.stop()
	if complete && stopped && b.reuse && b.bc.br.Buffered() == 0 {
		b.t.put(b.bc)
		return
	}
	b.bc.conn.Close()
}

// conn returns an idle connection to addr when idleOK, or dials a new one.
func (t *Transport) conn(ctx context.Context, addr string, idleOK bool) (bc *backendConn, reused bool, err error) {
	now := time.Now()
	t.mu.Lock()
	if list := t.idle[addr]; idleOK && len(list) > 0 {
		for len(list) > 0 {
			bc = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			if now.Sub(bc.idleFrom) < t.IdleTimeout {
				break
			}
			bc.conn.Close()
			bc = nil
		}
		t.idle[addr] = list
	}
	t.mu.Unlock()
	if bc != nil {
		return bc, true, nil
	}
	d := net.Dialer{Timeout: t.DialTimeout, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err // a *net.OpError with Op "dial": the router retries on a new instance
	}
	bc = &backendConn{addr: addr, conn: c}
	bc.r.c = c
	bc.br = bufio.NewReader(&bc.r)
	bc.bw = bufio.NewWriter(c)
	return bc, false, nil
}

// put keeps bc for the next request to its address.
func (t *Transport) put(bc *backendConn) {
	bc.idleFrom = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = map[string][]*backendConn{}
	}
	list := t.idle[bc.addr]
	if len(list) >= t.MaxIdlePerHost {
		bc.conn.Close()
		return
	}
	t.idle[bc.addr] = append(list, bc)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.IdleTimeout/2, t.closeExpired)
	}
}

// closeExpired closes the connections idle for longer than IdleTimeout, so
// those to instances that have gone do not stay open; it runs every half
// IdleTimeout while any connection is idle.
func (t *Transport) closeExpired() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, list := range t.idle {
		keep := list[:0]
		for _, bc := range list {
			if now.Sub(bc.idleFrom) < t.IdleTimeout {
				keep = append(keep, bc)
			} else {
				bc.conn.Close()
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = keep
		}
	}
	t.sweep = nil
	if len(t.idle) > 0 {
		t.sweep = time.AfterFunc(t.IdleTimeout/2, t.closeExpired)
	}
}

// CloseIdleConnections closes every idle connection, the fallback's too.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	for _, list := range t.idle {
		for _, bc := range list {
			bc.conn.Close()
		}
	}
	t.idle = nil
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	t.Fallback.CloseIdleConnections()
}
