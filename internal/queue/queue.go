// Package queue defines the port through which Wisp keeps work that outlives
// a request: durable work queues (async calls), tables of records (a call's
// state, triggers, schedules) and event subjects that outside producers
// publish on. The implementation is queue/nats: NATS JetStream, embedded in
// the daemon by default or an existing cluster. NATS types never leave that
// adapter, so the features that use the queue (internal/async) do not import
// NATS.
//
// Every method returns errors wrapping a core kind: core.ErrNotFound for a
// missing record, core.ErrAlreadyExists when Create finds one,
// core.ErrPreconditionFailed when Update's revision is stale, and
// core.ErrUnavailable when the message system cannot be reached.
package queue

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Queue is the port.
type Queue interface {
	// Enqueue stores msg durably in the work queue of key (a service name)
	// and returns once it is stored. A message whose ID was enqueued within
	// the deduplication window (DedupWindow) is not stored again;
	// duplicate reports that.
	Enqueue(ctx context.Context, key string, msg Message) (duplicate bool, err error)
	// Consume hands every message of key's work queue to h, at most limit
	// at a time, until ctx ends; a message that h neither acks nor retries
	// within AckWait (say the process died) is handed out again. Several
	// consumers of one key, in one process or several, share its messages.
	Consume(ctx context.Context, key string, limit int, h Handler) error
	// Depth reports how many messages of key wait or run, and when the
	// oldest of them was enqueued (zero when none).
	Depth(ctx context.Context, key string) (n int, oldest time.Time, err error)
	// Table opens (creating if needed) the table name whose records expire
	// ttl after their last write (0: never).
	Table(ctx context.Context, name string, ttl time.Duration) (Table, error)
	// Publish sends an event on subject, stored if a subscription's
	// subjects cover it. msg.ID deduplicates like Enqueue's.
	Publish(ctx context.Context, subject string, msg Message) error
	// Cover makes events published on subjects matching pattern (NATS
	// syntax: tokens separated by '.', '*' one token, '>' the rest) be
	// stored from now on, for subscriptions to come.
	Cover(ctx context.Context, pattern string) error
	// Subscribe delivers, until ctx ends, every stored event published on
	// subjects matching pattern since since (when the subscription named
	// name is first made; later it goes on where it stopped), at least once,
	// to h. The subscription is durable: events published while nobody
	// consumes wait for it.
	Subscribe(ctx context.Context, name, pattern string, since time.Time, h Handler) error
	// Unsubscribe deletes the durable subscription name.
	Unsubscribe(ctx context.Context, name string) error
}

// DedupWindow is how long a message ID is remembered by Enqueue and Publish.
const DedupWindow = 10 * time.Minute

// AckWait is how long a handed-out message may go without an Ack, Retry or
// Progress before it is handed out again.
const AckWait = 15 * time.Second

// Message is what Enqueue and Publish store.
type Message struct {
	ID      string // deduplication ID; empty: none
	Subject string // set on delivery: the subject it was published on
	Header  http.Header
	Data    []byte
}

// Handler processes one delivered message. It must end the delivery with
// Ack, Retry or Drop (or let AckWait expire, which redelivers it).
type Handler func(ctx context.Context, d Delivery)

// Delivery is one handing-out of a message.
type Delivery interface {
	Message() Message
	// Attempt counts the deliveries of this message, from 1.
	Attempt() int
	// Enqueued is when the message was stored.
	Enqueued() time.Time
	// Ack removes the message: it was processed.
	Ack() error
	// Retry hands the message out again after delay.
	Retry(delay time.Duration) error
	// Progress restarts the AckWait clock: processing goes on.
	Progress() error
	// Drop removes the message without processing it again.
	Drop() error
}

// Table is a set of records by key with a revision each, for
// compare-and-swap writes. Keys are tokens of letters, digits, '-', '_' and
// '=' separated by '.'.
type Table interface {
	// Get returns the record and its revision, or core.ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	// Create writes a record that must not exist (core.ErrAlreadyExists).
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update writes a record whose revision is still rev
	// (core.ErrPreconditionFailed otherwise).
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Put writes a record whatever its revision.
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	// Delete removes a record; a missing one is not an error.
	Delete(ctx context.Context, key string) error
	// Find returns the record of the key matching pattern (as Subscribe's;
	// the latest written when several do) without listing keys, or
	// core.ErrNotFound.
	Find(ctx context.Context, pattern string) (key string, value []byte, rev uint64, err error)
	// Keys lists the keys matching pattern (as Subscribe's), in no order.
	Keys(ctx context.Context, pattern string) ([]string, error)
}

// CheckSubject validates an event subject (a pattern when wildcards is
// true): tokens of printable characters separated by '.', not in Wisp's
// own namespace (wisp.…, $…), and starting with a literal token so that it
// cannot cover Wisp's own subjects.
func CheckSubject(s string, wildcards bool) error {
	what := "subject"
	if wildcards {
		what = "subject pattern"
	}
	if s == "" {
		return core.Invalidf("subject", "the %s is empty", what)
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "" {
			return core.Invalidf("subject", "%s %q has an empty token (two dots, or a dot at an end)", what, s)
		}
		if strings.ContainsAny(t, " \t\r\n") {
			return core.Invalidf("subject", "%s %q contains white space", what, s)
		}
		if t == "*" || t == ">" {
			if !wildcards {
				return core.Invalidf("subject", "subject %q contains a wildcard; publish on a literal subject", s)
			}
			if i == 0 {
				return core.Invalidf("subject", "%s %q starts with a wildcard; start with a literal token such as orders.>", what, s)
			}
			if t == ">" && i != len(toks)-1 {
				return core.Invalidf("subject", "%s %q has '>' before its last token", what, s)
			}
		} else if strings.ContainsAny(t, "*>") {
			return core.Invalidf("subject", "%s %q: a wildcard must be a whole token", what, s)
		}
	}
	if toks[0] == "wisp" || strings.HasPrefix(toks[0], "$") || strings.HasPrefix(toks[0], "_") {
		return core.Invalidf("subject", "%s %q is in a reserved namespace (wisp., $…, _…); choose another first token", what, s)
	}
	return nil
}
