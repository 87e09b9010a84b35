package nats

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/queue"
)

func open(t *testing.T, dir string) *Queue {
	t.Helper()
	q, err := Open(t.Context(), Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestWorkQueue(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir)
	ctx := t.Context()
	for i, id := range []string{"a", "b", "a"} {
		dup, err := q.Enqueue(ctx, "hello", queue.Message{ID: id, Header: http.Header{"X-Id": {id}}, Data: []byte("call " + id)})
		if err != nil {
			t.Fatal(err)
		}
		if want := i == 2; dup != want {
			t.Fatalf("enqueue #%d (%s): got duplicate %v, want %v", i, id, dup, want)
		}
	}
	n, oldest, err := q.Depth(ctx, "hello")
	if err != nil || n != 2 || time.Since(oldest) > time.Minute {
		t.Fatalf("depth: got %d, %v, %v; want 2, recent, nil", n, oldest, err)
	}
	// A restart keeps what was stored.
	q.Close()
	q = open(t, dir)
	defer q.Close()

	cctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	seen := map[string][]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := q.Consume(cctx, "hello", 4, func(_ context.Context, d queue.Delivery) {
			m := d.Message()
			mu.Lock()
			seen[string(m.Data)] = append(seen[string(m.Data)], d.Attempt())
			total := len(seen["call a"]) + len(seen["call b"])
			mu.Unlock()
			if m.Header.Get("X-Id") == "" || m.ID == "" {
				t.Errorf("delivery lost its header or ID: %+v", m)
			}
			if string(m.Data) == "call a" && d.Attempt() == 1 {
				_ = d.Retry(10 * time.Millisecond)
				return
			}
			_ = d.Ack()
			if total == 3 {
				cancel()
			}
		})
		if err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("consume did not get three deliveries in 20s")
	}
	mu.Lock()
	defer mu.Unlock()
	if got := seen["call a"]; len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("call a attempts: got %v, want [1 2]", got)
	}
	if got := seen["call b"]; len(got) != 1 {
		t.Errorf("call b attempts: got %v, want [1]", got)
	}
	// An ack is not waited for (no round trip per message): the server
	// removes the message soon after, not at once.
	for deadline := time.Now().Add(5 * time.Second); ; {
		n, _, err := q.Depth(ctx, "hello")
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("depth 5 s after the acks: got %d, %v; want 0", n, err)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := q.Enqueue(ctx, "bad key", queue.Message{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("enqueue with a bad key: got %v, want invalid", err)
	}
}

func TestTable(t *testing.T) {
	q := open(t, t.TempDir())
	defer q.Close()
	ctx := t.Context()
	tb, err := q.Table(ctx, "calls", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tb.Get(ctx, "hello.x"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("get missing: got %v, want not found", err)
	}
	rev, err := tb.Create(ctx, "hello.x", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Create(ctx, "hello.x", []byte("2")); !errors.Is(err, core.ErrAlreadyExists) {
		t.Fatalf("create twice: got %v, want already exists", err)
	}
	if _, err := tb.Update(ctx, "hello.x", []byte("2"), rev+10); !errors.Is(err, core.ErrPreconditionFailed) {
		t.Fatalf("stale update: got %v, want precondition failed", err)
	}
	if _, err := tb.Update(ctx, "hello.x", []byte("2"), rev); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Put(ctx, "other.y", []byte("3")); err != nil {
		t.Fatal(err)
	}
	keys, err := tb.Keys(ctx, "hello.*")
	if err != nil || len(keys) != 1 || keys[0] != "hello.x" {
		t.Fatalf("keys hello.*: got %v, %v", keys, err)
	}
	if keys, err := tb.Keys(ctx, "none.*"); err != nil || len(keys) != 0 {
		t.Fatalf("keys none.*: got %v, %v", keys, err)
	}
	if k, v, _, err := tb.Find(ctx, "*.x"); err != nil || k != "hello.x" || string(v) != "2" {
		t.Fatalf("find *.x: got %q %q %v, want hello.x 2", k, v, err)
	}
	if _, _, _, err := tb.Find(ctx, "*.none"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("find *.none: got %v, want not found", err)
	}
	if err := tb.Delete(ctx, "hello.x"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tb.Get(ctx, "hello.x"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("get deleted: got %v, want not found", err)
	}
	if _, _, _, err := tb.Find(ctx, "*.x"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("find deleted: got %v, want not found", err)
	}
}

func TestSubscribe(t *testing.T) {
	q := open(t, t.TempDir())
	defer q.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	got := make(chan string, 10)
	since := time.Now()
	for _, p := range []string{"orders.created", "orders.>"} {
		if err := q.Cover(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	sub := func(name, pattern string) {
		go func() {
			_ = q.Subscribe(ctx, name, pattern, since, func(_ context.Context, d queue.Delivery) {
				got <- name + ":" + string(d.Message().Data)
				_ = d.Ack()
			})
		}()
	}
	if err := q.Publish(ctx, "orders.created", queue.Message{ID: "e1", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if err := q.Publish(ctx, "orders.created", queue.Message{ID: "e1", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if err := q.Publish(ctx, "orders.paid.eu", queue.Message{ID: "e2", Data: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := q.Publish(ctx, "nobody.listens", queue.Message{Data: []byte("3")}); err != nil {
		t.Fatalf("publish with no subscription: %v", err)
	}
	// Subscriptions made after the events still get them: they start at since.
	sub("narrow", "orders.created")
	sub("wide", "orders.>")
	want := map[string]bool{"narrow:1": true, "wide:1": true, "wide:2": true}
	for len(want) > 0 {
		select {
		case g := <-got:
			if !want[g] {
				t.Fatalf("unexpected delivery %s (duplicate or misrouted)", g)
			}
			delete(want, g)
		case <-ctx.Done():
			t.Fatalf("missing deliveries: %v", want)
		}
	}
	select {
	case g := <-got:
		t.Fatalf("unexpected extra delivery %s", g)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestCheckSubject(t *testing.T) {
	for _, tc := range []struct {
		s    string
		wild bool
		ok   bool
	}{
		{"orders.created", false, true},
		{"orders.>", true, true},
		{"orders.*.eu", true, true},
		{"orders.>", false, false},
		{">", true, false},
		{"*.created", true, false},
		{"wisp.work.x", false, false},
		{"$JS.API", false, false},
		{"orders..x", false, false},
		{"orders.>.x", true, false},
		{"orders.a*", true, false},
		{"orders created", false, false},
		{"", false, false},
	} {
		err := queue.CheckSubject(tc.s, tc.wild)
		if (err == nil) != tc.ok {
			t.Errorf("CheckSubject(%q, %v): got %v, want ok=%v", tc.s, tc.wild, err, tc.ok)
		}
	}
}

func TestSubjectCovers(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"orders.>", "orders.created", true},
		{"orders.>", "orders.*", true},
		{"orders.>", "orders.>", true},
		{"orders.*", "orders.created", true},
		{"orders.*", "orders.>", false},
		{"orders.created", "orders.*", false},
		{"orders.>", "orders", false},
		{"orders.*", "orders.a.b", false},
		{"a.b", "a.b", true},
	} {
		if got := subjectCovers(tc.a, tc.b); got != tc.want {
			t.Errorf("subjectCovers(%q, %q): got %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// A busy --nats-listen port fails the embedded server's start at once,
// naming the flag (it used to wait out a 30s readiness timeout).
func TestEmbeddedListenBusy(t *testing.T) {
	busy, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	start := time.Now()
	q, err := Open(t.Context(), Config{DataDir: t.TempDir(), Listen: busy.Addr().String(), ListenToken: "s3cret"}, slog.New(slog.DiscardHandler))
	if err == nil {
		q.Close()
		t.Fatal("the embedded server started on a busy port")
	}
	if !strings.Contains(err.Error(), "--nats-listen") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("got %v, want it to name --nats-listen and the busy address", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to fail", d)
	}
}

// TestOpenWaitsForTheServer: a replica that starts before its NATS server
// (the Kubernetes manifests start both at once) waits for it, saying so,
// instead of exiting; a server that refuses the token fails at once; and
// the wait is bounded.
func TestOpenWaitsForTheServer(t *testing.T) {
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there until the server starts
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	type opened struct {
		q   *Queue
		err error
	}
	done := make(chan opened, 1)
	go func() {
		q, err := Open(t.Context(), Config{URL: "nats://" + addr, Token: "s3cret-s3cret-s3cret"}, logger)
		done <- opened{q, err}
	}()
	time.Sleep(1200 * time.Millisecond)
	select {
	case o := <-done:
		t.Fatalf("Open returned before any server was up: %v", o.err)
	default:
	}
	srv, err := StartServer(ServerConfig{StoreDir: t.TempDir(), Listen: addr, Token: "s3cret-s3cret-s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("Open after the server came up: %v", o.err)
		}
		o.q.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("Open did not connect within 10s of the server coming up")
	}
	mu.Lock()
	got := logs.String()
	mu.Unlock()
	if !strings.Contains(got, "NATS does not answer yet") || !strings.Contains(got, "connected to NATS") {
		t.Errorf("the wait was not logged:\n%s", got)
	}

	began := time.Now()
	if q, err := Open(t.Context(), Config{URL: "nats://" + addr, Token: "wrong-wrong-wrong-wrong"}, slog.New(slog.DiscardHandler)); err == nil {
		q.Close()
		t.Fatal("a wrong token connected")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") || time.Since(began) > 3*time.Second {
		t.Errorf("wrong token: %v after %s, want an authorization error at once", err, time.Since(began))
	}

	srv.Shutdown()
	began = time.Now()
	_, err = Open(t.Context(), Config{URL: "nats://" + addr, Token: "x", ConnectWait: time.Second}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "no NATS server answered at nats://"+addr+" within 1s") {
		t.Errorf("nothing there: %v, want the bounded wait named", err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("the wait of 1s took %s", d)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRedactURL(t *testing.T) {
	if got := redactURL("nats://u:pw@a:4222, nats://b:4222"); got != "nats://a:4222, nats://b:4222" {
		t.Errorf("redactURL: %q", got)
	}
}
