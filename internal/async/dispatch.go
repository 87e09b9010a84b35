package async

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/queue"
)

// Apply records the services that exist and their policies; Run starts a
// dispatcher for each (the daemon's feed calls these).
func (c *Calls) Apply(states []core.ServiceState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range states {
		c.services[s.Service.Name] = policyOf(s.Service.Policy)
		c.reconcileLocked(s.Service.Name)
	}
}

// Remove forgets deleted services and stops their dispatchers; their
// queued calls stay until they expire.
func (c *Calls) Remove(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		delete(c.services, n)
		c.reconcileLocked(n)
	}
}

// Replace records the state of every service.
func (c *Calls) Replace(states []core.ServiceState) {
	c.mu.Lock()
	keep := map[string]bool{}
	for _, s := range states {
		keep[s.Service.Name] = true
	}
	for n := range c.services {
		if !keep[n] {
			delete(c.services, n)
			c.reconcileLocked(n)
		}
	}
	c.mu.Unlock()
	c.Apply(states)
}

// reconcileLocked starts, restarts (a new concurrency) or stops the
// dispatcher of name.
func (c *Calls) reconcileLocked(name string) {
	if c.runCtx == nil {
		return
	}
	p, want := c.services[name]
	d := c.running[name]
	if d != nil && (!want || d.policy.concurrency != p.concurrency) {
		d.cancel()
		delete(c.running, name)
		d = nil
	}
	if want && d == nil {
		c.startLocked(name, p, name)
	} else if want {
		d.policy = p
	}
}

func (c *Calls) startLocked(name string, p policy, key string) {
	ctx, cancel := context.WithCancel(c.runCtx)
	d := &dispatcher{policy: p, cancel: cancel}
	c.running[name] = d
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		h := func(ctx context.Context, d queue.Delivery) { c.handleCall(ctx, name, d) }
		if key == callbackKey {
			h = c.handleCallback
		}
		for ctx.Err() == nil {
			err := c.cfg.Queue.Consume(ctx, key, p.concurrency, h)
			if err == nil || ctx.Err() != nil {
				return
			}
			c.log.Warn("dispatch async calls", "service", name, "err", err)
			select {
			case <-time.After(2 * time.Second):
			case <-ctx.Done():
			}
		}
	}()
}

// Run dispatches calls until ctx ends.
func (c *Calls) Run(ctx context.Context) error {
	c.mu.Lock()
	c.runCtx = ctx
	for n := range c.services {
		c.reconcileLocked(n)
	}
	c.startLocked(callbackKey, policy{concurrency: 8}, callbackKey)
	c.mu.Unlock()
	<-ctx.Done()
	c.wg.Wait()
	return nil
}

func (c *Calls) policy(service string) (policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.services[service]
	return p, ok
}

// handleCall makes one attempt of the call whose ID d carries.
func (c *Calls) handleCall(ctx context.Context, service string, d queue.Delivery) {
	id := string(d.Message().Data)
	call, rev, err := c.read(ctx, recordKey(service, id))
	switch {
	case errors.Is(err, core.ErrNotFound):
		if age := time.Since(d.Enqueued()); age < recordWait {
			// Its record is stored alongside the message and may still be
			// on the way: look again soon, then less often.
			_ = d.Retry(min(max(age, time.Millisecond), 200*time.Millisecond))
		} else {
			c.log.Warn("an async call has no record; dropping it", "call", id)
			_ = d.Drop()
		}
		return
	case err != nil:
		c.log.Warn("read an async call", "call", id, "err", err)
		_ = d.Retry(time.Second)
		return
	}
	if call.Done() {
		_ = d.Ack() // a redelivery of a call that finished: never run it again
		return
	}
	p, ok := c.policy(service)
	if !ok {
		c.finish(ctx, d, call, rev, core.CallDead, fmt.Sprintf("service %q no longer exists", service))
		return
	}
	now := c.cfg.Now()
	if age := now.Sub(call.SubmittedAt); age > p.maxAge {
		c.finish(ctx, d, call, rev, core.CallDead, fmt.Sprintf("not succeeded within max_age %s", p.maxAge))
		return
	}
	if n := len(call.Attempts) - call.RetriedAttempts; n >= p.maxAttempts {
		c.finish(ctx, d, call, rev, core.CallDead, fmt.Sprintf("%d attempts made (max_attempts %d)", n, p.maxAttempts))
		return
	}
	call.State = core.CallRunning
	call.NextAttemptAt = nil
	call.Attempts = append(call.Attempts, core.CallAttempt{StartedAt: now})
	if rev, err = c.write(ctx, call, rev); err != nil {
		// Changed under us (a replay, another replica): look again soon.
		_ = d.Retry(100 * time.Millisecond)
		return
	}
	c.metrics.started(service, now.Sub(d.Enqueued()))
	stop := keepAlive(d)
	actx, cancel := context.WithCancel(ctx)
	a := &attempt{cancel: cancel}
	c.mu.Lock()
	c.inflight[call.ID] = a
	c.mu.Unlock()
	res := c.send(actx, call, len(call.Attempts))
	c.mu.Lock()
	delete(c.inflight, call.ID)
	why := a.cancelled
	c.mu.Unlock()
	cancel()
	stop()
	if ctx.Err() != nil {
		return // shutting down: the message is handed out again after AckWait
	}
	end := c.cfg.Now()
	last := &call.Attempts[len(call.Attempts)-1]
	last.FinishedAt = &end
	last.Status, last.Version, last.Error = res.Status, res.version, res.err
	last.DurationMS = float64(end.Sub(last.StartedAt).Microseconds()) / 1000
	call.Response = &res.CallResponse
	attempts := len(call.Attempts) - call.RetriedAttempts
	switch {
	case why != "":
		c.finish(ctx, d, call, rev, core.CallDead, why)
	case res.Status >= 200 && res.Status < 400:
		c.finish(ctx, d, call, rev, core.CallSucceeded, "")
	case res.Status >= 400 && res.Status < 500 && res.Status != http.StatusRequestTimeout && res.Status != http.StatusTooManyRequests:
		c.finish(ctx, d, call, rev, core.CallFailed, fmt.Sprintf("the service answered %d, which is not retried", res.Status))
	case attempts >= p.maxAttempts:
		c.finish(ctx, d, call, rev, core.CallDead, fmt.Sprintf("%d attempts failed (max_attempts %d); the last answered %s", attempts, p.maxAttempts, res.describe()))
	default:
		delay := p.backoff(attempts, retryAfter(res.Header, end), c.cfg.Jitter)
		next := end.Add(delay)
		if next.Sub(call.SubmittedAt) > p.maxAge {
			c.finish(ctx, d, call, rev, core.CallDead, fmt.Sprintf("the next attempt would be past max_age %s; the last answered %s", p.maxAge, res.describe()))
			return
		}
		call.State = core.CallQueued
		call.NextAttemptAt = &next
		if _, err := c.write(ctx, call, rev); err != nil {
			c.log.Warn("record a failed attempt", "call", call.ID, "err", err)
		}
		c.metrics.retried(service)
		_ = d.Retry(delay)
	}
}

// finish records a call's end and acks its message.
func (c *Calls) finish(ctx context.Context, d queue.Delivery, call *core.Call, rev uint64, state, why string) {
	now := c.cfg.Now()
	call.State, call.Error, call.FinishedAt, call.NextAttemptAt = state, why, &now, nil
	if _, err := c.write(ctx, call, rev); err != nil {
		if errors.Is(err, core.ErrPreconditionFailed) {
			_ = d.Retry(100 * time.Millisecond)
			return
		}
		c.log.Warn("record an async call's end", "call", call.ID, "err", err)
		_ = d.Retry(time.Second)
		return
	}
	_ = d.Ack()
	c.metrics.finished(call.Service, state)
	if call.Callback != "" {
		if _, err := c.cfg.Queue.Enqueue(ctx, callbackKey, queue.Message{ID: call.ID + "-cb-" + strconv.Itoa(len(call.Attempts)),
			Data: []byte(recordKey(call.Service, call.ID))}); err != nil {
			c.log.Warn("queue a callback", "call", call.ID, "err", err)
		}
	}
}

// keepAlive tells the queue every AckWait/3 that the attempt goes on.
func keepAlive(d queue.Delivery) (stop func()) {
	t := time.NewTicker(queue.AckWait / 3)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				_ = d.Progress()
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

type result struct {
	core.CallResponse
	version int
	err     string
}

func (r result) describe() string {
	if r.err != "" {
		return fmt.Sprintf("%d (%s)", r.Status, r.err)
	}
	return strconv.Itoa(r.Status)
}

// send delivers one attempt of call through the handler (the router).
func (c *Calls) send(ctx context.Context, call *core.Call, attempt int) result {
	u := &url.URL{Path: call.Request.Path, RawQuery: call.Request.Query}
	req, err := http.NewRequestWithContext(ctx, call.Request.Method, u.RequestURI(), bytes.NewReader(call.Request.Body))
	if err != nil {
		return result{CallResponse: core.CallResponse{Status: http.StatusBadRequest}, err: err.Error()}
	}
	req.Host = call.Service + "." + c.cfg.Domain
	req.RemoteAddr = "127.0.0.1:0"
	req.RequestURI = u.RequestURI()
	req.Header = call.Request.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.ContentLength = int64(len(call.Request.Body))
	if len(call.Request.Body) == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set(HeaderCallID, call.ID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	req.Header.Set(HeaderAsync, "1")
	rec := newRecorder(c.cfg.MaxResult)
	c.cfg.Handler.ServeHTTP(rec, req)
	res := result{CallResponse: core.CallResponse{Status: rec.status(), Header: rec.header, Body: rec.body.Bytes(), Truncated: rec.truncated}}
	res.version, _ = strconv.Atoi(rec.header.Get("Wisp-Version"))
	if msg, ok := strings.CutPrefix(string(res.Body), "wisp: "); ok && res.Status >= 500 {
		res.err = strings.TrimSpace(msg) // the router's own error
	}
	return res
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// recorder keeps a response up to a size.
type recorder struct {
	header    http.Header
	code      int
	body      bytes.Buffer
	max       int
	truncated bool
}

func newRecorder(maxBody int) *recorder { return &recorder{header: http.Header{}, max: maxBody} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if room := r.max - r.body.Len(); room < len(p) {
		r.truncated = true
		r.body.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return r.body.Write(p)
}
func (r *recorder) Flush() {}
func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// handleCallback delivers a finished call's result to its callback URL.
func (c *Calls) handleCallback(ctx context.Context, d queue.Delivery) {
	call, rev, err := c.read(ctx, string(d.Message().Data))
	if errors.Is(err, core.ErrNotFound) {
		_ = d.Drop()
		return
	}
	if err != nil {
		_ = d.Retry(time.Second)
		return
	}
	status, err := c.postCallback(ctx, call)
	if ctx.Err() != nil {
		return
	}
	call.CallbackStatus = status
	call.CallbackError = ""
	retry := (err != nil && !refused(err)) || status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
	if err != nil {
		call.CallbackError = err.Error()
	} else if retry {
		call.CallbackError = fmt.Sprintf("the callback URL answered %d", status)
	}
	if retry && d.Attempt() < callbackAttempts {
		_, _ = c.write(ctx, call, rev)
		p := policy{minBackoff: time.Second, maxBackoff: 5 * time.Minute}
		_ = d.Retry(p.backoff(d.Attempt(), 0, c.cfg.Jitter))
		return
	}
	if retry {
		call.CallbackError += fmt.Sprintf("; gave up after %d attempts", d.Attempt())
	}
	_, _ = c.write(ctx, call, rev)
	_ = d.Ack()
}

func (c *Calls) postCallback(ctx context.Context, call *core.Call) (int, error) {
	var body []byte
	h := http.Header{}
	if call.Response != nil {
		body = call.Response.Body
		if ct := call.Response.Header.Get("Content-Type"); ct != "" {
			h.Set("Content-Type", ct)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, call.Callback, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = h
	req.Header.Set(HeaderCallID, call.ID)
	req.Header.Set(HeaderCallState, call.State)
	if call.Response != nil {
		req.Header.Set(HeaderCallStatus, strconv.Itoa(call.Response.Status))
	}
	if n := len(call.Attempts); n > 0 {
		req.Header.Set(HeaderCallDuration, strconv.FormatFloat(call.Attempts[n-1].DurationMS, 'f', 1, 64))
		req.Header.Set(HeaderAttempt, strconv.Itoa(n))
	}
	res, err := c.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_ = res.Body.Close()
	return res.StatusCode, nil
}
