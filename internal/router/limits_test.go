package router_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/router"
)

// limitsRouter serves one version whose handler is h and whose timeout is
// timeout, through a real listener, with limits.
func limitsRouter(t *testing.T, h http.Handler, timeout time.Duration, limits router.Limits) string {
	t.Helper()
	b := newBackends(t, func(int) http.Handler { return h }, 1)
	st := states(false, core.Weight{Version: 1, Percent: 100})
	for i := range st[0].Versions {
		st[0].Versions[i].Timeout = core.Duration(timeout)
	}
	r, err := router.New(router.Config{Domain: "localhost", Acquire: b.acquire, Limits: limits}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.Swap(router.NewSnapshot(st))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// slowClient opens a connection, sends a POST that declares size bytes and
// then sends one byte every interval (in the background, until the
// connection breaks or the test ends). It returns the connection's reader.
func slowClient(t *testing.T, addr string, size int, interval time.Duration) (net.Conn, *bufio.Reader) {
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: %d\r\n\r\n", size); err != nil {
		t.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for range size {
			select {
			case <-t.Context().Done():
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}()
	return c, bufio.NewReader(c)
}

// answerOf reads the response on c and then checks that the server closes
// the connection within closeWithin. It returns the response, its body and
// when the response arrived.
func answerOf(t *testing.T, c net.Conn, br *bufio.Reader, within, closeWithin time.Duration) (*http.Response, string, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(within))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", within, err)
	}
	took := time.Since(start)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the answer's body: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(closeWithin))
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the answer the connection must be closed by the server within %s: read %d bytes, %v", closeWithin, n, err)
	}
	return resp, string(body), took
}

// TestSlowUploadGetsTheTimeoutAnswer reproduces issue 10's slowloris: a POST
// that declares 100,000 bytes and sends one byte every 100 ms to an instance
// that reads its body. The version's timeout (1 s) must answer 504 within a
// second of firing, and the connection must be closed, not kept reading.
func TestSlowUploadGetsTheTimeoutAnswer(t *testing.T) {
	reads := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintln(w, "got it")
	})
	addr := limitsRouter(t, reads, time.Second, router.Limits{BodyTimeout: 30 * time.Second})
	c, br := slowClient(t, addr, 100000, 100*time.Millisecond)
	resp, body, took := answerOf(t, c, br, 5*time.Second, 2*time.Second)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "did not answer within its timeout of 1s") {
		t.Fatalf("got %d %q, want 504", resp.StatusCode, body)
	}
	if took > 2*time.Second {
		t.Fatalf("the 504 came after %s; the timeout is 1s", took)
	}
	if !resp.Close {
		t.Fatalf("a response sent before the body was read must say Connection: close; got %v", resp.Header)
	}
	if resp.Header.Get("Wisp-Version") != "1" {
		t.Fatalf("Wisp-Version %q", resp.Header.Get("Wisp-Version"))
	}
}

// TestEarlyAnswerDoesNotWaitForTheBody: an instance that answers without
// reading the body (a 413, say); the answer reaches the client at once with
// Connection: close, and the router does not go on reading the trickle.
// (The instance says Connection: close too: a Go server that did not would
// itself drain the body before answering, and the version's timeout would
// answer instead, as in the test above.)
func TestEarlyAnswerDoesNotWaitForTheBody(t *testing.T) {
	ignores := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintln(w, "early")
	})
	addr := limitsRouter(t, ignores, 10*time.Second, router.Limits{BodyTimeout: 30 * time.Second})
	c, br := slowClient(t, addr, 100000, 100*time.Millisecond)
	resp, body, took := answerOf(t, c, br, 5*time.Second, 2*time.Second)
	if resp.StatusCode != 200 || body != "early\n" || took > time.Second {
		t.Fatalf("got %d %q after %s, want 200 \"early\" at once", resp.StatusCode, body, took)
	}
	if !resp.Close {
		t.Fatalf("want Connection: close, got %v", resp.Header)
	}
}

// TestBodyTimeoutAndMinRate: the router's own limits cut a body that stops
// (idle) or trickles (under the minimum rate) with 408, well before a long
// version timeout, and the instance is not blamed.
func TestBodyTimeoutAndMinRate(t *testing.T) {
	reads := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintln(w, "got it")
	})
	cases := []struct {
		name     string
		limits   router.Limits
		interval time.Duration // between bytes
		min, max time.Duration // when the 408 may come
	}{
		// One byte and then nothing for 10 s: cut after the idle 300 ms.
		{"idle", router.Limits{BodyTimeout: 300 * time.Millisecond}, 10 * time.Second, 250 * time.Millisecond, 1500 * time.Millisecond},
		// A byte every 100 ms is never idle for 300 ms, but at 10 B/s it is
		// under 100 B/s: cut at 300 ms + n/100 s, about 0.35 s.
		{"min rate", router.Limits{BodyTimeout: 300 * time.Millisecond, MinBodyRate: 100}, 100 * time.Millisecond, 250 * time.Millisecond, 1500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := limitsRouter(t, reads, 30*time.Second, tc.limits)
			c, br := slowClient(t, addr, 1000, tc.interval)
			_, _ = c.Write([]byte{'x'})
			resp, body, took := answerOf(t, c, br, 5*time.Second, 2*time.Second)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "request body") {
				t.Fatalf("got %d %q, want 408 about the request body", resp.StatusCode, body)
			}
			if took < tc.min || took > tc.max {
				t.Fatalf("the 408 came after %s, want between %s and %s", took, tc.min, tc.max)
			}
			if !resp.Close {
				t.Fatalf("want Connection: close, got %v", resp.Header)
			}
		})
	}
}

// TestBodiesAtSpeedKeepTheConnection: bodies that arrive at once are not
// affected: a 4 MiB upload passes, and small POSTs whose body the instance
// reads reuse one connection.
func TestBodiesAtSpeedKeepTheConnection(t *testing.T) {
	counts := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d %v", n, err)
	})
	addr := limitsRouter(t, counts, 10*time.Second, router.Limits{BodyTimeout: time.Second, MinBodyRate: 1 << 20})
	reused := 0
	for i, size := range []int{4 << 20, 1000, 1000, 1000} {
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
			if ci.Reused {
				reused++
			}
		}}
		ctx := httptrace.WithClientTrace(t.Context(), trace)
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/", strings.NewReader(strings.Repeat("x", size)))
		req.Host = "hello.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != fmt.Sprintf("%d <nil>", size) {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
	if reused != 3 {
		t.Fatalf("%d of 3 later requests reused the connection", reused)
	}
}

// upgradeEcho is an instance that upgrades to a line echo protocol and
// echoes lines until the client closes.
func upgradeEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = rw.WriteString("echo: " + line)
			_ = rw.Flush()
		}
	})
}

func upgrade(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: hello.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v %v, want 101", resp, err)
	}
	return c, br
}

// TestUpgradeOutlivesTheRequestTimeout: an upgraded connection in use is
// not cut at the version's request timeout (300 ms here), and one idle for
// the upgrade idle timeout is closed.
func TestUpgradeOutlivesTheRequestTimeout(t *testing.T) {
	addr := limitsRouter(t, upgradeEcho(), 300*time.Millisecond, router.Limits{UpgradeIdleTimeout: 600 * time.Millisecond})
	c, br := upgrade(t, addr)
	for i := range 8 { // 8 × 150 ms = 1.2 s, four request timeouts
		time.Sleep(150 * time.Millisecond)
		if _, err := fmt.Fprintf(c, "line %d\n", i); err != nil {
			t.Fatalf("write after %d lines: %v", i, err)
		}
		if line, err := br.ReadString('\n'); err != nil || line != fmt.Sprintf("echo: line %d\n", i) {
			t.Fatalf("line %d after the upgrade: %q %v", i, line, err)
		}
	}
	// Now idle: closed after the idle timeout, not before.
	start := time.Now()
	_, err := br.ReadString('\n')
	took := time.Since(start)
	if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle upgraded connection: %v", err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || took < 500*time.Millisecond || took > 3*time.Second {
		t.Fatalf("the idle upgraded connection ended after %s (%v), want about 600ms", took, err)
	}
}

// TestUpgradeHandshakeKeepsTheTimeout: an instance that never answers the
// upgrade still gets the version's timeout.
func TestUpgradeHandshakeKeepsTheTimeout(t *testing.T) {
	hangs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	addr := limitsRouter(t, hangs, 300*time.Millisecond, router.Limits{UpgradeIdleTimeout: time.Minute})
	var d net.Dialer
	c, err := d.DialContext(context.WithoutCancel(t.Context()), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: hello.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusGatewayTimeout || time.Since(start) > 2*time.Second {
		t.Fatalf("got %v %v after %s, want 504 after 300ms", resp, err, time.Since(start))
	}
}

// BenchmarkPOST measures a 1 KiB POST through a real listener with and
// without the body limits: the cost of a read deadline per body read.
func BenchmarkPOST(b *testing.B) {
	for _, tc := range []struct {
		name   string
		limits router.Limits
	}{{"no limits", router.Limits{}}, {"limits", router.Limits{BodyTimeout: 30 * time.Second, MinBodyRate: 1024}}} {
		b.Run(tc.name, func(b *testing.B) {
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
			}))
			defer backend.Close()
			acquire := func(ctx context.Context, v *core.Version) (router.Lease, error) {
				return router.Lease{Addr: strings.TrimPrefix(backend.URL, "http://"), Handle: failCounter{fail: func() {}}}, nil
			}
			r, err := router.New(router.Config{Domain: "localhost", Acquire: acquire, Limits: tc.limits}, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			r.Swap(router.NewSnapshot(states(false, core.Weight{Version: 1, Percent: 100})))
			srv := httptest.NewServer(r)
			defer srv.Close()
			body := strings.Repeat("x", 1024)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			b.ResetTimer()
			for b.Loop() {
				req, _ := http.NewRequestWithContext(b.Context(), "POST", srv.URL+"/", strings.NewReader(body))
				req.Host = "hello.localhost"
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
