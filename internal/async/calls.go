package async

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/queue"
)

// Header names of async calls.
const (
	HeaderCallID         = "Wisp-Call-Id"
	HeaderAttempt        = "Wisp-Attempt"
	HeaderCallback       = "Wisp-Callback"
	HeaderCallbackX      = "X-Callback-Url"
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderCallStatus     = "Wisp-Call-Status"
	HeaderCallState      = "Wisp-Call-State"
	HeaderCallDuration   = "Wisp-Call-Duration-Ms"
	// HeaderAsync marks a request the dispatcher sends, so the router never
	// takes it for a new async submission.
	HeaderAsync = "Wisp-Async-Attempt"
)

// Defaults.
const (
	DefaultResultTTL    = 7 * 24 * time.Hour
	DefaultMaxResult    = 1 << 20
	DefaultMaxRequest   = 6 << 20
	idempotencyTTL      = 24 * time.Hour
	callbackKey         = "_callbacks" // the work queue of callbacks; no service has this name
	callbackAttempts    = 10
	callbackTimeout     = 30 * time.Second
	recordWait          = 30 * time.Second
	defaultListLimit    = 100
	maxListLimit        = 1000
	maxCallbackBodySize = DefaultMaxResult
)

// Config configures the calls.
type Config struct {
	Queue queue.Queue
	// Handler sends a call like any request: the router.
	Handler http.Handler
	// Domain: a call of service s is sent to host s.<Domain>.
	Domain string
	// ResultTTL is how long a call's record is kept after its last
	// change; 0 means DefaultResultTTL.
	ResultTTL time.Duration
	// MaxResult bounds the response body kept; 0 means DefaultMaxResult.
	MaxResult int
	// MaxRequest bounds an async request's body; 0 means DefaultMaxRequest.
	MaxRequest int64
	// Callbacks says where callbacks may go (by default public addresses
	// only); Client delivers them, nil meaning a client with a 30 s
	// timeout that checks every address it dials against Callbacks.
	Callbacks CallbackPolicy
	Client    *http.Client
	// Registerer receives the metrics; nil means none are exported.
	Registerer prometheus.Registerer
	// Now and Jitter are the clock and the random source (tests).
	Now    func() time.Time
	Jitter func(max time.Duration) time.Duration
}

// Calls submits, dispatches and reports async calls.
type Calls struct {
	cfg     Config
	log     *slog.Logger
	calls   queue.Table
	idem    queue.Table
	metrics *metrics

	mu       sync.Mutex
	services map[string]policy
	inflight map[string]*attempt // calls being sent by this replica
	running  map[string]*dispatcher
	runCtx   context.Context // set by Run; nil before
	wg       sync.WaitGroup
}

type dispatcher struct {
	policy policy
	cancel context.CancelFunc
}

// New opens the tables the calls live in.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Calls, error) {
	if cfg.Queue == nil || cfg.Handler == nil || cfg.Domain == "" {
		return nil, errors.New("async: a queue, a handler and a domain are required")
	}
	if cfg.ResultTTL <= 0 {
		cfg.ResultTTL = DefaultResultTTL
	}
	if cfg.MaxResult <= 0 {
		cfg.MaxResult = DefaultMaxResult
	}
	if cfg.MaxRequest <= 0 {
		cfg.MaxRequest = DefaultMaxRequest
	}
	if cfg.Client == nil {
		cfg.Client = cfg.Callbacks.client()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Jitter == nil {
		cfg.Jitter = randomDuration
	}
	c := &Calls{cfg: cfg, log: logger.With("component", "async"), services: map[string]policy{}, running: map[string]*dispatcher{},
		inflight: map[string]*attempt{}}
	var err error
	if c.calls, err = cfg.Queue.Table(ctx, "calls", cfg.ResultTTL); err != nil {
		return nil, err
	}
	if c.idem, err = cfg.Queue.Table(ctx, "idempotency", idempotencyTTL); err != nil {
		return nil, err
	}
	if c.metrics, err = newMetrics(cfg.Registerer, c); err != nil {
		return nil, err
	}
	return c, nil
}

// NewID returns a new call ID: 26 characters of lower-case base32, sortable
// by time (48 bits of milliseconds, then 80 random bits).
func NewID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16) //nolint:gosec // a time after 1970
	_, _ = rand.Read(b[6:])
	return strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func validID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'v') {
			return false
		}
	}
	return true
}

func recordKey(service, id string) string { return service + "." + id }

// Known reports whether service exists, as far as the feed has told.
func (c *Calls) Known(service string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.services[service]
	return ok
}

// Submit stores the request r as an async call of service and returns its
// ID once it is durably stored; duplicate reports that its
// Idempotency-Key named an earlier call, whose ID it returns.
func (c *Calls) Submit(ctx context.Context, service string, r *http.Request) (id string, duplicate bool, err error) {
	body, err := readBody(r.Body, c.cfg.MaxRequest)
	if err != nil {
		return "", false, err
	}
	h := r.Header.Clone()
	callback := h.Get(HeaderCallback)
	if callback == "" {
		callback = h.Get(HeaderCallbackX)
	}
	if callback != "" {
		if err := c.checkCallback(callback); err != nil {
			return "", false, err
		}
	}
	key := h.Get(HeaderIdempotencyKey)
	if len(key) > 256 {
		return "", false, core.Invalidf(HeaderIdempotencyKey, "the Idempotency-Key header is %d bytes; at most 256 are accepted", len(key))
	}
	for _, k := range []string{"Prefer", HeaderCallback, HeaderCallbackX, "Connection", "Keep-Alive", "Proxy-Connection",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", HeaderAsync} {
		h.Del(k)
	}
	call := &core.Call{
		Service:        service,
		Origin:         "api",
		Request:        core.CallRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: h, Body: body},
		Callback:       callback,
		IdempotencyKey: key,
	}
	if call.Request.Path == "" {
		call.Request.Path = "/"
	}
	return c.SubmitCall(ctx, call)
}

func readBody(body io.Reader, limit int64) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, core.Invalidf("body", "read the request body: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, core.TooLargef("an async request's body may be at most %d bytes", limit)
	}
	return b, nil
}

func (c *Calls) checkCallback(u string) error {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return core.Invalidf(HeaderCallback, "callback URL %q: want an http:// or https:// URL", u)
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return core.Invalidf(HeaderCallback, "callback URL %q is not a URL with a host", u)
	}
	return c.cfg.Callbacks.checkURL(pu)
}

// SubmitCall stores call (its Service, Origin, Request, Callback and
// IdempotencyKey set) and enqueues it.
func (c *Calls) SubmitCall(ctx context.Context, call *core.Call) (string, bool, error) {
	if !c.Known(call.Service) {
		return "", false, core.NotFoundf("no service named %q", call.Service)
	}
	now := c.cfg.Now()
	call.ID = NewID(now)
	call.State = core.CallQueued
	call.SubmittedAt = now
	call.Attempts = []core.CallAttempt{}
	var ikey string
	if call.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte(call.IdempotencyKey))
		ikey = recordKey(call.Service, hex.EncodeToString(sum[:16]))
		if _, err := c.idem.Create(ctx, ikey, []byte(call.ID)); err != nil {
			if !errors.Is(err, core.ErrAlreadyExists) {
				return "", false, err
			}
			first, _, err := c.idem.Get(ctx, ikey)
			if err != nil {
				return "", false, err
			}
			call.ID = string(first)
			// The first submission may have died between its key and
			// its record or its message: finish what it began.
			if err := c.complete(ctx, call); err != nil {
				return "", false, err
			}
			return call.ID, true, nil
		}
	}
	rec, err := json.Marshal(call)
	if err != nil {
		return "", false, err
	}
	// The record and the message are stored at once, and the 202 waits
	// for both: a submission costs one round trip, not two. A dispatcher
	// that gets the message before the record is stored waits for it
	// (handleCall).
	enq := make(chan error, 1)
	go func() {
		_, err := c.cfg.Queue.Enqueue(ctx, call.Service, queue.Message{ID: call.ID, Data: []byte(call.ID)})
		enq <- err
	}()
	_, recErr := c.calls.Create(ctx, recordKey(call.Service, call.ID), rec)
	if err := errors.Join(recErr, <-enq); err != nil {
		// Not both stored: the caller gets an error, not an ID, so neither
		// the record nor the key may say otherwise (a message without its
		// record is dropped by the dispatcher).
		dctx := context.WithoutCancel(ctx)
		if recErr == nil {
			_ = c.calls.Delete(dctx, recordKey(call.Service, call.ID))
		}
		if ikey != "" {
			_ = c.idem.Delete(dctx, ikey)
		}
		return "", false, err
	}
	c.metrics.submitted(call.Service)
	return call.ID, false, nil
}

// complete makes sure a call that an idempotency key names has its record
// and, while it has not started, its message: a submission that died
// half-way is finished by the client's retry. Enqueueing the message again
// under the call's ID stores nothing when the first one was stored within
// the deduplication window, and a second message of a call that is done is
// dropped by the dispatcher.
func (c *Calls) complete(ctx context.Context, call *core.Call) error {
	key := recordKey(call.Service, call.ID)
	existing, _, err := c.read(ctx, key)
	switch {
	case errors.Is(err, core.ErrNotFound):
		rec, err := json.Marshal(call)
		if err != nil {
			return err
		}
		if _, err := c.calls.Create(ctx, key, rec); err != nil && !errors.Is(err, core.ErrAlreadyExists) {
			return err
		}
	case err != nil:
		return err
	case existing.State != core.CallQueued || len(existing.Attempts) > 0:
		return nil // it started: its message was stored
	}
	_, err = c.cfg.Queue.Enqueue(ctx, call.Service, queue.Message{ID: call.ID, Data: []byte(call.ID)})
	return err
}

// Get returns a call by ID.
func (c *Calls) Get(ctx context.Context, id string) (*core.Call, error) {
	call, _, err := c.get(ctx, id)
	return call, err
}

func (c *Calls) get(ctx context.Context, id string) (*core.Call, uint64, error) {
	if !validID(id) {
		return nil, 0, core.NotFoundf("no call %q (a call ID is 26 characters of 0-9 and a-v)", id)
	}
	key, raw, rev, err := c.calls.Find(ctx, "*."+id)
	if errors.Is(err, core.ErrNotFound) {
		return nil, 0, core.NotFoundf("no call %q (calls are kept %s after their last change)", id, c.cfg.ResultTTL)
	}
	if err != nil {
		return nil, 0, err
	}
	return decodeCall(key, raw, rev)
}

func decodeCall(key string, raw []byte, rev uint64) (*core.Call, uint64, error) {
	var call core.Call
	if err := json.Unmarshal(raw, &call); err != nil {
		return nil, 0, fmt.Errorf("call record %s: %w", key, err)
	}
	return &call, rev, nil
}

func (c *Calls) read(ctx context.Context, key string) (*core.Call, uint64, error) {
	raw, rev, err := c.calls.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	return decodeCall(key, raw, rev)
}

// List returns a service's calls, newest first, in state (any when empty),
// at most limit (0: 100).
func (c *Calls) List(ctx context.Context, service, state string, limit int) ([]core.Call, error) {
	if state != "" && !isState(state) {
		return nil, core.Invalidf("state", "unknown call state %q; want one of %s", state, strings.Join(core.CallStates, ", "))
	}
	if limit <= 0 {
		limit = defaultListLimit
	}
	if limit > maxListLimit {
		return nil, core.Invalidf("limit", "limit %d is over %d", limit, maxListLimit)
	}
	if !c.Known(service) {
		return nil, core.NotFoundf("no service named %q", service)
	}
	return c.list(ctx, service, state, "", limit)
}

// list returns up to limit calls of service in state from origin ("" any
// for both), newest first.
func (c *Calls) list(ctx context.Context, service, state, origin string, limit int) ([]core.Call, error) {
	keys, err := c.calls.Keys(ctx, service+".*")
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	out := []core.Call{}
	for _, k := range keys {
		if len(out) == limit {
			break
		}
		call, _, err := c.read(ctx, k)
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if (state == "" || call.State == state) && (origin == "" || call.Origin == origin) {
			out = append(out, *call)
		}
	}
	return out, nil
}

func isState(s string) bool {
	for _, st := range core.CallStates {
		if s == st {
			return true
		}
	}
	return false
}

// Retry replays a dead or failed call: it is queued again with a fresh
// budget of attempts and max_age counted from now; its earlier attempts
// stay in its record.
func (c *Calls) Retry(ctx context.Context, id string) (*core.Call, error) {
	call, rev, err := c.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if call.State != core.CallDead && call.State != core.CallFailed {
		return nil, core.Conflictf("call %s is %s; only a dead or failed call can be retried", id, call.State)
	}
	if !c.Known(call.Service) {
		return nil, core.Conflictf("call %s was to service %q, which no longer exists", id, call.Service)
	}
	call.State = core.CallQueued
	call.Error = ""
	call.FinishedAt = nil
	call.NextAttemptAt = nil
	now := c.cfg.Now()
	call.SubmittedAt = now
	call.RetriedAttempts = len(call.Attempts)
	if _, err := c.write(ctx, call, rev); err != nil {
		return nil, err
	}
	msgID := fmt.Sprintf("%s-r%d", call.ID, now.UnixNano())
	if _, err := c.cfg.Queue.Enqueue(ctx, call.Service, queue.Message{ID: msgID, Data: []byte(call.ID)}); err != nil {
		return nil, err
	}
	return call, nil
}

func (c *Calls) write(ctx context.Context, call *core.Call, rev uint64) (uint64, error) {
	rec, err := json.Marshal(call)
	if err != nil {
		return 0, err
	}
	return c.calls.Update(ctx, recordKey(call.Service, call.ID), rec, rev)
}

func randomDuration(maxD time.Duration) time.Duration {
	if maxD <= 0 {
		return 0
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(maxD)) //nolint:gosec // maxD > 0
}

// attempt is a call being sent by this replica.
type attempt struct {
	cancel    context.CancelFunc
	cancelled string // why Cancel ended it; "" while it runs
}

// Cancel ends a call that is not done: a queued one becomes dead at once; a
// running one is cancelled if this replica sends it (and recorded dead),
// and on another replica it is recorded dead, so its answer is not kept.
func (c *Calls) Cancel(ctx context.Context, id, why string) {
	c.mu.Lock()
	if a := c.inflight[id]; a != nil {
		a.cancelled = why
		a.cancel()
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	for range 5 {
		call, rev, err := c.get(ctx, id)
		if err != nil || call.Done() {
			return
		}
		now := c.cfg.Now()
		call.State, call.Error, call.FinishedAt, call.NextAttemptAt = core.CallDead, why, &now, nil
		if _, err := c.write(ctx, call, rev); !errors.Is(err, core.ErrPreconditionFailed) {
			if err == nil {
				c.metrics.finished(call.Service, core.CallDead)
			}
			return
		}
	}
}
