package cli_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/cli"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/queue"
	natsq "github.com/wisp-run/wisp/internal/queue/nats"
)

const natsToken = "0123456789abcdef-test"

// logLines is stderr for a command that runs while the test reads it: slog
// writes each record in one Write, so a Write is a line.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	l <- string(p)
	return len(p), nil
}

// natsServer is "wisp nats" running in-process.
type natsServer struct {
	url, monitor string
	lines        logLines
	log          strings.Builder // the lines read so far
	stop         func() int
}

// stderr is what the command wrote so far.
func (s *natsServer) stderr() string {
	for {
		select {
		case l := <-s.lines:
			s.log.WriteString(l)
		default:
			return s.log.String()
		}
	}
}

var (
	urlAttr     = regexp.MustCompile(`url=(nats://\S+)`)
	monitorAttr = regexp.MustCompile(`monitor=(http://\S+)`)
)

// startNATS runs wisp nats with args (and WISP_NATS_TOKEN set) until stop,
// which returns its exit code; it waits for the line that says where it
// listens.
func startNATS(t *testing.T, args ...string) *natsServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	s := &natsServer{lines: make(logLines, 1000)}
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, append([]string{"nats", "--listen", "127.0.0.1:0"}, args...), &bytes.Buffer{}, s.lines, natsEnv)
	}()
	var once sync.Once
	code := -1
	s.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Error("wisp nats did not stop within 30s of its context's end")
			}
		})
		return code
	}
	t.Cleanup(func() { s.stop() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := urlAttr.FindStringSubmatch(s.stderr()); m != nil {
			s.url = m[1]
			break
		}
		select {
		case c := <-done:
			t.Fatalf("wisp nats ended with %d: %s", c, s.stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("wisp nats logged no address in 20s: %s", s.stderr())
		}
	}
	if m := monitorAttr.FindStringSubmatch(s.stderr()); m != nil {
		s.monitor = m[1]
	}
	return s
}

func natsEnv(k string) string {
	if k == config.EnvNATSToken {
		return natsToken
	}
	return ""
}

func openQueue(t *testing.T, url, token string) (*natsq.Queue, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return natsq.Open(ctx, natsq.Config{URL: url, Token: token}, slog.New(slog.DiscardHandler))
}

// consumeOne takes the next message of key from q and acks it.
func consumeOne(t *testing.T, q *natsq.Queue, key string) queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	got := make(chan queue.Message, 1)
	go func() {
		_ = q.Consume(ctx, key, 1, func(_ context.Context, d queue.Delivery) {
			_ = d.Ack()
			select {
			case got <- d.Message():
			default:
			}
			cancel()
		})
	}()
	select {
	case m := <-got:
		return m
	case <-ctx.Done():
		t.Fatalf("no message of %s within 20s", key)
		return queue.Message{}
	}
}

func TestNATSServe(t *testing.T) {
	store := filepath.Join(t.TempDir(), "js")
	s := startNATS(t, "--store-dir", store)
	if !strings.Contains(s.stderr(), "jetstream_dir="+store) {
		t.Errorf("the log does not say where JetStream stores: %s", s.stderr())
	}

	q, err := openQueue(t, s.url, natsToken)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, id := range []string{"one", "two"} {
		if _, err := q.Enqueue(ctx, "hello", queue.Message{ID: id, Data: []byte("call " + id)}); err != nil {
			t.Fatal(err)
		}
	}
	if m := consumeOne(t, q, "hello"); string(m.Data) != "call one" {
		t.Fatalf("consumed %q, want call one", m.Data)
	}
	q.Close()

	for _, tok := range []string{"", "wrong-token-0123456789"} {
		if q, err := openQueue(t, s.url, tok); err == nil {
			q.Close()
			t.Fatalf("a client with token %q was let in", tok)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("token %q: got %v, want an authorization error", tok, err)
		}
	}

	// The second message survives a restart on the same store dir.
	if code := s.stop(); code != 0 {
		t.Fatalf("wisp nats exited %d after its context ended: %s", code, s.stderr())
	}
	if !strings.Contains(s.stderr(), "msg=stopped") {
		t.Errorf("no stopped line: %s", s.stderr())
	}
	s = startNATS(t, "--store-dir", store)
	q, err = openQueue(t, s.url, natsToken)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n, _, err := q.Depth(ctx, "hello"); err != nil || n != 1 {
		t.Fatalf("depth after the restart: %d, %v; want 1", n, err)
	}
	if m := consumeOne(t, q, "hello"); string(m.Data) != "call two" || m.ID != "two" {
		t.Fatalf("after the restart consumed %q (ID %q), want call two", m.Data, m.ID)
	}
}

func TestNATSDefaultStoreDir(t *testing.T) {
	dataDir := t.TempDir()
	startNATS(t, "--data-dir", dataDir)
	if _, err := os.Stat(filepath.Join(dataDir, "nats", "jetstream")); err != nil {
		t.Fatalf("JetStream's files are not in <data-dir>/nats: %v", err)
	}
}

func TestNATSMonitor(t *testing.T) {
	s := startNATS(t, "--store-dir", t.TempDir(), "--monitor", "127.0.0.1:0")
	if s.monitor == "" {
		t.Fatalf("the log names no monitoring address: %s", s.stderr())
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.monitor, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasSuffix(s.monitor, "/healthz") {
		t.Fatalf("GET %s: %d, want 200", s.monitor, resp.StatusCode)
	}
}

func TestNATSBadInput(t *testing.T) {
	busy, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	for _, c := range []struct {
		name  string
		args  []string
		token string
		code  int
		want  []string
	}{
		{"no token", nil, "", 2, []string{"--token", config.EnvNATSToken, "openssl rand"}},
		{"short token", []string{"--token", "short"}, "", 2, []string{"--token", "16 characters"}},
		{"listen not host:port", []string{"--listen", "4222"}, natsToken, 2, []string{`--listen "4222"`, "host:port"}},
		{"listen bad port", []string{"--listen", "127.0.0.1:70000"}, natsToken, 2, []string{"--listen", "bad port"}},
		{"monitor not host:port", []string{"--monitor", "localhost"}, natsToken, 2, []string{`--monitor "localhost"`, "host:port"}},
		{"listen port in use", []string{"--listen", busy.Addr().String()}, natsToken, 1, []string{"--listen", "address already in use"}},
		{"monitor port in use", []string{"--listen", "127.0.0.1:0", "--monitor", busy.Addr().String()}, natsToken, 1, []string{"--monitor", "address already in use"}},
		{"store dir not a dir", []string{"--listen", "127.0.0.1:0", "--store-dir", filepath.Join(file, "js")}, natsToken, 1, []string{"--store-dir", "not a directory"}},
		{"bad log level", []string{"--log-level", "loud"}, natsToken, 2, []string{"--log-level"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"nats", "--store-dir", store}, c.args...)
			var out, errb bytes.Buffer
			start := time.Now()
			code := cli.Run(t.Context(), args, &out, &errb, func(k string) string {
				if k == config.EnvNATSToken {
					return c.token
				}
				return ""
			})
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, c.code, errb.String())
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s to fail", d)
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "Error: ") {
				t.Fatalf("want one error line, got: %s", errb.String())
			}
			for _, w := range c.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("error %q does not say %q", lines[0], w)
				}
			}
		})
	}
}
