package daemon_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
)

// TestSlowClients is issue 10's fault 5 against the whole daemon: a POST
// that declares 100,000 bytes and sends one a second gets the version's
// 504 within its timeout (1 s) plus a second, and its connection is
// closed; a body that stops gets 408 after --body-timeout; headers that
// never end are cut after --read-header-timeout.
func TestSlowClients(t *testing.T) {
	d, _ := runDaemon(t, t.TempDir(), func(c *config.Config) {
		c.ReadHeaderTimeout = 500 * time.Millisecond
		c.BodyTimeout = 1500 * time.Millisecond
	}, daemon.Options{Out: io.Discard, Runtime: newFake()})
	c := apiclient.New(d.AdminAddr().String(), d.Token())
	if _, err := c.CreateService(t.Context(), "slow", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVersion(t.Context(), "slow", core.VersionSpec{Image: "hello:1", Timeout: core.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateService(t.Context(), "patient", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVersion(t.Context(), "patient", core.VersionSpec{Image: "hello:1", Timeout: core.Duration(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	router := d.RouterAddr().String()
	dial := func(t *testing.T, head string) (net.Conn, *bufio.Reader) {
		t.Helper()
		var dl net.Dialer
		conn, err := dl.DialContext(t.Context(), "tcp", router)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		return conn, bufio.NewReader(conn)
	}
	trickle := func(t *testing.T, conn net.Conn, every time.Duration) {
		go func() {
			for range 100 {
				select {
				case <-t.Context().Done():
					return
				case <-time.After(every):
				}
				if _, err := conn.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}()
	}
	closedAfter := func(t *testing.T, br *bufio.Reader, conn net.Conn) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("the connection must be closed after the answer, got %v", err)
		}
	}
	t.Run("a byte a second meets the version timeout", func(t *testing.T) {
		conn, br := dial(t, "POST / HTTP/1.1\r\nHost: slow.localhost\r\nContent-Length: 100000\r\n\r\n")
		trickle(t, conn, time.Second)
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if took := time.Since(start); resp.StatusCode != http.StatusGatewayTimeout || took > 2*time.Second || !resp.Close {
			t.Fatalf("got %d after %s (close %v), want 504 within 2s with Connection: close", resp.StatusCode, took, resp.Close)
		}
		closedAfter(t, br, conn)
	})
	t.Run("a body that stops meets the body timeout", func(t *testing.T) {
		conn, br := dial(t, "POST / HTTP/1.1\r\nHost: patient.localhost\r\nContent-Length: 100000\r\n\r\nxyz")
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if took := time.Since(start); resp.StatusCode != http.StatusRequestTimeout || took < time.Second || took > 3*time.Second || !strings.Contains(string(b), "too slowly") {
			t.Fatalf("got %d %q after %s, want 408 after about 1.5s", resp.StatusCode, b, took)
		}
		closedAfter(t, br, conn)
	})
	t.Run("headers that never end meet the header timeout", func(t *testing.T) {
		conn, br := dial(t, "GET / HTTP/1.1\r\nHost: slow.localhost\r\n")
		trickle(t, conn, 200*time.Millisecond) // "xxxx…", never the blank line
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(5 * time.Second))
		_, err := io.Copy(io.Discard, br)
		if took := time.Since(start); err != nil || took > 2*time.Second {
			t.Fatalf("connection ended after %s with %v, want closed after about 0.5s", took, err)
		}
	})
}
