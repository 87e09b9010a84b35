package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/core"
)

const evilMarkup = `<script>alert("x")</script>`

// fakeCalls is the async package's calls as the API sees them.
type fakeCalls struct {
	mu      sync.Mutex
	calls   []core.Call // newest first
	lists   []string    // the states List was asked for
	retried []string
}

func (f *fakeCalls) Get(_ context.Context, id string) (*core.Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.calls {
		if f.calls[i].ID == id {
			c := f.calls[i]
			return &c, nil
		}
	}
	return nil, core.NotFoundf("no call %q", id)
}

func (f *fakeCalls) List(_ context.Context, service, state string, limit int) ([]core.Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, state)
	var out []core.Call
	for _, c := range f.calls {
		if c.Service == service && (state == "" || c.State == state) && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeCalls) Retry(_ context.Context, id string) (*core.Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.calls {
		if f.calls[i].ID != id {
			continue
		}
		if s := f.calls[i].State; s != core.CallDead && s != core.CallFailed {
			return nil, core.Conflictf("call %s is %s: only dead or failed calls can be retried", id, s)
		}
		f.retried = append(f.retried, id)
		f.calls[i].State = core.CallQueued
		c := f.calls[i]
		return &c, nil
	}
	return nil, core.NotFoundf("no call %q", id)
}

// fakeTriggers serves the reads of triggers; the dashboard changes none.
type fakeTriggers struct{ triggers []core.Trigger }

func (f *fakeTriggers) Get(_ context.Context, name string) (core.Trigger, error) {
	for _, t := range f.triggers {
		if t.Name == name {
			return t, nil
		}
	}
	return core.Trigger{}, core.NotFoundf("no trigger %q", name)
}

func (f *fakeTriggers) List(context.Context) ([]core.Trigger, error) {
	out := slices.Clone(f.triggers)
	for i := range out {
		out[i].Deliveries = nil
	}
	return out, nil
}

func (f *fakeTriggers) Create(context.Context, core.Trigger) (core.Trigger, error) {
	return core.Trigger{}, core.Conflictf("not in this fake")
}
func (f *fakeTriggers) Delete(context.Context, string) error {
	return core.Conflictf("not in this fake")
}
func (f *fakeTriggers) Ingest(context.Context, string, http.Header, []byte) ([]string, string, error) {
	return nil, "", core.Conflictf("not in this fake")
}

// fakeSchedules keeps schedules and records suspends and runs.
type fakeSchedules struct {
	mu        sync.Mutex
	schedules []core.Schedule
	runs      []string
}

func (f *fakeSchedules) find(name string) (*core.Schedule, error) {
	for i := range f.schedules {
		if f.schedules[i].Name == name {
			return &f.schedules[i], nil
		}
	}
	return nil, core.NotFoundf("no schedule %q", name)
}

func (f *fakeSchedules) Get(_ context.Context, name string) (core.Schedule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.find(name)
	if err != nil {
		return core.Schedule{}, err
	}
	return *s, nil
}

func (f *fakeSchedules) List(context.Context) ([]core.Schedule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.schedules)
	for i := range out {
		out[i].Runs = nil
	}
	return out, nil
}

func (f *fakeSchedules) Update(_ context.Context, name string, p core.SchedulePatch) (core.Schedule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.find(name)
	if err != nil {
		return core.Schedule{}, err
	}
	if p.Suspend != nil {
		s.Suspend = *p.Suspend
	}
	return *s, nil
}

func (f *fakeSchedules) RunNow(_ context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.find(name); err != nil {
		return "", err
	}
	f.runs = append(f.runs, name)
	return "0123456789abcdefghijklmnop", nil
}

func (f *fakeSchedules) Create(context.Context, core.Schedule) (core.Schedule, error) {
	return core.Schedule{}, core.Conflictf("not in this fake")
}
func (f *fakeSchedules) Delete(context.Context, string) error {
	return core.Conflictf("not in this fake")
}
func (f *fakeSchedules) NextN(context.Context, string, int) ([]time.Time, error) {
	return nil, core.Conflictf("not in this fake")
}

type asyncFakes struct {
	calls     *fakeCalls
	triggers  *fakeTriggers
	schedules *fakeSchedules
}

func newAsyncHarness(t *testing.T) (*harness, *asyncFakes) {
	t.Helper()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fin := at.Add(time.Second)
	next := at.Add(time.Hour)
	dead := core.Call{ID: "c0dead", Service: "hello", State: core.CallDead, Origin: "trigger:orders",
		Request: core.CallRequest{Method: "POST", Path: "/hook", Query: "a=1",
			Header: http.Header{"X-Evil": {evilMarkup}, "Authorization": {"Bearer secret-of-the-caller"}}, Body: []byte("body " + evilMarkup)},
		Attempts: []core.CallAttempt{
			{StartedAt: at, FinishedAt: &fin, Status: 503, DurationMS: 12.5, Version: 2, Error: "answered 503 " + evilMarkup},
			{StartedAt: at.Add(time.Minute), Status: 502, DurationMS: 1500, Version: 2},
		},
		Response: &core.CallResponse{Status: 502, Header: http.Header{"Content-Type": {"text/html"}}, Body: []byte("<b>bad gateway</b>"), Truncated: true},
		Error:    "out of attempts", SubmittedAt: at, FinishedAt: &fin,
		Callback: "https://example.com/cb", CallbackStatus: 204}
	f := &asyncFakes{
		calls: &fakeCalls{calls: []core.Call{
			{ID: "c3ok", Service: "hello", State: core.CallSucceeded, Origin: "api", SubmittedAt: at,
				Attempts: []core.CallAttempt{{StartedAt: at, Status: 200, DurationMS: 3}}, Response: &core.CallResponse{Status: 200}},
			{ID: "c2failed", Service: "hello", State: core.CallFailed, Origin: "schedule:nightly", SubmittedAt: at,
				Attempts: []core.CallAttempt{{StartedAt: at, Status: 404}}},
			{ID: "c1queued", Service: "hello", State: core.CallQueued, Origin: "api", SubmittedAt: at, NextAttemptAt: &next},
			dead,
			{ID: "other", Service: "another", State: core.CallDead, SubmittedAt: at},
		}},
		triggers: &fakeTriggers{triggers: []core.Trigger{{Name: "orders", Service: "hello", Subject: "orders.>", Tag: "canary",
			Filters: []string{"type=order.created", "source^=" + evilMarkup}, CreatedAt: at, Deliveries: []core.Call{dead}}}},
		schedules: &fakeSchedules{schedules: []core.Schedule{{Name: "nightly", Service: "hello", Cron: "0 3 * * *", TZ: "Europe/Paris",
			CreatedAt: at, LastFire: &at, Next: &next,
			Runs: []core.ScheduleRun{
				{At: at, FiredAt: at.Add(time.Second), CallID: "c2failed", State: core.CallFailed, DurationMS: 40},
				{At: at.Add(-24 * time.Hour), State: "skipped", Note: "skipped: " + evilMarkup},
			}}}},
	}
	h := newHarnessAPI(t, nil, nil, api.WithCalls(f.calls), api.WithTriggers(f.triggers), api.WithSchedules(f.schedules))
	h.deploy("hello", 1)
	h.login()
	return h, f
}

// mustHave fails unless body has every one of want.
func mustHave(t *testing.T, what, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s does not have %q", what, w)
		}
	}
}

func TestAsyncPagesRender(t *testing.T) {
	h, f := newAsyncHarness(t)
	cases := []struct {
		name, path string
		want       []string
	}{
		{"service page", "/ui/services/hello", []string{`<h2>Async calls</h2>`, `id="dead-count" class="bad">1</strong>`,
			`<a href="/ui/calls/c0dead"><code>c0dead</code></a>`, `<td class="call-dead">dead</td>`, `<td class="num">2</td><td>502</td>`,
			`<a href="/ui/triggers/orders">trigger:orders</a>`, `<a href="/ui/schedules/nightly">schedule:nightly</a>`,
			`<option value="failed">failed</option>`, `<form class="filters" method="get" action="/ui/services/hello#calls">`}},
		{"service page, dead only", "/ui/services/hello?state=dead", []string{`<option value="dead" selected>dead</option>`, `c0dead`}},
		{"call page", "/ui/calls/c0dead", []string{`id="call-state">dead</td>`, `<code>/hook?a=1</code>`, `<td>POST</td>`,
			`<td class="num">12.5 ms</td><td>v2</td>`, `<td class="num">1500 ms</td>`, `<td>2026-01-02 03:04:05 UTC</td><td>503</td>`,
			`yes: the service answered more than is kept`, `&lt;b&gt;bad gateway&lt;/b&gt;`, `<code>https://example.com/cb</code>: answered 204`,
			`out of attempts`, `<button type="submit" id="retry">Retry</button>`, `<a href="/ui/triggers/orders">trigger:orders</a>`,
			`<td class="msg">[redacted]</td>`}},
		{"events page", "/ui/async", []string{`aria-current="page">Events</a>`, `<a href="/ui/triggers/orders">orders</a>`,
			`<code>orders.&gt;</code>`, `<td>canary</td>`, `type=order.created · source^=`, `<a href="/ui/schedules/nightly">nightly</a>`,
			`<code>0 3 * * *</code>`, `<td>Europe/Paris</td>`, `<td>2026-01-02 04:04:05 UTC</td>`, `<td class="call-failed">failed</td>`, `<td>no</td>`}},
		{"trigger page", "/ui/triggers/orders", []string{`<h1>Trigger orders</h1>`, `<a href="/ui/calls/c0dead"><code>c0dead</code></a>`,
			`<td class="call-dead">dead</td>`}},
		{"schedule page", "/ui/schedules/nightly", []string{`<h1>Schedule nightly</h1>`, `<td>2026-01-02 03:04:05 UTC</td><td>2026-01-02 03:04:06 UTC</td>`,
			`<a href="/ui/calls/c2failed"><code>c2failed</code></a>`, `<td class="num">40.0 ms</td>`, `<td class="call-skipped">skipped</td>`,
			`id="suspend"`, `id="run-now"`, `action="/ui/schedules/nightly/run"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("GET", tc.path, nil, nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.path, r.status, r.body)
			}
			mustHave(t, tc.path, r.body, tc.want...)
			for _, bad := range []string{"<script>", "style=", "<style", "onclick", "javascript:"} {
				if strings.Contains(r.body, bad) {
					t.Errorf("GET %s has %q: unescaped, or forbidden by the CSP", tc.path, bad)
				}
			}
			if got := r.header.Get("Content-Security-Policy"); got == "" {
				t.Errorf("GET %s: no Content-Security-Policy", tc.path)
			}
		})
	}
	f.calls.mu.Lock()
	lists := slices.Clone(f.calls.lists)
	f.calls.mu.Unlock()
	if !slices.Contains(lists, core.CallDead) || !slices.Contains(lists, "") {
		t.Errorf("the service page asked for calls in states %q, want the dead ones (to count them) and any", lists)
	}
	// A succeeded call has no Retry button.
	if r := h.do("GET", "/ui/calls/c3ok", nil, nil); r.status != 200 || strings.Contains(r.body, `id="retry"`) {
		t.Errorf("a succeeded call's page: %d, with a Retry button: %v", r.status, strings.Contains(r.body, `id="retry"`))
	}
	// An unknown state is said, not sent.
	if r := h.do("GET", "/ui/services/hello?state=%3Cb%3E", nil, nil); r.status != 200 || !strings.Contains(r.body, `There is no call state &#34;&lt;b&gt;&#34;`) {
		t.Errorf("state=<b>: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/ui/calls/nope", "/ui/triggers/nope", "/ui/schedules/nope"} {
		if r := h.do("GET", path, nil, nil); r.status != http.StatusNotFound || !strings.Contains(r.body, `class="error"`) {
			t.Errorf("GET %s: got %d, want 404 with the API's message: %s", path, r.status, r.body)
		}
	}
}

func TestAsyncEscaping(t *testing.T) {
	h, _ := newAsyncHarness(t)
	const escaped = `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`
	for path, want := range map[string]int{
		"/ui/calls/c0dead":      3, // a header, the body, an attempt's error
		"/ui/async":             1, // a filter
		"/ui/schedules/nightly": 1, // a run's note
	} {
		r := h.do("GET", path, nil, nil)
		if strings.Contains(r.body, evilMarkup) {
			t.Errorf("GET %s has the markup unescaped", path)
		}
		if got := strings.Count(r.body, escaped); got != want {
			t.Errorf("GET %s: the escaped markup appears %d times, want %d", path, got, want)
		}
	}
	r := h.do("GET", "/ui/calls/c0dead", nil, nil)
	mustHave(t, "the call page", r.body, `<td><code>X-Evil</code></td><td class="msg">`+escaped+`</td>`, `<pre class="body">body `+escaped+`</pre>`)
	if strings.Contains(r.body, "secret-of-the-caller") {
		t.Errorf("the call page shows the request's Authorization")
	}
}

func TestAsyncChangesNeedCSRF(t *testing.T) {
	h, f := newAsyncHarness(t)
	csrf := h.csrf("/ui/schedules/nightly")
	cases := []struct {
		name, path string
		done       func() bool
		redirect   string
		flash      string
	}{
		{"retry", "/ui/calls/c0dead/retry", func() bool { return len(f.calls.retried) == 1 }, "/ui/calls/c0dead?done=retry",
			"The call is queued again"},
		{"suspend", "/ui/schedules/nightly/suspend", func() bool { return f.schedules.schedules[0].Suspend }, "/ui/schedules/nightly?done=suspend",
			"The schedule is suspended"},
		{"resume", "/ui/schedules/nightly/resume", func() bool { return !f.schedules.schedules[0].Suspend }, "/ui/schedules/nightly?done=resume",
			"The schedule is resumed"},
		{"run", "/ui/schedules/nightly/run", func() bool { return len(f.schedules.runs) == 1 }, "/ui/schedules/nightly?call=0123456789abcdefghijklmnop&done=run",
			"The schedule fired now: call 0123456789abcdefghijklmnop."},
	}
	lockedDone := func(done func() bool) bool {
		f.calls.mu.Lock()
		f.schedules.mu.Lock()
		defer f.calls.mu.Unlock()
		defer f.schedules.mu.Unlock()
		return done()
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "resume" && !lockedDone(func() bool { return f.schedules.schedules[0].Suspend }) {
				t.Fatal("resume needs the suspend before it")
			}
			for refused, form := range map[string]url.Values{"no token": {}, "wrong token": {"csrf": {"AAAA" + csrf[4:]}}} {
				r := h.do("POST", tc.path, form, h.sameOrigin())
				if r.status != http.StatusForbidden || !strings.Contains(r.body, "Refused") {
					t.Errorf("%s: got %d, want 403 saying Refused: %s", refused, r.status, r.body)
				}
				if lockedDone(tc.done) {
					t.Fatalf("%s: a refused POST made the change", refused)
				}
			}
			r := h.do("POST", tc.path, url.Values{"csrf": {csrf}}, h.sameOrigin())
			if r.status != http.StatusSeeOther || r.header.Get("Location") != tc.redirect {
				t.Fatalf("with the token: got %d to %q, want 303 to %s: %s", r.status, r.header.Get("Location"), tc.redirect, r.body)
			}
			if !lockedDone(tc.done) {
				t.Errorf("with the token: no change")
			}
			if r := h.do("GET", tc.redirect, nil, nil); !strings.Contains(r.body, `id="flash">`+tc.flash) {
				t.Errorf("after the redirect: no flash %q: %s", tc.flash, r.body)
			}
		})
	}
	// The suspended page offers Resume instead.
	h.do("POST", "/ui/schedules/nightly/suspend", url.Values{"csrf": {csrf}}, h.sameOrigin())
	if r := h.do("GET", "/ui/schedules/nightly", nil, nil); !strings.Contains(r.body, `id="resume"`) || strings.Contains(r.body, `id="suspend"`) {
		t.Errorf("a suspended schedule's page does not offer Resume (alone)")
	}
	// Retrying a call that succeeded: the API's conflict, on the call's page.
	r := h.do("POST", "/ui/calls/c3ok/retry", url.Values{"csrf": {csrf}}, h.sameOrigin())
	if r.status != http.StatusConflict || !strings.Contains(r.body, "only dead or failed calls can be retried") || !strings.Contains(r.body, `id="call-state">succeeded`) {
		t.Errorf("retry of a succeeded call: got %d, want 409 with the API's message on the call's page: %s", r.status, r.body)
	}
	// A flash names a call only when it looks like one.
	if r := h.do("GET", "/ui/schedules/nightly?done=run&call=%3Cb%3Ehi", nil, nil); strings.Contains(r.body, "hi.") || !strings.Contains(r.body, "The schedule fired now.") {
		t.Errorf("a made-up call in the flash: %s", r.body)
	}
	h.clients.mu.Lock()
	defer h.clients.mu.Unlock()
	for _, want := range []string{"POST /v1/calls/c0dead/retry dashboard", "PATCH /v1/schedules/nightly dashboard", "POST /v1/schedules/nightly/run dashboard"} {
		if !slices.Contains(h.clients.seen, want) {
			t.Errorf("the API did not see %q: %q", want, h.clients.seen)
		}
	}
}

func TestAsyncOff(t *testing.T) {
	h := newHarness(t, nil) // an API without async parts answers 503
	h.deploy("hello", 1)
	h.login()
	const off = "Async calls are off on this server"
	for _, path := range []string{"/ui/services/hello", "/ui/services/hello?state=dead", "/ui/async"} {
		r := h.do("GET", path, nil, nil)
		if r.status != http.StatusOK || !strings.Contains(r.body, off) {
			t.Errorf("GET %s: got %d, want 200 saying %q: %s", path, r.status, off, r.body)
		}
	}
	if r := h.do("GET", "/ui/async", nil, nil); !strings.Contains(r.body, `id="triggers-off"`) || !strings.Contains(r.body, `id="schedules-off"`) {
		t.Errorf("the events page does not say so for both triggers and schedules: %s", r.body)
	}
	for _, path := range []string{"/ui/calls/x", "/ui/triggers/x", "/ui/schedules/x"} {
		r := h.do("GET", path, nil, nil)
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, off) {
			t.Errorf("GET %s: got %d, want 503 saying %q: %s", path, r.status, off, r.body)
		}
	}
	csrf := h.csrf("/ui/async")
	for _, path := range []string{"/ui/calls/x/retry", "/ui/schedules/x/suspend", "/ui/schedules/x/run"} {
		r := h.do("POST", path, url.Values{"csrf": {csrf}}, h.sameOrigin())
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, off) {
			t.Errorf("POST %s: got %d, want 503 saying %q: %s", path, r.status, off, r.body)
		}
	}
}
