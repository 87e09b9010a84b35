// Package nats implements the queue port on NATS JetStream: a server
// embedded in the daemon (file storage under the data dir) by default, or an
// existing NATS cluster given by URL when several Wisp replicas share one.
//
// Layout on the server:
//   - stream WISP_WORK, subjects wisp.work.<key>, work-queue retention: one
//     durable pull consumer per key (wisp-work-<key>) that every replica
//     shares;
//   - stream WISP_EVENTS, limits retention (a day, 1 GiB): its subjects are
//     the smallest set covering every subscription's pattern, and each
//     subscription is a durable consumer filtered on its pattern;
//   - one key-value bucket per table (WISP_<name>).
package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/queue"
)

var _ queue.Queue = (*Queue)(nil)

// Names on the server.
const (
	workStream    = "WISP_WORK"
	workPrefix    = "wisp.work."
	eventStream   = "WISP_EVENTS"
	eventsMaxAge  = 24 * time.Hour
	eventsMaxSize = 1 << 30
	// MaxPayload is the largest message: an async call's request with its
	// body, a CloudEvent with its data.
	MaxPayload = 8 << 20
)

// Config configures the queue.
type Config struct {
	// URL of an existing NATS server or cluster ("nats://host:4222", a
	// comma-separated list for a cluster). Empty: embed a server.
	URL string
	// Credentials for URL: a .creds file, a token, or a user and password.
	CredsFile, Token, User, Password string
	// DataDir holds the embedded server's JetStream files (DataDir/nats).
	DataDir string
	// ConnectWait bounds how long Open keeps trying to reach URL while
	// nothing answers there yet (a replica started before its NATS server,
	// as the Kubernetes manifests start them). Zero: DefaultConnectWait.
	ConnectWait time.Duration
	// Listen, when set, opens the embedded server's client port there
	// ("127.0.0.1:4222") so outside producers can publish events; it then
	// requires ListenToken from clients. Empty: no port at all (in-process
	// connections only).
	Listen, ListenToken string
}

// Validate checks the settings.
func (c Config) Validate() error {
	if c.URL == "" && c.DataDir == "" {
		return errors.New("nats: an embedded server needs a data dir")
	}
	if c.URL != "" && c.Listen != "" {
		return errors.New("nats: --nats-listen opens the embedded server's port; it cannot be used with --nats-url")
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("nats: --nats-listen %q: want host:port: %w", c.Listen, err)
		}
		if c.ListenToken == "" {
			return errors.New("nats: --nats-listen needs a token so that only your producers can publish: set WISP_NATS_TOKEN")
		}
	}
	return nil
}

// Queue is a connection to JetStream.
type Queue struct {
	srv *Server // nil when connected to a cluster
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger

	mu      sync.Mutex // serialises changes of the events stream: its subjects and its consumers
	work    jetstream.Stream
	tables  map[string]table
	tableMu sync.Mutex
}

// Open starts the embedded server (or connects to cfg.URL) and makes sure
// the work stream exists.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := &Queue{log: logger.With("component", "nats"), tables: map[string]table{}}
	var err error
	if cfg.URL == "" {
		if q.srv, err = startServer(cfg); err != nil {
			return nil, err
		}
		opts := []nats.Option{nats.InProcessServer(q.srv.srv), nats.Name("wisp"), nats.MaxReconnects(-1)}
		if cfg.ListenToken != "" {
			opts = append(opts, nats.Token(cfg.ListenToken))
		}
		q.nc, err = nats.Connect("", opts...)
	} else {
		opts := []nats.Option{nats.Name("wisp"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
		switch {
		case cfg.CredsFile != "":
			opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		case cfg.Token != "":
			opts = append(opts, nats.Token(cfg.Token))
		case cfg.User != "":
			opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
		}
		q.nc, err = connect(ctx, cfg, opts, q.log)
	}
	if err != nil {
		q.Close()
		return nil, core.Unavailablef("connect to NATS: %v", err)
	}
	if q.js, err = jetstream.New(q.nc); err != nil {
		q.Close()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	q.work, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        workStream,
		Description: "Wisp's work queues: async calls by service",
		Subjects:    []string{workPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  queue.DedupWindow,
		MaxMsgSize:  MaxPayload,
	})
	if err != nil {
		q.Close()
		return nil, unavailable("create the work stream", err)
	}
	return q, nil
}

// DefaultConnectWait is how long Open waits for an existing NATS server
// to answer.
const DefaultConnectWait = time.Minute

// connect dials cfg.URL, trying again (every 0.5 s, then up to every 5 s)
// while the server does not answer, for at most cfg.ConnectWait, and
// logging each failure so the wait is not silent. What a server that
// answers refuses (a bad token) fails at once: waiting would not mend it.
func connect(ctx context.Context, cfg Config, opts []nats.Option, log *slog.Logger) (*nats.Conn, error) {
	wait := cfg.ConnectWait
	if wait <= 0 {
		wait = DefaultConnectWait
	}
	deadline := time.Now().Add(wait)
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(cfg.URL, opts...)
		if err == nil {
			if attempt > 1 {
				log.Info("connected to NATS", "url", redactURL(cfg.URL), "attempts", attempt)
			}
			return nc, nil
		}
		if !unreachable(err) {
			return nil, err
		}
		if time.Now().Add(backoff).After(deadline) {
			return nil, fmt.Errorf("no NATS server answered at %s within %s: %w", redactURL(cfg.URL), wait, err)
		}
		log.Warn("NATS does not answer yet; trying again", "url", redactURL(cfg.URL), "attempt", attempt, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// unreachable reports a connection error that a server coming up would
// mend: nothing listening, a connection cut during the handshake (a proxy
// in front of a server not up yet), a timeout.
func unreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, nats.ErrTimeout) || errors.As(err, &ne)
}

// redactURL drops any user and password from a NATS URL (a list of them)
// for logs.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func startServer(cfg Config) (*Server, error) {
	srv, err := StartServer(ServerConfig{StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: cfg.Listen, Token: cfg.ListenToken})
	var se *SettingError
	if errors.As(err, &se) && se.Setting == SettingListen {
		return nil, fmt.Errorf("nats: --nats-listen %q: %w", cfg.Listen, se.Err)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: embedded server: %w", err)
	}
	return srv, nil
}

// ClientURL is the embedded server's client address when it listens, "" otherwise.
func (q *Queue) ClientURL() string {
	if q.srv == nil {
		return ""
	}
	return q.srv.ClientURL()
}

// Close drains the connection and stops the embedded server.
func (q *Queue) Close() {
	if q.nc != nil {
		_ = q.nc.Drain()
		q.nc.Close()
	}
	if q.srv != nil {
		q.srv.Shutdown()
	}
}

// Healthy reports whether the connection is up.
func (q *Queue) Healthy() error {
	if !q.nc.IsConnected() {
		return core.Unavailablef("NATS is not connected (%s)", q.nc.Status())
	}
	return nil
}

func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return &core.Error{Kind: core.ErrUnavailable, Message: fmt.Sprintf("%s: NATS: %v", what, err)}
}

// Enqueue implements queue.Queue.
func (q *Queue) Enqueue(ctx context.Context, key string, msg queue.Message) (bool, error) {
	if err := checkToken(key); err != nil {
		return false, err
	}
	return q.publish(ctx, workPrefix+key, msg)
}

func (q *Queue) publish(ctx context.Context, subject string, msg queue.Message) (bool, error) {
	m := &nats.Msg{Subject: subject, Header: nats.Header(msg.Header), Data: msg.Data}
	var opts []jetstream.PublishOpt
	if msg.ID != "" {
		opts = append(opts, jetstream.WithMsgID(msg.ID))
	}
	ack, err := q.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			return false, errNoStream
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return false, core.TooLargef("the message is %d bytes; at most %d are accepted", len(msg.Data), MaxPayload)
		}
		return false, unavailable("store the message", err)
	}
	return ack.Duplicate, nil
}

// maxPending bounds the messages of one consumer handed out and not yet
// acked, those waiting for a retry included.
const maxPending = 100_000

// errNoStream: no stream stores the subject.
var errNoStream = &core.Error{Kind: core.ErrUnavailable, Message: "no stream stores the subject"}

func consumerName(prefix, key string) string { return prefix + key }

// Consume implements queue.Queue.
func (q *Queue) Consume(ctx context.Context, key string, limit int, h queue.Handler) error {
	if err := checkToken(key); err != nil {
		return err
	}
	if limit < 1 {
		limit = 1
	}
	cons, err := q.work.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName("wisp-work-", key),
		FilterSubject: workPrefix + key,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       queue.AckWait,
		MaxDeliver:    -1,
		// Calls waiting for a retry stay pending; workers bound what runs.
		MaxAckPending: maxPending,
	})
	if err != nil {
		return unavailable("create the consumer of "+key, err)
	}
	return q.consume(ctx, cons, limit, h)
}

// consume runs h on every message of cons with limit workers until ctx
// ends, and waits for running handlers before it returns. Each worker asks
// for one message only when it is free: a message never waits in a
// client-side buffer, where its AckWait would run out unseen.
func (q *Queue) consume(ctx context.Context, cons jetstream.Consumer, limit int, h queue.Handler) error {
	var wg sync.WaitGroup
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				m, err := cons.Next(jetstream.FetchContext(fctx))
				cancel()
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
						q.log.Warn("fetch a message", "err", err)
						select {
						case <-time.After(time.Second):
						case <-ctx.Done():
						}
					}
					continue
				}
				h(ctx, &delivery{m: m})
			}
		}()
	}
	wg.Wait()
	return nil
}

// Depth implements queue.Queue.
func (q *Queue) Depth(ctx context.Context, key string) (int, time.Time, error) {
	if err := checkToken(key); err != nil {
		return 0, time.Time{}, err
	}
	m, err := q.work.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(workPrefix+key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, unavailable("read the queue of "+key, err)
	}
	info, err := q.work.Info(ctx, jetstream.WithSubjectFilter(workPrefix+key))
	if err != nil {
		return 0, time.Time{}, unavailable("read the queue of "+key, err)
	}
	return int(info.State.Subjects[workPrefix+key]), m.Time, nil //nolint:gosec // a count of messages
}

type delivery struct {
	m  jetstream.Msg
	md *jetstream.MsgMetadata
}

func (d *delivery) meta() *jetstream.MsgMetadata {
	if d.md == nil {
		md, err := d.m.Metadata()
		if err != nil {
			md = &jetstream.MsgMetadata{NumDelivered: 1}
		}
		d.md = md
	}
	return d.md
}

func (d *delivery) Message() queue.Message {
	return queue.Message{ID: d.m.Headers().Get(jetstream.MsgIDHeader), Subject: d.m.Subject(), Header: http.Header(d.m.Headers()), Data: d.m.Data()}
}
func (d *delivery) Attempt() int        { return int(d.meta().NumDelivered) } //nolint:gosec // a small count
func (d *delivery) Enqueued() time.Time { return d.meta().Timestamp }
func (d *delivery) Ack() error          { return d.m.Ack() }
func (d *delivery) Retry(delay time.Duration) error {
	return d.m.NakWithDelay(delay)
}
func (d *delivery) Progress() error { return d.m.InProgress() }
func (d *delivery) Drop() error     { return d.m.Term() }

// Publish implements queue.Queue.
func (q *Queue) Publish(ctx context.Context, subject string, msg queue.Message) error {
	if err := queue.CheckSubject(subject, false); err != nil {
		return err
	}
	_, err := q.publish(ctx, subject, msg)
	if errors.Is(err, errNoStream) {
		// No subscription covers the subject: nobody wants the event.
		return nil
	}
	return err
}

// Subscribe implements queue.Queue.
func (q *Queue) Subscribe(ctx context.Context, name, pattern string, since time.Time, h queue.Handler) error {
	if err := checkToken(name); err != nil {
		return err
	}
	if err := queue.CheckSubject(pattern, true); err != nil {
		return err
	}
	// The events stream's update (a new pattern) and a consumer's creation
	// never overlap: nats-server's file store races between the two
	// (UpdateConfig against ConsumerStore, seen by the race detector).
	q.mu.Lock()
	st, err := q.coverEventsLocked(ctx, pattern)
	if err != nil {
		q.mu.Unlock()
		return err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName("wisp-sub-", name),
		FilterSubject: pattern,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       queue.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 256,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &since,
	})
	q.mu.Unlock()
	if err != nil {
		return unavailable("create the subscription "+name, err)
	}
	return q.consume(ctx, cons, 16, h)
}

// Cover implements queue.Queue.
func (q *Queue) Cover(ctx context.Context, pattern string) error {
	if err := queue.CheckSubject(pattern, true); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	_, err := q.coverEventsLocked(ctx, pattern)
	return err
}

// Unsubscribe implements queue.Queue.
func (q *Queue) Unsubscribe(ctx context.Context, name string) error {
	q.mu.Lock() // as in Subscribe
	err := q.js.DeleteConsumer(ctx, eventStream, consumerName("wisp-sub-", name))
	q.mu.Unlock()
	if err == nil || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return unavailable("delete the subscription "+name, err)
}

// coverEventsLocked makes the events stream's subjects cover pattern.
// Caller holds q.mu.
func (q *Queue) coverEventsLocked(ctx context.Context, pattern string) (jetstream.Stream, error) {
	st, err := q.js.Stream(ctx, eventStream)
	var subjects []string
	if err == nil {
		subjects = st.CachedInfo().Config.Subjects
		for _, s := range subjects {
			if subjectCovers(s, pattern) {
				return st, nil
			}
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, unavailable("read the events stream", err)
	}
	keep := []string{pattern}
	for _, s := range subjects {
		if !subjectCovers(pattern, s) {
			keep = append(keep, s)
		}
	}
	st, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        eventStream,
		Description: "events that Wisp's triggers deliver",
		Subjects:    keep,
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      eventsMaxAge,
		MaxBytes:    eventsMaxSize,
		Duplicates:  queue.DedupWindow,
		MaxMsgSize:  MaxPayload,
	})
	if err != nil {
		return nil, unavailable("cover "+pattern+" in the events stream", err)
	}
	return st, nil
}

// subjectCovers reports whether every subject that b matches, a matches.
func subjectCovers(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, t := range at {
		if t == ">" {
			return i < len(bt)
		}
		if i >= len(bt) {
			return false
		}
		switch {
		case t == "*":
			if bt[i] == ">" {
				return false
			}
		case t != bt[i]:
			return false
		}
	}
	return len(at) == len(bt)
}

// checkToken validates a key used in a subject or a consumer name.
func checkToken(k string) error {
	if k == "" {
		return core.Invalidf("key", "the key is empty")
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return core.Invalidf("key", "key %q: only letters, digits, '-' and '_' are allowed", k)
		}
	}
	return nil
}
