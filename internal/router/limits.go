package router

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what one client can hold on the router (issue 10, fault 5:
// a POST that declared 100,000 bytes and sent one a second held a
// connection for days). The header read timeout is the http.Server's
// (ReadHeaderTimeout, set by the daemon); these are the parts a server
// cannot do alone. A zero field is no limit.
type Limits struct {
	// BodyTimeout cuts off a request body that sends nothing for this long
	// (the client gets 408). It is also the grace period before
	// MinBodyRate applies.
	BodyTimeout time.Duration
	// MinBodyRate, in bytes per second: after the first BodyTimeout, a
	// body must have arrived at least this fast on average. A body that
	// has sent n bytes is cut off BodyTimeout + n/MinBodyRate after its
	// first read (Apache's mod_reqtimeout rule).
	MinBodyRate int64
	// UpgradeIdleTimeout closes an upgraded connection (a WebSocket) that
	// carried no byte either way for this long. Upgraded connections are
	// not bound by the version's request timeout, which only bounds the
	// handshake.
	UpgradeIdleTimeout time.Duration
}

// errBodyTooSlow is what the proxy reads from a body cut off by Limits.
var errBodyTooSlow = errors.New("the request body arrived too slowly")

// limitedBody enforces Limits on a request body by setting the
// connection's read deadline before every read, and remembers whether the
// body was read to its end: a response sent before that must close the
// connection (otherwise the server drains up to 256 KiB of the body after
// the handler, at whatever pace the client sends it).
//
// The proxy's transport reads the body on its own goroutine while the
// handler's goroutine writes the response, so the flags are atomic.
type limitedBody struct {
	body   io.ReadCloser
	rc     *http.ResponseController
	limits Limits
	// deadlines: the connection's read deadline can be set (false under
	// a ResponseRecorder, say); then only the bookkeeping is done.
	deadlines bool

	start time.Time // first read
	n     int64     // bytes read so far (read only by the reading goroutine)

	eof     atomic.Bool // the body was read to its end
	tooSlow atomic.Bool // a limit cut it off
	failed  atomic.Bool // a read failed (the client broke off, or too slow)
	closed  atomic.Bool
	once    sync.Once

	// mu orders the deadline a read sets against stopReading's, so that
	// a read that began before the stop cannot set a later deadline
	// after it; active counts the reads in flight, which stopReading
	// waits for.
	mu      sync.Mutex
	stopped bool
	active  sync.WaitGroup
}

func newLimitedBody(body io.ReadCloser, rc *http.ResponseController, limits Limits) *limitedBody {
	return &limitedBody{body: body, rc: rc, limits: limits, deadlines: true}
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof.Load() {
		return 0, io.EOF
	}
	now := time.Now()
	if b.start.IsZero() {
		b.start = now
	}
	limited := b.limits.BodyTimeout > 0 || b.limits.MinBodyRate > 0
	var dl time.Time
	if limited {
		if dl = b.deadline(now); !dl.After(now) {
			return b.fail(errBodyTooSlow)
		}
	}
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	b.active.Add(1)
	defer b.active.Done()
	if limited && b.deadlines && b.rc.SetReadDeadline(dl) != nil {
		b.deadlines = false // not a connection we can bound
	}
	b.mu.Unlock()
	n, err := b.body.Read(p)
	b.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		b.eof.Store(true)
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.deadlines && !b.stopped {
			// The server reads the connection in the background once
			// the body is done (to notice a client leaving); a
			// deadline left behind would end that read and cancel
			// the request's context.
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !b.closed.Load():
		return b.fail(errBodyTooSlow)
	case err != nil:
		b.failed.Store(true)
	}
	return n, err
}

// deadline is when the next read must have returned.
func (b *limitedBody) deadline(now time.Time) time.Time {
	var dl time.Time
	if b.limits.BodyTimeout > 0 {
		dl = now.Add(b.limits.BodyTimeout)
	}
	if r := b.limits.MinBodyRate; r > 0 {
		grace := b.limits.BodyTimeout
		// n/r seconds, computed so that a large n cannot overflow.
		earned := time.Duration(b.n/r)*time.Second + time.Duration(b.n%r)*time.Second/time.Duration(r)
		if rdl := b.start.Add(grace + earned); dl.IsZero() || rdl.Before(dl) {
			dl = rdl
		}
	}
	return dl
}

func (b *limitedBody) fail(err error) (int, error) {
	b.tooSlow.Store(true)
	b.failed.Store(true)
	return 0, err
}

// Close closes the body without draining what is left: a body that was
// not read to its end is not read any more (a read blocked on it returns at
// once), and the response says Connection: close.
func (b *limitedBody) Close() error {
	b.once.Do(func() {
		b.closed.Store(true)
		b.stopReading()
	})
	return b.body.Close()
}

// stopReading makes every read of an unfinished body fail at once, so that
// neither a read in flight nor the server's drain after the handler waits
// for a trickling client. The connection is then closed after the response.
//
// It then waits for a read in flight to return: the server, after the
// handler, waits for such a read too and then clears the connection's
// deadline, which would let its drain of the body block again.
func (b *limitedBody) stopReading() {
	b.mu.Lock()
	if b.stopped || b.eof.Load() {
		b.mu.Unlock()
		return
	}
	b.stopped = true
	if b.rc.SetReadDeadline(time.Unix(1, 0)) != nil {
		b.deadlines = false
	}
	wait := b.deadlines
	b.mu.Unlock()
	if wait {
		b.active.Wait()
	}
}

// unread reports whether a response written now is sent before the body was
// read to its end.
func (b *limitedBody) unread() bool { return b != nil && !b.eof.Load() }

// hasBody reports whether req may carry a body.
func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
}

// idleConn is the instance's side of an upgraded connection. Every byte in
// either direction passes through it, so it can close the pair after
// UpgradeIdleTimeout without traffic; the proxy then closes the client's
// side too.
type idleConn struct {
	io.ReadWriteCloser
	idle  time.Duration
	last  atomic.Int64 // unix nanoseconds of the last byte either way
	timer *time.Timer
	// onIdle is told when the connection was closed for being idle.
	onIdle func()
}

func newIdleConn(rwc io.ReadWriteCloser, idle time.Duration, onIdle func()) *idleConn {
	c := &idleConn{ReadWriteCloser: rwc, idle: idle, onIdle: onIdle}
	c.last.Store(time.Now().UnixNano())
	c.timer = time.AfterFunc(idle, c.check)
	return c
}

func (c *idleConn) check() {
	quiet := time.Since(time.Unix(0, c.last.Load()))
	if quiet < c.idle {
		c.timer.Reset(c.idle - quiet)
		return
	}
	if c.onIdle != nil {
		c.onIdle()
	}
	_ = c.ReadWriteCloser.Close()
}

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Write(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *idleConn) Close() error {
	c.timer.Stop()
	return c.ReadWriteCloser.Close()
}

// limitsText names the limits in an answer, so a client can tell which
// one it met.
func (r *Router) limitsText() string {
	l := r.cfg.Limits
	switch {
	case l.MinBodyRate > 0:
		return fmt.Sprintf(" (nothing for %s, or under %d bytes per second after it)", l.BodyTimeout, l.MinBodyRate)
	case l.BodyTimeout > 0:
		return fmt.Sprintf(" (nothing for %s)", l.BodyTimeout)
	}
	return ""
}
