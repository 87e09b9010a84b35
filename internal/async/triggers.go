package async

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/cloudevent"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/queue"
)

// Triggers deliver CloudEvents published on subjects to services, as async
// calls: every event a trigger's subscription receives and its filters pass
// becomes a call (POST, binary mode, ce-* headers) deduplicated by the
// event's source and id, so it inherits retries, dead calls and results.
type Triggers struct {
	calls *Calls
	q     queue.Queue
	table queue.Table
	log   *slog.Logger
	now   func() time.Time

	deliveries *prometheus.CounterVec // trigger, result

	mu      sync.Mutex
	runCtx  context.Context
	running map[string]*subscription
	wg      sync.WaitGroup
}

type subscription struct {
	def     core.Trigger
	filters []cloudevent.Filter
	cancel  context.CancelFunc
}

// resyncEvery is how often a replica reads the triggers others made.
const resyncEvery = 2 * time.Second

// NewTriggers opens the triggers' table.
func NewTriggers(ctx context.Context, calls *Calls, reg prometheus.Registerer, logger *slog.Logger) (*Triggers, error) {
	t := &Triggers{calls: calls, q: calls.cfg.Queue, log: logger.With("component", "triggers"), now: calls.cfg.Now,
		running: map[string]*subscription{}}
	var err error
	if t.table, err = t.q.Table(ctx, "triggers", 0); err != nil {
		return nil, err
	}
	t.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wisp_trigger_deliveries_total",
		Help: "Events a trigger received, by result: delivered (a call was made), duplicate, filtered (its filters did not pass), failed (no call could be made).",
	}, []string{"trigger", "result"})
	if reg != nil {
		if err := reg.Register(t.deliveries); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// DefaultEventSubject is the subject of an event posted without one.
func DefaultEventSubject(eventType string) string {
	var b strings.Builder
	b.WriteString("events")
	for tok := range strings.SplitSeq(eventType, ".") {
		b.WriteByte('.')
		if tok == "" {
			b.WriteByte('_')
		}
		for _, c := range tok {
			if c <= ' ' || c == '*' || c == '>' || c > '~' {
				c = '_'
			}
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Ingest publishes the CloudEvents of an HTTP request (structured, batched
// or binary) on subject, or on events.<type> for each when subject is "".
func (t *Triggers) Ingest(ctx context.Context, subject string, h http.Header, body []byte) ([]string, string, error) {
	evs, err := cloudevent.BatchFromHTTP(h, body)
	if err != nil {
		return nil, "", err
	}
	if subject != "" {
		if err := queue.CheckSubject(subject, false); err != nil {
			return nil, "", err
		}
	}
	ids := make([]string, 0, len(evs))
	used := subject
	for _, ev := range evs {
		subj := subject
		if subj == "" {
			subj = DefaultEventSubject(ev.Type)
			if err := queue.CheckSubject(subj, false); err != nil {
				return nil, "", err
			}
			used = subj
		}
		data, err := ev.StructuredJSON()
		if err != nil {
			return nil, "", core.Invalidf("data", "encode the event: %v", err)
		}
		msg := queue.Message{ID: cloudevent.DedupKey(ev), Header: http.Header{"Content-Type": {cloudevent.MediaType}}, Data: data}
		if err := t.q.Publish(ctx, subj, msg); err != nil {
			return nil, "", err
		}
		ids = append(ids, ev.ID)
	}
	return ids, used, nil
}

// Create validates and stores a trigger, and starts its subscription.
func (t *Triggers) Create(ctx context.Context, tr core.Trigger) (core.Trigger, error) {
	if err := core.ValidateObjectName("trigger", tr.Name); err != nil {
		return tr, err
	}
	if tr.Service == "" {
		return tr, core.Invalidf("service", "a trigger needs the service it calls (service)")
	}
	if !t.calls.Known(tr.Service) {
		return tr, core.NotFoundf("no service named %q", tr.Service)
	}
	if err := queue.CheckSubject(tr.Subject, true); err != nil {
		return tr, err
	}
	if tr.Path == "" {
		tr.Path = "/"
	}
	if !strings.HasPrefix(tr.Path, "/") {
		return tr, core.Invalidf("path", "path %q must start with /", tr.Path)
	}
	if _, err := parseFilters(tr.Filters); err != nil {
		return tr, err
	}
	// Store the events of the subject from now on, before the trigger
	// exists, so that none published after this answer is lost.
	if err := t.q.Cover(ctx, tr.Subject); err != nil {
		return tr, err
	}
	tr.CreatedAt = t.now().UTC()
	tr.Deliveries = nil
	raw, err := json.Marshal(tr)
	if err != nil {
		return tr, err
	}
	if _, err := t.table.Create(ctx, tr.Name, raw); err != nil {
		if errors.Is(err, core.ErrAlreadyExists) {
			return tr, core.AlreadyExistsf("a trigger named %q exists; delete it first (wisp trigger delete %s)", tr.Name, tr.Name)
		}
		return tr, err
	}
	t.mu.Lock()
	t.reconcileLocked(map[string]core.Trigger{tr.Name: tr}, false)
	t.mu.Unlock()
	return tr, nil
}

func parseFilters(in []string) ([]cloudevent.Filter, error) {
	out := make([]cloudevent.Filter, 0, len(in))
	for _, s := range in {
		f, err := cloudevent.ParseFilter(s)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Get returns a trigger with its most recent deliveries.
func (t *Triggers) Get(ctx context.Context, name string) (core.Trigger, error) {
	tr, err := t.read(ctx, name)
	if err != nil {
		return tr, err
	}
	if t.calls.Known(tr.Service) {
		tr.Deliveries, err = t.calls.list(ctx, tr.Service, "", "trigger:"+tr.Name, 20)
		if err != nil {
			return tr, err
		}
	}
	return tr, nil
}

func (t *Triggers) read(ctx context.Context, name string) (core.Trigger, error) {
	var tr core.Trigger
	raw, _, err := t.table.Get(ctx, name)
	if errors.Is(err, core.ErrNotFound) {
		return tr, core.NotFoundf("no trigger named %q", name)
	}
	if err != nil {
		return tr, err
	}
	err = json.Unmarshal(raw, &tr)
	return tr, err
}

// List returns every trigger by name.
func (t *Triggers) List(ctx context.Context) ([]core.Trigger, error) {
	all, err := t.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]core.Trigger, 0, len(all))
	for _, tr := range all {
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (t *Triggers) all(ctx context.Context) (map[string]core.Trigger, error) {
	keys, err := t.table.Keys(ctx, ">")
	if err != nil {
		return nil, err
	}
	out := make(map[string]core.Trigger, len(keys))
	for _, k := range keys {
		tr, err := t.read(ctx, k)
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[k] = tr
	}
	return out, nil
}

// Delete removes a trigger and its subscription; events it had not
// delivered are dropped.
func (t *Triggers) Delete(ctx context.Context, name string) error {
	if _, err := t.read(ctx, name); err != nil {
		return err
	}
	if err := t.table.Delete(ctx, name); err != nil {
		return err
	}
	t.mu.Lock()
	if s := t.running[name]; s != nil {
		s.cancel()
		delete(t.running, name)
	}
	t.mu.Unlock()
	return t.q.Unsubscribe(ctx, name)
}

// Run keeps a subscription running for every trigger until ctx ends.
func (t *Triggers) Run(ctx context.Context) error {
	t.mu.Lock()
	t.runCtx = ctx
	t.mu.Unlock()
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	for {
		if all, err := t.all(ctx); err == nil {
			t.mu.Lock()
			t.reconcileLocked(all, true)
			t.mu.Unlock()
		} else if ctx.Err() == nil {
			t.log.Warn("read the triggers", "err", err)
		}
		select {
		case <-ctx.Done():
			t.wg.Wait()
			return nil
		case <-tick.C:
		}
	}
}

// reconcileLocked starts the subscriptions of defs that do not run (or
// changed), and with complete stops those of triggers not in defs.
func (t *Triggers) reconcileLocked(defs map[string]core.Trigger, complete bool) {
	if t.runCtx == nil {
		return
	}
	if complete {
		for name, s := range t.running {
			if _, ok := defs[name]; !ok {
				s.cancel()
				delete(t.running, name)
			}
		}
	}
	for name, def := range defs {
		if s := t.running[name]; s != nil {
			if s.def.CreatedAt.Equal(def.CreatedAt) {
				continue
			}
			s.cancel() // deleted and made again with the same name
		}
		filters, err := parseFilters(def.Filters)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithCancel(t.runCtx)
		s := &subscription{def: def, filters: filters, cancel: cancel}
		t.running[name] = s
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			for ctx.Err() == nil {
				err := t.q.Subscribe(ctx, name, def.Subject, def.CreatedAt, func(ctx context.Context, d queue.Delivery) { t.deliver(ctx, s, d) })
				if err == nil || ctx.Err() != nil {
					return
				}
				t.log.Warn("subscribe", "trigger", name, "err", err)
				select {
				case <-time.After(2 * time.Second):
				case <-ctx.Done():
				}
			}
		}()
	}
}

// deliver turns one event into an async call.
func (t *Triggers) deliver(ctx context.Context, s *subscription, d queue.Delivery) {
	tr := s.def
	m := d.Message()
	ev, err := cloudevent.FromHTTP(m.Header, m.Data)
	if err != nil {
		// Not a CloudEvent (a plain NATS message): wrap it in one.
		id := m.ID
		if id == "" {
			id = strconv.FormatInt(d.Enqueued().UnixNano(), 10)
		}
		ev = cloudevent.Event{ID: id, Source: "nats:" + m.Subject, SpecVersion: cloudevent.SpecVersion,
			Type: "io.wisp.nats.message", Subject: m.Subject, Time: d.Enqueued(), Data: m.Data,
			DataContentType: m.Header.Get("Content-Type")}
	}
	if !cloudevent.Matches(ev, s.filters) {
		t.deliveries.WithLabelValues(tr.Name, "filtered").Inc()
		_ = d.Ack()
		return
	}
	h := http.Header{}
	body := ev.ToHTTP(h)
	if tr.Tag != "" {
		h.Set("Wisp-Version", tr.Tag)
	}
	call := &core.Call{Service: tr.Service, Origin: "trigger:" + tr.Name,
		Request:        core.CallRequest{Method: http.MethodPost, Path: tr.Path, Header: h, Body: body},
		IdempotencyKey: "trigger:" + tr.Name + ":" + tr.CreatedAt.Format(time.RFC3339Nano) + ":" + cloudevent.DedupKey(ev)}
	_, dup, err := t.calls.SubmitCall(ctx, call)
	switch {
	case errors.Is(err, core.ErrNotFound):
		t.log.Warn("a trigger's service is gone; dropping its event", "trigger", tr.Name, "service", tr.Service)
		t.deliveries.WithLabelValues(tr.Name, "failed").Inc()
		_ = d.Ack()
	case err != nil:
		if ctx.Err() == nil {
			t.log.Warn("deliver an event", "trigger", tr.Name, "err", err)
		}
		_ = d.Retry(time.Second)
	default:
		result := "delivered"
		if dup {
			result = "duplicate"
		}
		t.deliveries.WithLabelValues(tr.Name, result).Inc()
		_ = d.Ack()
	}
}
