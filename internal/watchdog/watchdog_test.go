package watchdog_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/watchdog"
)

func serve(t *testing.T, cfg watchdog.Config) *httptest.Server {
	t.Helper()
	h, err := watchdog.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

func post(t *testing.T, url string, body io.Reader, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEnvMapping(t *testing.T) {
	s := serve(t, watchdog.Config{
		Command: sh(`printf '%s|%s|%s|%s|%s|%s|%s|%s' "$REQUEST_METHOD" "$PATH_INFO" "$QUERY_STRING" "$REQUEST_URI" "$HTTP_X_TRACE_ID" "$CONTENT_TYPE" "$CONTENT_LENGTH" "$FROM_WATCHDOG"`),
		Env:     []string{"FROM_WATCHDOG=kept", "PATH=/usr/bin:/bin"},
	})
	status, body := post(t, s.URL+"/orders/7?sort=asc&x=1", strings.NewReader("hello"), "X-Trace-Id", "abc-123", "Content-Type", "text/plain")
	want := "POST|/orders/7|sort=asc&x=1|/orders/7?sort=asc&x=1|abc-123|text/plain|5|kept"
	if status != 200 || body != want {
		t.Fatalf("got %d %q, want 200 %q", status, body, want)
	}
}

func TestBodyOnStdinAndContentType(t *testing.T) {
	s := serve(t, watchdog.Config{Command: []string{"cat"}, Env: []string{"PATH=/usr/bin:/bin"}})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL, strings.NewReader(`{"a":1}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"a":1}` || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("got %q %q", b, resp.Header.Get("Content-Type"))
	}
	s2 := serve(t, watchdog.Config{Command: []string{"cat"}, ContentType: "application/json", Env: []string{"PATH=/usr/bin:/bin"}})
	req, _ = http.NewRequestWithContext(t.Context(), "POST", s2.URL, strings.NewReader(`{}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Fatalf("content type %q", got)
	}
}

func TestNonZeroExit(t *testing.T) {
	s := serve(t, watchdog.Config{Command: sh(`echo "partial output"; echo "reading config" >&2; echo "panic: no config" >&2; exit 3`)})
	status, body := post(t, s.URL, nil)
	if status != 500 || !strings.Contains(body, "exited with code 3") || !strings.Contains(body, "panic: no config") || strings.Contains(body, "partial output") {
		t.Fatalf("got %d %q", status, body)
	}
}

// TestTimeout: the process (and its children) are killed at the timeout.
func TestTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	s := serve(t, watchdog.Config{Command: sh(`sleep 30 & echo $! > ` + pidFile + `; wait`), Timeout: 300 * time.Millisecond})
	start := time.Now()
	status, body := post(t, s.URL, nil)
	if status != 504 || !strings.Contains(body, "did not finish within 300ms") {
		t.Fatalf("got %d %q", status, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a 300ms timeout answered after %s", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the function's child %d outlived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLargeBody: 10 MiB in, 10 MiB out, unchanged.
func TestLargeBody(t *testing.T) {
	s := serve(t, watchdog.Config{Command: []string{"cat"}, Env: []string{"PATH=/usr/bin:/bin"}})
	in := make([]byte, 10<<20)
	_, _ = rand.Read(in)
	status, body := post(t, s.URL, bytes.NewReader(in))
	if status != 200 || len(body) != len(in) || sha256.Sum256([]byte(body)) != sha256.Sum256(in) {
		t.Fatalf("got %d and %d bytes, want 200 and the same %d bytes", status, len(body), len(in))
	}
}

func TestLimits(t *testing.T) {
	s := serve(t, watchdog.Config{Command: []string{"cat"}, MaxBody: 1024, Env: []string{"PATH=/usr/bin:/bin"}})
	if status, body := post(t, s.URL, strings.NewReader(strings.Repeat("x", 2048))); status != 413 || !strings.Contains(body, "over the limit of 1024") {
		t.Fatalf("big body: %d %q", status, body)
	}
	s2 := serve(t, watchdog.Config{Command: sh(`head -c 4096 /dev/zero`), MaxOutput: 1000, Env: []string{"PATH=/usr/bin:/bin"}})
	if status, body := post(t, s2.URL, nil); status != 502 || !strings.Contains(body, "more than 1000 bytes") {
		t.Fatalf("big output: %d %q", status, body)
	}
}

// TestConcurrentRequests: each request gets its own process and its own answer.
func TestConcurrentRequests(t *testing.T) {
	s := serve(t, watchdog.Config{Command: sh(`sleep 0.2; cat; printf ' %s' "$HTTP_X_N"`)})
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := strconv.Itoa(i)
			status, body := post(t, s.URL, strings.NewReader("req"+n), "X-N", n)
			if status != 200 || body != "req"+n+" "+n {
				t.Errorf("request %d: %d %q", i, status, body)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("20 requests of 200ms took %s: they did not run side by side", d)
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{"WISP_FUNCTION": "echo hi", "WISP_TIMEOUT": "5s", "WISP_MAX_BODY": "100"}
	cfg, err := watchdog.FromEnv(nil, func(k string) string { return env[k] })
	if err != nil || fmt.Sprint(cfg.Command) != "[/bin/sh -c echo hi]" || cfg.Timeout != 5*time.Second || cfg.MaxBody != 100 {
		t.Fatalf("%+v %v", cfg, err)
	}
	if _, err := watchdog.FromEnv(nil, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "no function command") {
		t.Fatalf("no command: %v", err)
	}
	env["WISP_MAX_BODY"] = "lots"
	if _, err := watchdog.FromEnv([]string{"cat"}, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "WISP_MAX_BODY") {
		t.Fatalf("bad body limit: %v", err)
	}
	env["WISP_MAX_BODY"] = "100"
	env["WISP_TIMEOUT"] = "soon"
	if _, err := watchdog.FromEnv([]string{"cat"}, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "WISP_TIMEOUT") {
		t.Fatalf("bad timeout: %v", err)
	}
}
