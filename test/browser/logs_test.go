//go:build browser

package browser

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/dashboard"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

// contractLogs serves GET /v1/services/{name}/logs as the brief's contract
// says (NDJSON, or an event stream with id/event/data), from entries the
// test appends: it stands in for the logs line until that is merged, so the
// page's EventSource, the dashboard's stream and the CSP are tested now.
type contractLogs struct {
	mu      sync.Mutex
	entries []core.LogEntry
	wake    chan struct{}
	queries []string
}

func (l *contractLogs) add(e core.LogEntry) {
	l.mu.Lock()
	e.Seq = uint64(len(l.entries) + 1)
	l.entries = append(l.entries, e)
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

func (l *contractLogs) since(seq uint64) ([]core.LogEntry, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]core.LogEntry(nil), l.entries[seq:]...), l.wake
}

func (l *contractLogs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.queries = append(l.queries, r.URL.RawQuery)
	l.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+token {
		http.Error(w, `{"error":{"code":"unauthorized","message":"no token"}}`, http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Accept") != "text/event-stream" {
		w.Header().Set("Content-Type", "application/x-ndjson")
		list, _ := l.since(0)
		for _, e := range list {
			_ = json.NewEncoder(w).Encode(e)
		}
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	var seq uint64
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		seq, _ = strconv.ParseUint(id, 10, 64)
	}
	fmt.Fprint(w, ": hello\n\n")
	_ = rc.Flush()
	for {
		list, wake := l.since(seq)
		for _, e := range list {
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "id: %d\nevent: log\ndata: %s\n\n", e.Seq, b)
			seq = e.Seq
		}
		_ = rc.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		}
	}
}

const token = "browser-test-token" // the contract test's API

func TestLogsFollowInBrowser(t *testing.T) {
	exe := chromium(t)
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "wisp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	a, err := api.New(api.Config{Token: token, Domain: "localhost", RouterPort: 8080}, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	logs := &contractLogs{wake: make(chan struct{})}
	apiMux := http.NewServeMux()
	apiMux.Handle("GET /v1/services/{name}/logs", logs)
	apiMux.Handle("/", a)
	ui, err := dashboard.New(dashboard.Config{Token: token, API: apiMux})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", ui)
	mux.Handle("/", apiMux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := apiclient.New(srv.URL, token)
	if _, err := c.CreateService(t.Context(), "hello", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	logs.add(core.LogEntry{Time: now, Kind: core.LogPlatform, Service: "hello", Version: 1, Event: "instance.starting", Message: "starting: first request"})
	logs.add(core.LogEntry{Time: now, Kind: core.LogApp, Service: "hello", Version: 1, Instance: "i-1", Stream: "stdout", Message: `<script>alert("x")</script> before`})

	shots := newScreenshots(t)
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.WindowSize(1200, 900))...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			shots.failed(bctx, step)
			t.Fatalf("%s: %v (screenshots in %s)", step, err, shots.dir)
		}
	}
	run("log in and open the logs",
		chromedp.Navigate(srv.URL+"/ui/services/hello/logs?kind=app&kind=platform&q=&version=1"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("follow")),
		shots.take("logs"))
	rows := value(t, bctx, shots, "rows", chromedp.Evaluate[int](`document.querySelectorAll("#log-lines tr").length`))
	if rows != 2 {
		t.Errorf("the logs page shows %d lines, want the 2 of the API", rows)
	}
	if n := value(t, bctx, shots, "scripts", chromedp.Evaluate[int](`document.querySelectorAll("#log-lines script").length`)); n != 0 {
		t.Errorf("a log line became a script element")
	}
	run("follow",
		chromedp.Click(chromedp.ID("follow")),
		chromedp.Poll[chromedp.Void](`document.getElementById("follow-status").textContent === "following"`, chromedp.WithPollingTimeout(10*time.Second)))
	for i := range 3 {
		logs.add(core.LogEntry{Time: time.Now(), Kind: core.LogApp, Service: "hello", Version: 1, Instance: "i-2", Stream: "stdout",
			Message: fmt.Sprintf("live line %d <b>bold?</b>", i)})
	}
	run("see the live lines",
		chromedp.Poll[chromedp.Void](`document.getElementById("log-lines").textContent.indexOf("live line 2") >= 0`, chromedp.WithPollingTimeout(10*time.Second)),
		shots.take("logs-followed"))
	// The two lines already shown are not repeated; the new three follow.
	rows = value(t, bctx, shots, "rows", chromedp.Evaluate[int](`document.querySelectorAll("#log-lines tr").length`))
	if rows != 5 {
		t.Errorf("after following: %d lines, want 5 (2 shown + 3 live, none twice)", rows)
	}
	if n := value(t, bctx, shots, "markup", chromedp.Evaluate[int](`document.querySelectorAll("#log-lines b").length`)); n != 0 {
		t.Errorf("a followed log line's markup became elements")
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	var stream string
	for _, q := range logs.queries {
		if strings.Contains(q, "follow=true") {
			stream = q
		}
	}
	if !strings.Contains(stream, "kind=app%2Cplatform") || !strings.Contains(stream, "version=1") || !strings.Contains(stream, "since=") {
		t.Errorf("the followed stream asked the API for %q, want the page's filters (kind=app,platform, version=1), since the last line shown, and follow=true", stream)
	}
}
