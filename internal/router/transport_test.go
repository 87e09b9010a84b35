package router_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/router"
)

// rawBackend is an instance written at the socket, for the answers a
// well-behaved server does not give. serve handles one request read from br
// and reports whether to keep the connection.
type rawBackend struct {
	addr  string
	conns atomic.Int64 // connections accepted
}

func newRawBackend(t *testing.T, serve func(c net.Conn, req *http.Request) bool) *rawBackend {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if !serve(c, req) {
						return
					}
				}
			})
		}
	})
	return b
}

// answering is a rawBackend that writes answer to every request and, unless
// keep, then closes the connection without saying so.
func answering(t *testing.T, answer string, keep bool) *rawBackend {
	t.Helper()
	return newRawBackend(t, func(c net.Conn, _ *http.Request) bool {
		_, _ = io.WriteString(c, answer)
		return keep
	})
}

// countingServer is an httptest server that counts the connections it
// accepted and closed.
type countingServer struct {
	*httptest.Server
	opened, closed atomic.Int64
}

func newCountingServer(t *testing.T, h http.Handler) *countingServer {
	t.Helper()
	s := &countingServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *countingServer) addr() string { return strings.TrimPrefix(s.URL, "http://") }

// roundTrip sends method to addr+path through tr and returns the status and
// body read to its end.
func roundTrip(t *testing.T, tr http.RoundTripper, ctx context.Context, method, addr, path string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestTransportReusesOneConnection(t *testing.T) {
	s := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		case "/chunked":
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "b")
		default:
			_, _ = io.WriteString(w, "hello")
		}
	}))
	tr := router.NewTransport()
	defer tr.CloseIdleConnections()
	cases := []struct{ method, path, body string }{
		{"GET", "/", "hello"}, {"HEAD", "/", ""}, {"GET", "/204", ""}, {"GET", "/304", ""},
		{"OPTIONS", "/", "hello"}, {"GET", "/chunked", "ab"},
	}
	for range 10 {
		for _, tc := range cases {
			_, body, err := roundTrip(t, tr, t.Context(), tc.method, s.addr(), tc.path)
			if err != nil || body != tc.body {
				t.Fatalf("%s %s: got %q, %v; want %q", tc.method, tc.path, body, err, tc.body)
			}
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("%d connections for 60 sequential requests, want 1", n)
	}
}

// TestTransportRetriesAClosedIdleConnection: an instance that closes each
// connection after one response, without saying so, costs a new connection
// per request but never an error.
func TestTransportRetriesAClosedIdleConnection(t *testing.T) {
	b := answering(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false)
	tr := router.NewTransport()
	defer tr.CloseIdleConnections()
	for i := range 20 {
		if _, body, err := roundTrip(t, tr, t.Context(), "GET", b.addr, "/"); err != nil || body != "ok" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
	if n := b.conns.Load(); n != 20 {
		t.Fatalf("%d connections for 20 requests, want 20", n)
	}
}

// TestTransportRetryDials: when the instance has closed every idle
// connection (it restarted, say), the retry dials rather than taking the
// next stale one.
func TestTransportRetryDials(t *testing.T) {
	tr := router.NewTransport()
	defer tr.CloseIdleConnections()
	const n = 3
	s := heldOpen(t, tr, n) // three connections, idle once answered
	s.CloseClientConnections()
	waitUntil(t, "the server closed all three", func() bool { return s.closed.Load() == n })
	if _, body, err := roundTrip(t, tr, t.Context(), "GET", s.addr(), "/"); err != nil || body != "ok" {
		t.Fatalf("after the instance closed its connections: %q, %v", body, err)
	}
}

// heldOpen starts a server answering "ok" and sends it n GETs through tr that
// are all in flight at once (the server holds each until the last arrives),
// so tr has opened n connections to it; it returns once all n are answered.
func heldOpen(t *testing.T, tr http.RoundTripper, n int) *countingServer {
	t.Helper()
	var inflight sync.WaitGroup
	inflight.Add(n)
	gate := make(chan struct{})
	s := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			inflight.Done()
			<-gate
		}
		_, _ = io.WriteString(w, "ok")
	}))
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, body, err := roundTrip(t, tr, t.Context(), "GET", s.addr(), "/wait"); err != nil || body != "ok" {
				t.Errorf("got %q, %v", body, err)
			}
		})
	}
	inflight.Wait()
	close(gate)
	wg.Wait()
	return s
}

// TestTransportDoesNotReuse: a connection is closed, not kept, after a
// response that says Connection: close, one from HTTP/1.0, one followed by
// bytes nobody asked for, and a body closed before its end.
func TestTransportDoesNotReuse(t *testing.T) {
	cases := []struct {
		name, answer string
		readBody     bool
	}{
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
		{"unsolicited bytes", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n", true},
		{"body not read", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := answering(t, tc.answer, true)
			tr := router.NewTransport()
			defer tr.CloseIdleConnections()
			for i := range 3 {
				req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+b.addr+"/", nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if tc.readBody {
					if body, err := io.ReadAll(resp.Body); err != nil || string(body) != "ok" {
						t.Fatalf("request %d: body %q, %v", i, body, err)
					}
				}
				resp.Body.Close()
			}
			if n := b.conns.Load(); n != 3 {
				t.Fatalf("%d connections for 3 requests, want 3 (none reused)", n)
			}
		})
	}
}

// TestTransportFallback: requests with a body, other methods and upgrades
// go through the standard transport and work as they did.
func TestTransportFallback(t *testing.T) {
	s := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%s %s", r.Method, b)
	}))
	tr := router.NewTransport()
	defer tr.CloseIdleConnections()
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		big := strings.Repeat("x", 1<<20)
		req, _ := http.NewRequestWithContext(t.Context(), method, s.URL+"/", strings.NewReader(big))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != method+" "+big {
			t.Fatalf("%s: got %d bytes back, want %d", method, len(body), len(method)+1+len(big))
		}
	}
}

func TestTransportInterimResponses(t *testing.T) {
	b := answering(t, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true)
	tr := router.NewTransport()
	defer tr.CloseIdleConnections()
	var got []string
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
			return nil
		},
	})
	status, body, err := roundTrip(t, tr, ctx, "GET", b.addr, "/")
	if err != nil || status != 200 || body != "ok" {
		t.Fatalf("got %d %q %v, want 200 ok", status, body, err)
	}
	if want := "103 </style.css>; rel=preload"; len(got) != 1 || got[0] != want {
		t.Fatalf("interim responses %q, want [%q]", got, want)
	}
}

// TestTransportBadAnswers: what an instance can get wrong ends in an error
// that says so, never a hang, and the connection is not reused.
func TestTransportBadAnswers(t *testing.T) {
	cases := []struct {
		name, answer, want string
	}{
		{"huge headers", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 4096) + "\r\n\r\n", "too large"},
		{"upgrade nobody asked for", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n", "switched protocols"},
		{"endless 1xx", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 10), "too many 1xx"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", "malformed HTTP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := answering(t, tc.answer, true)
			tr := router.NewTransport()
			tr.MaxResponseHeaderBytes = 1024
			defer tr.CloseIdleConnections()
			_, _, err := roundTrip(t, tr, t.Context(), "GET", b.addr, "/")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if n := b.conns.Load(); n != 1 {
				t.Fatalf("%d connections, want 1: a bad answer is not retried", n)
			}
		})
	}
}

// TestTransportCancel: a request cancelled or timed out while it waits for
// the answer, or while it reads the body, ends at once with the context's
// error, and its connection is not reused.
func TestTransportCancel(t *testing.T) {
	release := make(chan struct{})
	s := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "12345")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	tr := router.NewTransport()
	defer tr.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, _, err := roundTrip(t, tr, ctx, "GET", s.addr(), "/slow-head")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(began) > 2*time.Second {
		t.Fatalf("slow head: got %v after %s, want the deadline at once", err, time.Since(began))
	}

	ctx, cancel = context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/slow-body", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("slow body: got %v, want context.Canceled", err)
	}
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: neither was reused", n)
	}
}

// TestTransportIdleConnections: at most MaxIdlePerHost are kept, and those
// unused for IdleTimeout are closed without a request to find them.
func TestTransportIdleConnections(t *testing.T) {
	tr := router.NewTransport()
	tr.MaxIdlePerHost = 2
	tr.IdleTimeout = 200 * time.Millisecond
	defer tr.CloseIdleConnections()
	s := heldOpen(t, tr, 5)
	waitUntil(t, "3 of 5 connections closed at once", func() bool { return s.closed.Load() == 3 })
	waitUntil(t, "the 2 idle ones closed after the idle timeout", func() bool { return s.closed.Load() == 5 })
	if _, body, err := roundTrip(t, tr, t.Context(), "GET", s.addr(), "/"); err != nil || body != "ok" {
		t.Fatalf("after the idle timeout: %q, %v", body, err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
