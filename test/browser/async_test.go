//go:build browser

package browser

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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

// asyncStandIn serves the API's async parts (calls, triggers, schedules)
// from memory, so the pages run in Chromium with no NATS and no engine.
type asyncStandIn struct {
	mu        sync.Mutex
	calls     []core.Call
	schedules []core.Schedule
	triggers  []core.Trigger
	runs      int
}

func (s *asyncStandIn) Get(_ context.Context, id string) (*core.Call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		if c.ID == id {
			return &c, nil
		}
	}
	return nil, core.NotFoundf("no call %q", id)
}

func (s *asyncStandIn) List(_ context.Context, service, state string, _ int) ([]core.Call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.Call
	for _, c := range s.calls {
		if c.Service == service && (state == "" || c.State == state) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *asyncStandIn) Retry(_ context.Context, id string) (*core.Call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.calls {
		if s.calls[i].ID == id && (s.calls[i].State == core.CallDead || s.calls[i].State == core.CallFailed) {
			s.calls[i].State = core.CallQueued
			c := s.calls[i]
			return &c, nil
		}
	}
	return nil, core.Conflictf("call %q cannot be retried", id)
}

// standInSchedules and standInTriggers are the stand-in seen as the API's
// Schedules and Triggers (their List and Get differ from the calls').
type standInSchedules struct{ *asyncStandIn }

func (s standInSchedules) Get(_ context.Context, name string) (core.Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range s.schedules {
		if sc.Name == name {
			return sc, nil
		}
	}
	return core.Schedule{}, core.NotFoundf("no schedule %q", name)
}

func (s standInSchedules) List(context.Context) ([]core.Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]core.Schedule(nil), s.schedules...), nil
}

func (s standInSchedules) Update(_ context.Context, name string, p core.SchedulePatch) (core.Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.schedules {
		if s.schedules[i].Name == name {
			if p.Suspend != nil {
				s.schedules[i].Suspend = *p.Suspend
			}
			return s.schedules[i], nil
		}
	}
	return core.Schedule{}, core.NotFoundf("no schedule %q", name)
}

func (s standInSchedules) RunNow(context.Context, string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs++
	return "0123456789abcdefghijklmnop", nil
}

func (s standInSchedules) Create(context.Context, core.Schedule) (core.Schedule, error) {
	return core.Schedule{}, core.Conflictf("not in the stand-in")
}
func (s standInSchedules) Delete(context.Context, string) error {
	return core.Conflictf("not in the stand-in")
}
func (s standInSchedules) NextN(context.Context, string, int) ([]time.Time, error) {
	return nil, core.Conflictf("not in the stand-in")
}

type standInTriggers struct{ *asyncStandIn }

func (s standInTriggers) Get(_ context.Context, name string) (core.Trigger, error) {
	for _, t := range s.triggers {
		if t.Name == name {
			return t, nil
		}
	}
	return core.Trigger{}, core.NotFoundf("no trigger %q", name)
}
func (s standInTriggers) List(context.Context) ([]core.Trigger, error) { return s.triggers, nil }
func (s standInTriggers) Create(context.Context, core.Trigger) (core.Trigger, error) {
	return core.Trigger{}, core.Conflictf("not in the stand-in")
}
func (s standInTriggers) Delete(context.Context, string) error {
	return core.Conflictf("not in the stand-in")
}
func (s standInTriggers) Ingest(context.Context, string, http.Header, []byte) ([]string, string, error) {
	return nil, "", core.Conflictf("not in the stand-in")
}

func TestAsyncPagesInBrowser(t *testing.T) {
	exe := chromium(t)
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "wisp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().UTC().Truncate(time.Second)
	next := now.Add(time.Hour)
	stand := &asyncStandIn{
		calls: []core.Call{
			{ID: "c1ok", Service: "hello", State: core.CallSucceeded, Origin: "api", SubmittedAt: now,
				Attempts: []core.CallAttempt{{StartedAt: now, Status: 200, DurationMS: 4}}, Response: &core.CallResponse{Status: 200, Body: []byte("ok")}},
			{ID: "c0dead", Service: "hello", State: core.CallDead, Origin: "schedule:nightly", SubmittedAt: now,
				Request:  core.CallRequest{Method: "POST", Path: "/", Header: http.Header{"X-Evil": {`<img src=x>`}}, Body: []byte(`<script>alert(1)</script>`)},
				Attempts: []core.CallAttempt{{StartedAt: now, Status: 503, DurationMS: 20, Version: 1, Error: "answered 503"}}, Error: "out of attempts"},
		},
		schedules: []core.Schedule{{Name: "nightly", Service: "hello", Cron: "0 3 * * *", CreatedAt: now, Next: &next,
			Runs: []core.ScheduleRun{{At: now, FiredAt: now, CallID: "c0dead", State: core.CallDead, DurationMS: 20}}}},
		triggers: []core.Trigger{{Name: "orders", Service: "hello", Subject: "orders.>", CreatedAt: now}},
	}
	a, err := api.New(api.Config{Token: token, Domain: "localhost", RouterPort: 8080}, st, slog.New(slog.DiscardHandler),
		api.WithCalls(stand), api.WithSchedules(standInSchedules{stand}), api.WithTriggers(standInTriggers{stand}))
	if err != nil {
		t.Fatal(err)
	}
	ui, err := dashboard.New(dashboard.Config{Token: token, API: a})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", ui)
	mux.Handle("/", a)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if _, err := apiclient.New(srv.URL, token).CreateService(t.Context(), "hello", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}

	shots := newScreenshots(t)
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.WindowSize(1200, 900))...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	bctx, cancelT := context.WithTimeout(bctx, 2*time.Minute)
	defer cancelT()
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			shots.failed(bctx, step)
			t.Fatalf("%s: %v (screenshots in %s)", step, err, shots.dir)
		}
	}
	text := func(step, id string) string {
		t.Helper()
		return value(t, bctx, shots, step, chromedp.Text(chromedp.ID(id)))
	}
	// waitFor waits until js is true. The page is replaced meanwhile, and a
	// look while it is fails ("Cannot find context with specified id"), so
	// a failed look is retried.
	waitFor := func(step, js string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](js)); err == nil && ok {
				return
			}
		}
		shots.failed(bctx, step)
		t.Fatalf("%s: %s still false after 15 s (screenshots in %s)", step, js, shots.dir)
	}
	// submit clicks a button that posts a form and waits for the page its
	// redirect brings, which must have a flash.
	submit := func(step, id string) string {
		t.Helper()
		value(t, bctx, shots, step, markPage())
		run(step, chromedp.Click(chromedp.ID(id)))
		if errText := answered(bctx, t, shots, step); errText != "" {
			t.Fatalf("%s: the page shows the error %q", step, errText)
		}
		run(step, shots.take(strings.ReplaceAll(step, " ", "-")))
		return text(step, "flash")
	}

	run("log in and open the service's calls",
		chromedp.Navigate(srv.URL+"/ui/services/hello"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("call-state")),
		shots.take("service-calls"))
	if dead := text("dead count", "dead-count"); dead != "1" {
		t.Errorf("the service page counts %q dead calls, want 1", dead)
	}
	// The state filter is a plain GET form.
	run("filter dead calls",
		chromedp.SetValue(chromedp.ID("call-state"), "dead"),
		chromedp.Submit(chromedp.ID("call-state")))
	waitFor("filter dead calls", `location.search === "?state=dead" && document.readyState === "complete"`)
	run("filtered", shots.take("service-calls-dead"))
	if n := value(t, bctx, shots, "rows", chromedp.Evaluate[int](`document.querySelectorAll("table.calls tbody tr td.call-dead").length`)); n != 1 {
		t.Errorf("filtered on dead: %d dead rows, want 1", n)
	}
	run("open the dead call",
		chromedp.Click(chromedp.CSS(`a[href="/ui/calls/c0dead"]`)),
		chromedp.WaitVisible(chromedp.ID("retry")),
		shots.take("call"))
	if n := value(t, bctx, shots, "markup", chromedp.Evaluate[int](`document.querySelectorAll("main script, main img").length`)); n != 0 {
		t.Errorf("the call's header or body became elements")
	}
	if flash := submit("retry the call", "retry"); !strings.Contains(flash, "queued again") {
		t.Errorf("after Retry the page says %q", flash)
	}
	if state := text("state after retry", "call-state"); state != core.CallQueued {
		t.Errorf("after Retry the call is %q, want queued", state)
	}

	run("events page",
		chromedp.Navigate(srv.URL+"/ui/async"),
		chromedp.WaitVisible(chromedp.ID("schedules")),
		shots.take("events"),
		chromedp.Click(chromedp.CSS(`a[href="/ui/schedules/nightly"]`)),
		chromedp.WaitVisible(chromedp.ID("run-now")),
		shots.take("schedule"))
	if flash := submit("suspend the schedule", "suspend"); !strings.Contains(flash, "suspended") {
		t.Errorf("after Suspend the page says %q", flash)
	}
	if flash := submit("resume the schedule", "resume"); !strings.Contains(flash, "resumed") {
		t.Errorf("after Resume the page says %q", flash)
	}
	if flash := submit("run the schedule now", "run-now"); !strings.Contains(flash, "fired now: call 0123456789abcdefghijklmnop") {
		t.Errorf("after Run now the page says %q", flash)
	}
	stand.mu.Lock()
	defer stand.mu.Unlock()
	if stand.runs != 1 || stand.schedules[0].Suspend {
		t.Errorf("after the buttons: %d runs, suspended %v; want 1 run, not suspended", stand.runs, stand.schedules[0].Suspend)
	}
}
