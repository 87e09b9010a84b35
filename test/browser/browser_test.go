//go:build browser

// Package browser holds the dashboard's browser tests (make test-browser):
// Debian's headless Chromium, driven with chromedp, against a real Wisp
// daemon on the Docker Engine serving the greeter image. They skip only when
// chromium is absent and WISP_BROWSER_REQUIRED is unset (.ci/run sets it).
package browser

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

const (
	greeter = "wisp-greeter:browser"
	service = "dashb-hello" // the prefix dashb- is these tests' own
)

// chromium returns the browser's path, or skips (or fails, when
// WISP_BROWSER_REQUIRED is set) when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("WISP_BROWSER_REQUIRED") != "" {
		t.Fatal("no chromium on PATH and WISP_BROWSER_REQUIRED is set: install Debian's chromium (apt-get install -y chromium)")
	}
	t.Skip("no chromium on PATH: the dashboard's browser tests need Debian's chromium (apt-get install -y chromium); set WISP_BROWSER_REQUIRED=1 to make this a failure")
	return ""
}

type wisp struct {
	c      *apiclient.Client
	admin  string // http://127.0.0.1:port
	router string // 127.0.0.1:port
	token  string
	http   *http.Client
}

func startWisp(t *testing.T) *wisp {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DockerNetwork = "wisp-test"
	cfg.ReapInterval = 200 * time.Millisecond
	cfg.StopGrace = 2 * time.Second
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	lh := slog.Handler(slog.DiscardHandler)
	if os.Getenv("WISP_TEST_LOG") != "" {
		lh = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	d, err := daemon.Open(ctx, cfg, slog.New(lh), daemon.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the daemon did not stop within 15 s")
		}
	})
	admin := "http://" + d.AdminAddr().String()
	return &wisp{c: apiclient.New(admin, d.Token()), admin: admin, router: d.RouterAddr().String(), token: d.Token(),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}}
}

// get sends one request to the router and returns the version that
// answered (Wisp-Version).
func (w *wisp) get(ctx context.Context, path string) (string, error) {
	return w.getWith(ctx, path, nil)
}

// getWith is get with the request headers h.
func (w *wisp) getWith(ctx context.Context, path string, h http.Header) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+w.router+path, nil)
	if err != nil {
		return "", err
	}
	req.Host = service + ".localhost"
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp.Header.Get("Wisp-Version"), nil
}

// screenshots keeps the pages' pictures in a directory that outlives the
// test, and says where.
type screenshots struct {
	t   *testing.T
	dir string
	n   int
}

func newScreenshots(t *testing.T) *screenshots {
	dir, err := os.MkdirTemp("", "wisp-dashboard-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of the dashboard's pages: %s", dir)
	return &screenshots{t: t, dir: dir}
}

func (s *screenshots) take(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		s.n++
		path := filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name))
		if err := os.WriteFile(path, buf, 0o600); err != nil {
			return err
		}
		s.t.Logf("screenshot %s", path)
		return nil
	})
}

// failed keeps a picture of the page a step failed on.
func (s *screenshots) failed(ctx context.Context, step string) {
	if buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(s.dir, "failed-"+strings.ReplaceAll(step, " ", "-")+".png"), buf, 0o600)
	}
}

// value runs one action of the browser and returns its value.
func value[T any](t *testing.T, ctx context.Context, shots *screenshots, step string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		shots.failed(ctx, step)
		t.Fatalf("%s: %v (screenshots in %s)", step, err, shots.dir)
	}
	return v
}

// tab is a test's browser tab and its screenshots: a step that fails
// stops the test with a picture of the page.
type tab struct {
	t     *testing.T
	ctx   context.Context
	shots *screenshots
}

// run runs the actions of one step.
func (b tab) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.shots.failed(b.ctx, step)
		b.t.Fatalf("%s: %v (screenshots in %s)", step, err, b.shots.dir)
	}
}

// text returns the text of the element with the id.
func (b tab) text(step, id string) string {
	b.t.Helper()
	return value(b.t, b.ctx, b.shots, step, chromedp.Text(chromedp.ID(id)))
}

// eval returns the value of a script on the page.
func eval[T any](b tab, step, js string) T {
	b.t.Helper()
	return value(b.t, b.ctx, b.shots, step, chromedp.Evaluate[T](js))
}

// submit clicks the button with the id, which posts a form, and returns
// the error the page that answers shows ("" when it has a flash instead).
func (b tab) submit(step, id string) string {
	b.t.Helper()
	value(b.t, b.ctx, b.shots, step, markPage())
	b.run(step, chromedp.Click(chromedp.ID(id)))
	return answered(b.ctx, b.t, b.shots, step)
}

// answered waits, after a click that submits a form, for the page that
// answers it: one with a flash (the change was made) or an error (whose
// text it returns). The form's post and redirect replace the document, and
// a query that runs while they do fails ("Cannot find context with
// specified id") or waits on the old document, so the page is looked at
// with a script, and a look that failed is retried.
func answered(ctx context.Context, t *testing.T, shots *screenshots, step string) string {
	t.Helper()
	// The page clicked on may show a flash or an error itself: its document
	// was marked (markPage) and is not the answer.
	const js = `window.wispBefore === true || document.readyState !== "complete" ? "" :
		document.getElementById("flash") !== null ? "flash" :
		document.getElementById("error") !== null ? "error:" + document.getElementById("error").textContent : ""`
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		switch {
		case err != nil || got == "":
			time.Sleep(100 * time.Millisecond)
		case got == "flash":
			return ""
		default:
			return strings.TrimPrefix(got, "error:")
		}
	}
	shots.failed(ctx, step)
	t.Fatalf("%s: no page with a flash or an error after 30 s (screenshots in %s)", step, shots.dir)
	return ""
}

// markPage marks the document shown now, so answered can tell the page a
// form's post brings from it.
func markPage() chromedp.Action[bool] { return chromedp.Evaluate[bool](`window.wispBefore = true`) }

func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	dockertest.Skip(t)
	dockertest.CleanupService(t, "dashb-")
	dockertest.MustBuildGoImage(t, "./testdata/greeter", greeter)
	w := startWisp(t)
	ctx := t.Context()
	if _, err := w.c.CreateService(ctx, service, core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"one", "two"} {
		if _, err := w.c.CreateVersion(ctx, service, core.VersionSpec{Image: greeter, Env: []string{"GREETING=" + g}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.c.SetTraffic(ctx, service, core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}, Message: "all on v1"}); err != nil {
		t.Fatal(err)
	}
	first, err := w.c.GetTraffic(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	shots := newScreenshots(t)

	actx, cancelA := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("disable-dev-shm-usage", true))...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	bctx, cancelT := context.WithTimeout(bctx, 4*time.Minute)
	defer cancelT()
	b := tab{t: t, ctx: bctx, shots: shots}
	run, text := b.run, b.text
	ui := w.admin + "/ui/"

	// A wrong token is refused, with a message; the right one logs in.
	run("wrong token",
		chromedp.Navigate(ui),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("error")),
		shots.take("login-wrong-token"))
	if msg := text("wrong token", "error"); !strings.Contains(msg, "Wrong token") {
		t.Fatalf("a wrong token: the page says %q, want Wrong token", msg)
	}
	run("log in",
		chromedp.SendKeys(chromedp.ID("token"), w.token),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("services")),
		shots.take("services"))
	if cookies := value(t, bctx, shots, "read cookies", chromedp.Evaluate[string](`document.cookie`)); strings.Contains(cookies, "wisp_session") {
		t.Errorf("the session cookie is readable from script (%q): it must be HttpOnly", cookies)
	}

	// Live numbers: the services list changes by itself while load runs.
	rpsCell := `document.querySelector('tr[data-service="` + service + `"] [data-k="rps"]').textContent`
	before := value(t, bctx, shots, "read the numbers", chromedp.Evaluate[string](rpsCell))
	load, stopLoad := context.WithCancel(ctx)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded: at most 60 s and 10,000 requests in all.
			deadline := time.Now().Add(60 * time.Second)
			for load.Err() == nil && time.Now().Before(deadline) && sent.Add(1) <= 10000 {
				_, _ = w.get(load, "/")
			}
		}()
	}
	start := time.Now()
	after := value(t, bctx, shots, "see live numbers change",
		chromedp.Poll[string](`(function(){ var t = `+rpsCell+`; var n = parseFloat(t); return !isNaN(n) && n > 0 ? t : null; })()`,
			chromedp.WithPollingTimeout(40*time.Second), chromedp.WithPollingInterval(500*time.Millisecond)))
	took := time.Since(start)
	run("services under load", shots.take("services-under-load"))
	stopLoad()
	wg.Wait()
	t.Logf("live numbers: requests/s went from %q to %q without a reload, %v after the load began (%d requests sent)",
		before, after, took.Round(100*time.Millisecond), sent.Load())

	// The service page: charts, and the traffic editor to 90/10 with a
	// preview before applying.
	run("service page",
		chromedp.Navigate(ui+"services/"+service),
		chromedp.WaitVisible(chromedp.ID("traffic-editor")),
		shots.take("service"),
		chromedp.SetValue(chromedp.ID("w1"), "90"),
		chromedp.SetValue(chromedp.ID("w2"), "10"),
		chromedp.Click(chromedp.ID("preview")),
		chromedp.WaitVisible(chromedp.ID("preview-box")),
		shots.take("traffic-preview"))
	if sum := text("editor sum", "weight-sum"); strings.TrimSpace(sum) != "100%" {
		t.Errorf("the editor's sum (app.js) shows %q, want 100%%", sum)
	}
	if svg := value(t, bctx, shots, "charts", chromedp.Evaluate[int](`document.querySelectorAll("#live svg.chart path.chart-line").length`)); svg == 0 {
		t.Errorf("the service page has no chart lines after the load")
	}
	if tr, _ := w.c.GetTraffic(ctx, service); tr.ID != first.ID {
		t.Fatalf("the preview changed the split: entry %d, was %d", tr.ID, first.ID)
	}
	value(t, bctx, shots, "apply 90/10", markPage())
	run("apply 90/10", chromedp.Click(chromedp.ID("apply")))
	// The answer is the page with its flash, or with the API's error: wait
	// for either, so a refusal fails here with its message.
	if errText := answered(bctx, t, shots, "apply 90/10"); errText != "" {
		t.Fatalf("applying 90/10 in the editor: the page shows the error %q", errText)
	}
	run("applied", shots.take("traffic-applied"))
	if flash := text("apply", "flash"); !strings.Contains(flash, "Traffic changed") {
		t.Fatalf("after apply the page says %q", flash)
	}
	tr, err := w.c.GetTraffic(ctx, service)
	if err != nil || len(tr.Weights) != 2 || tr.Weights[0] != (core.Weight{Version: 1, Percent: 90}) || tr.Weights[1] != (core.Weight{Version: 2, Percent: 10}) {
		t.Fatalf("GET traffic after the editor: %+v %v, want 90/10", tr.Weights, err)
	}
	counts := map[string]int{}
	const n = 1000
	for range n {
		v, err := w.get(ctx, "/")
		if err != nil {
			t.Fatal(err)
		}
		counts[v]++
	}
	t.Logf("the router after 90/10: %d requests: %v", n, counts)
	if share := float64(counts["2"]) / n; share < 0.06 || share > 0.14 {
		t.Errorf("v2 got %.1f%% of %d requests, want 10%% ± 4", 100*share, n)
	}

	// The charts refresh by themselves (app.js polls the live JSON), and
	// v2's show the requests it got after 90/10.
	run("charts refresh",
		chromedp.Navigate(ui+"services/"+service),
		chromedp.WaitVisible(chromedp.ID("live")),
		chromedp.Poll[chromedp.Void](`document.getElementById("live").dataset.updated &&
			document.querySelector('[data-charts="2"] path.chart-line') !== null`,
			chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(500*time.Millisecond)),
		shots.take("service-charts"))

	// Roll back from the timeline to the first entry.
	rb := "rollback-" + strconv.FormatInt(first.ID, 10)
	run("roll back",
		chromedp.Navigate(ui+"services/"+service+"#timeline"),
		chromedp.WaitVisible(chromedp.ID(rb)),
		shots.take("timeline"))
	value(t, bctx, shots, "roll back", markPage())
	run("roll back", chromedp.Click(chromedp.ID(rb)))
	if errText := answered(bctx, t, shots, "roll back"); errText != "" {
		t.Fatalf("rolling back from the timeline: the page shows the error %q", errText)
	}
	run("rolled back", shots.take("rolled-back"))
	if flash := text("roll back", "flash"); !strings.Contains(flash, "Rolled back") {
		t.Fatalf("after the rollback the page says %q", flash)
	}
	if tr, err := w.c.GetTraffic(ctx, service); err != nil || len(tr.Weights) != 1 || tr.Weights[0].Version != 1 || tr.Weights[0].Percent != 100 {
		t.Fatalf("GET traffic after the rollback: %+v %v, want v1 100%%", tr.Weights, err)
	}
	for range 50 {
		if v, err := w.get(ctx, "/"); err != nil || v != "1" {
			t.Fatalf("after the rollback a request went to %q (%v), want 1", v, err)
		}
	}

	// A rollout's section follows the rollout by itself: paused through
	// the API, the page shows it without a reload (app.js replaces the
	// section); its Abort button restores the split before the rollout.
	if _, err := w.c.StartRollout(ctx, service, core.RolloutSpec{To: 2, Steps: []int{10, 100}, Interval: core.Duration(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	run("rollout section",
		chromedp.Navigate(ui+"services/"+service),
		chromedp.WaitVisible(chromedp.ID("rollout")),
		shots.take("rollout-running"))
	if state := text("rollout section", "rollout-state"); state != string(core.RolloutRunning) {
		t.Fatalf("the rollout section says %q, want %s", state, core.RolloutRunning)
	}
	value(t, bctx, shots, "rollout live", markPage())
	if _, err := w.c.RolloutAction(ctx, service, core.RolloutPause); err != nil {
		t.Fatal(err)
	}
	run("rollout live",
		chromedp.Poll[chromedp.Void](`document.getElementById("rollout-state").textContent === "paused" && window.wispBefore === true`,
			chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(250*time.Millisecond)),
		chromedp.WaitVisible(chromedp.ID("rollout-resume")),
		shots.take("rollout-paused-live"))
	value(t, bctx, shots, "abort the rollout", markPage())
	run("abort the rollout", chromedp.Click(chromedp.ID("rollout-abort")))
	if errText := answered(bctx, t, shots, "abort the rollout"); errText != "" {
		t.Fatalf("aborting the rollout from the page: the page shows the error %q", errText)
	}
	if flash := text("abort the rollout", "flash"); !strings.Contains(flash, "aborted") {
		t.Fatalf("after Abort the page says %q", flash)
	}
	if tr, err := w.c.GetTraffic(ctx, service); err != nil || len(tr.Weights) != 1 || tr.Weights[0] != (core.Weight{Version: 1, Percent: 100}) {
		t.Fatalf("GET traffic after the abort: %+v %v, want v1 100%%", tr.Weights, err)
	}

	// Request rules typed into the traffic editor (rules_test.go), then a
	// mirror's report followed by the page its last refusal left
	// (mirror_test.go).
	rulesInEditor(b, w, ui)
	mirrorReport(b, w, ui)

	// A cross-site POST without the CSRF token is refused. The other site
	// is another port on 127.0.0.1: the same site for cookies, so the
	// SameSite=Strict cookie is sent, and the CSRF and Origin checks are
	// what refuse it.
	evil := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(rw, `<!doctype html><form id="f" method="post" action="%s/ui/services/%s/traffic">
<input name="w1" value="0"><input name="w2" value="100"><input name="action" value="apply"></form>
<script>document.getElementById("f").submit()</script>`, w.admin, service)
	}))
	defer evil.Close()
	run("cross-site POST",
		chromedp.Navigate(evil.URL),
		chromedp.WaitVisible(chromedp.ID("error")),
		shots.take("cross-site-refused"))
	if refused := text("cross-site POST", "error"); !strings.Contains(refused, "Refused") {
		t.Errorf("a cross-site POST: the page says %q, want Refused", refused)
	}
	if tr, _ := w.c.GetTraffic(ctx, service); len(tr.Weights) != 1 || tr.Weights[0].Version != 1 {
		t.Fatalf("the cross-site POST changed the split: %+v", tr.Weights)
	}

	// The platform page.
	run("platform",
		chromedp.Navigate(ui+"platform"),
		chromedp.WaitVisible(chromedp.ID("platform")),
		shots.take("platform"))
	if platform := text("platform", "platform"); !strings.Contains(platform, "docker") {
		t.Errorf("the platform page does not name the runtime: %q", platform)
	}

	// Logs, followed live through GET /v1/services/{name}/logs.
	t.Run("follow logs", func(t *testing.T) {
		if status := logsRoute(t, w); status != http.StatusOK {
			t.Fatalf("GET /v1/services/%s/logs: %d, want 200", service, status)
		}
		marker := fmt.Sprintf("dashboard-marker-%d", time.Now().UnixNano())
		run("logs page",
			chromedp.Navigate(ui+"services/"+service+"/logs"),
			chromedp.WaitVisible(chromedp.ID("follow")),
			chromedp.Click(chromedp.ID("follow")),
			chromedp.Poll[chromedp.Void](`document.getElementById("follow-status").textContent === "following"`,
				chromedp.WithPollingTimeout(20*time.Second)))
		if _, err := w.get(ctx, "/log?stream=stdout&text="+marker); err != nil {
			t.Fatal(err)
		}
		run("see the line",
			chromedp.Poll[chromedp.Void](`document.getElementById("log-lines").textContent.indexOf(`+strconv.Quote(marker)+`) >= 0`,
				chromedp.WithPollingTimeout(30*time.Second)),
			shots.take("logs-followed"))
	})
}

// logsRoute returns the status of the logs API for the test's service.
func logsRoute(t *testing.T, w *wisp) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", w.admin+"/v1/services/"+service+"/logs?tail=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	resp, err := w.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}
