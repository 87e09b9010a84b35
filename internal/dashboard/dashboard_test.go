package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/dashboard"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

const token = "test-admin-token"

type harness struct {
	t       *testing.T
	srv     *httptest.Server
	c       *apiclient.Client // straight to the API, as the CLI
	browser *http.Client      // with a cookie jar, no redirects followed
	clients *clientLog
}

// clientLog records the Wisp-Client header of the API's changes.
type clientLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *clientLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			l.mu.Lock()
			l.seen = append(l.seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Wisp-Client"))
			l.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func newHarness(t *testing.T, edit func(*dashboard.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, edit, nil)
}

// newHarnessWith is newHarness with extra API routes in front of the API.
func newHarnessWith(t *testing.T, edit func(*dashboard.Config), extra func(*http.ServeMux)) *harness {
	t.Helper()
	return newHarnessAPI(t, edit, extra)
}

// newHarnessAPI is newHarnessWith with options of the API (its async
// parts, for instance).
func newHarnessAPI(t *testing.T, edit func(*dashboard.Config), extra func(*http.ServeMux), opts ...api.Option) *harness {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "wisp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	a, err := api.New(api.Config{Token: token, Domain: "localhost", RouterPort: 8080}, st, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	log := &clientLog{}
	apiH := http.Handler(log.wrap(a))
	if extra != nil {
		m := http.NewServeMux()
		extra(m)
		m.Handle("/", apiH)
		apiH = m
	}
	cfg := dashboard.Config{Token: token, API: apiH}
	if edit != nil {
		edit(&cfg)
	}
	ui, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", ui)
	mux.Handle("/", apiH)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &harness{t: t, srv: srv, c: apiclient.New(srv.URL, token), clients: log,
		browser: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (h *harness) do(method, path string, form url.Values, header http.Header) resp {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	r, err := h.browser.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{status: r.StatusCode, header: r.Header, body: string(b)}
}

// sameOrigin is what a browser sends with a form posted from a page of the
// dashboard.
func (h *harness) sameOrigin() http.Header {
	return http.Header{"Origin": {h.srv.URL}, "Sec-Fetch-Site": {"same-origin"}}
}

func (h *harness) login() {
	h.t.Helper()
	r := h.do("POST", "/ui/login", url.Values{"token": {token}, "next": {"/ui/"}}, h.sameOrigin())
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/" {
		h.t.Fatalf("login: got %d to %q, want 303 to /ui/: %s", r.status, r.header.Get("Location"), r.body)
	}
}

// csrf reads the CSRF token of a page.
func (h *harness) csrf(path string) string {
	h.t.Helper()
	r := h.do("GET", path, nil, nil)
	i := strings.Index(r.body, `name="csrf-token" content="`)
	if r.status != 200 || i < 0 {
		h.t.Fatalf("GET %s: %d, no csrf token: %s", path, r.status, r.body)
	}
	rest := r.body[i+len(`name="csrf-token" content="`):]
	return rest[:strings.Index(rest, `"`)]
}

func (h *harness) deploy(name string, versions int) {
	h.t.Helper()
	ctx := h.t.Context()
	if _, err := h.c.CreateService(ctx, name, core.PolicyPatch{}); err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i < versions; i++ {
		if _, err := h.c.CreateVersion(ctx, name, core.VersionSpec{Image: "greeter:1"}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func TestLogin(t *testing.T) {
	h := newHarness(t, nil)
	if r := h.do("GET", "/ui/", nil, nil); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/ui/login") {
		t.Fatalf("GET /ui/ without a session: got %d to %q, want 303 to the login", r.status, r.header.Get("Location"))
	}
	if r := h.do("GET", "/ui/api/overview", nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /ui/api/overview without a session: got %d, want 401", r.status)
	}
	r := h.do("POST", "/ui/login", url.Values{"token": {"wrong"}}, h.sameOrigin())
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong token") {
		t.Fatalf("wrong token: got %d, want 401 saying Wrong token: %s", r.status, r.body)
	}
	if len(r.header.Values("Set-Cookie")) != 0 {
		t.Errorf("wrong token set a cookie: %v", r.header.Values("Set-Cookie"))
	}
	if r := h.do("POST", "/ui/login", url.Values{"token": {token}}, http.Header{"Origin": {"https://evil.example"}}); r.status != http.StatusForbidden {
		t.Errorf("login from another origin: got %d, want 403", r.status)
	}
	h.login()
	if r := h.do("GET", "/ui/", nil, nil); r.status != 200 || !strings.Contains(r.body, "<h1>Services</h1>") {
		t.Fatalf("GET /ui/ after login: %d %s", r.status, r.body)
	}
	// The login's next stays inside the dashboard.
	r = h.do("POST", "/ui/login", url.Values{"token": {token}, "next": {"//evil.example/"}}, h.sameOrigin())
	if got := r.header.Get("Location"); got != "/ui/" {
		t.Errorf("next=//evil.example/: redirected to %q, want /ui/", got)
	}
	// Log out: the cookie is cleared.
	csrf := h.csrf("/ui/")
	r = h.do("POST", "/ui/logout", url.Values{"csrf": {csrf}}, h.sameOrigin())
	if r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/ui/", nil, nil); r.status != http.StatusSeeOther {
		t.Errorf("GET /ui/ after logout: got %d, want 303 to the login", r.status)
	}
}

func TestSessionCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		h := newHarness(t, func(c *dashboard.Config) { c.Secure = secure; c.SessionTTL = time.Hour })
		r := h.do("POST", "/ui/login", url.Values{"token": {token}}, h.sameOrigin())
		cookies := (&http.Response{Header: r.header}).Cookies()
		if len(cookies) != 1 {
			t.Fatalf("login set %d cookies, want 1", len(cookies))
		}
		c := cookies[0]
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != secure || c.Path != "/ui/" || c.MaxAge != 3600 {
			t.Errorf("secure=%v: cookie %+v: want HttpOnly, SameSite=Strict, Secure=%v, Path=/ui/, Max-Age=3600", secure, c, secure)
		}
		if strings.Contains(c.Value, token) {
			t.Errorf("the cookie carries the token: %q", c.Value)
		}
	}
}

func TestSessionExpiryAndForgery(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, func(c *dashboard.Config) { c.Now = clock; c.SessionTTL = time.Hour })
	h.login()
	u, _ := url.Parse(h.srv.URL + "/ui/")
	value := h.browser.Jar.Cookies(u)[0].Value

	get := func(cookie string) int { return getWith(t, h.srv.URL, cookie) }
	if got := get(value); got != 200 {
		t.Fatalf("a fresh session: got %d, want 200", got)
	}
	exp, sig, _ := strings.Cut(value, ".")
	for name, v := range map[string]string{
		"a later expiry with the old signature": "9" + exp + "." + sig,
		"no signature":                          exp,
		"garbage":                               "x.y",
	} {
		if got := get(v); got != http.StatusSeeOther {
			t.Errorf("%s: got %d, want 303 to the login", name, got)
		}
	}
	// Another token's dashboard (another installation) refuses it.
	other := newHarness(t, func(c *dashboard.Config) { c.Token = "another-token"; c.Now = clock })
	if got := getWith(t, other.srv.URL, value); got != http.StatusSeeOther {
		t.Errorf("a session of another token: got %d, want 303 to the login", got)
	}
	mu.Lock()
	now = now.Add(time.Hour + time.Second)
	mu.Unlock()
	if got := get(value); got != http.StatusSeeOther {
		t.Errorf("an expired session: got %d, want 303 to the login", got)
	}
}

// getWith GETs a page of the dashboard at base with a session cookie.
func getWith(t *testing.T, base, cookie string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/ui/platform", nil)
	req.AddCookie(&http.Cookie{Name: "wisp_session", Value: cookie})
	r, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	return r.StatusCode
}

func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t, nil)
	for _, path := range []string{"/ui/login", "/ui/", "/ui/static/app.js", "/ui/static/app.css", "/ui/nope"} {
		r := h.do("GET", path, nil, nil)
		if got := r.header.Get("Content-Security-Policy"); got != dashboard.CSP {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", path, got, dashboard.CSP)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: nosniff %q, referrer %q", path, r.header.Get("X-Content-Type-Options"), r.header.Get("Referrer-Policy"))
		}
	}
	if r := h.do("GET", "/ui/static/", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("GET /ui/static/: %d, want 404 (no listing)", r.status)
	}
	if r := h.do("GET", "/ui/static/app.js", nil, nil); r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), "javascript") {
		t.Errorf("GET /ui/static/app.js: %d %q", r.status, r.header.Get("Content-Type"))
	}
	// No inline script or style anywhere: the pages would break under the CSP.
	h.login()
	h.deploy("hello", 2)
	for _, path := range []string{"/ui/", "/ui/services/hello", "/ui/platform", "/ui/services/hello/logs"} {
		r := h.do("GET", path, nil, nil)
		if r.status != 200 {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
		for _, bad := range []string{"<script>", "style=", "<style", "onclick", "onload", "javascript:"} {
			if strings.Contains(r.body, bad) {
				t.Errorf("GET %s has %q, which the CSP forbids", path, bad)
			}
		}
	}
}

func TestBearerTokenAccepted(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy("hello", 1)
	if r := h.do("GET", "/ui/services/hello", nil, http.Header{"Authorization": {"Bearer " + token}}); r.status != 200 {
		t.Errorf("GET with the token in Authorization: %d", r.status)
	}
	if r := h.do("GET", "/ui/services/hello", nil, http.Header{"Authorization": {"Bearer nope"}}); r.status != http.StatusSeeOther {
		t.Errorf("GET with a wrong token in Authorization: got %d, want 303 to the login", r.status)
	}
}

func TestCSRF(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy("hello", 2)
	h.login()
	csrf := h.csrf("/ui/services/hello")
	form := func(tok string) url.Values {
		v := url.Values{"w1": {"90"}, "w2": {"10"}, "action": {"apply"}}
		if tok != "" {
			v.Set("csrf", tok)
		}
		return v
	}
	cases := []struct {
		name   string
		form   url.Values
		header http.Header
	}{
		{"no token", form(""), h.sameOrigin()},
		{"wrong token", form("AAAA" + csrf[4:]), h.sameOrigin()},
		{"cross-site with the token", form(csrf), http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}},
		{"another origin, no fetch metadata", form(csrf), http.Header{"Origin": {"https://evil.example"}}},
		{"same-site but not same-origin", form(csrf), http.Header{"Sec-Fetch-Site": {"same-site"}}},
		{"Origin null without fetch metadata", form(csrf), http.Header{"Origin": {"null"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", "/ui/services/hello/traffic", tc.form, tc.header)
			if r.status != http.StatusForbidden || !strings.Contains(r.body, "Refused") {
				t.Errorf("got %d, want 403 saying Refused: %s", r.status, r.body)
			}
		})
	}
	if tr, err := h.c.GetTraffic(t.Context(), "hello"); err == nil && len(tr.Weights) > 1 {
		t.Fatalf("a refused change changed the split: %+v", tr)
	}
	// The same change from the page goes through, marked as the dashboard's.
	// Under Referrer-Policy no-referrer Chromium sends Origin: null with a
	// form, and Sec-Fetch-Site: same-origin.
	r := h.do("POST", "/ui/services/hello/traffic", form(csrf), http.Header{"Origin": {"null"}, "Sec-Fetch-Site": {"same-origin"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("apply from the page: %d %s", r.status, r.body)
	}
	tr, err := h.c.GetTraffic(t.Context(), "hello")
	if err != nil || splitOf(tr) != "1:90 2:10" {
		t.Fatalf("traffic after apply: %+v %v, want 1:90 2:10", tr, err)
	}
	h.clients.mu.Lock()
	defer h.clients.mu.Unlock()
	last := h.clients.seen[len(h.clients.seen)-1]
	if last != "PUT /v1/services/hello/traffic dashboard" {
		t.Errorf("the API saw %q, want the PUT with Wisp-Client: dashboard", last)
	}
}

func splitOf(t core.TrafficEntry) string {
	var parts []string
	for _, w := range t.Weights {
		parts = append(parts, itoa(w.Version)+":"+itoa(w.Percent))
	}
	return strings.Join(parts, " ")
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestTrafficEditor(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy("hello", 2)
	h.login()
	csrf := h.csrf("/ui/services/hello")
	post := func(v url.Values) resp {
		v.Set("csrf", csrf)
		return h.do("POST", "/ui/services/hello/traffic", v, h.sameOrigin())
	}
	before, _ := h.c.GetTraffic(t.Context(), "hello")

	t.Run("preview changes nothing", func(t *testing.T) {
		r := post(url.Values{"w1": {"70"}, "w2": {"30"}, "action": {"preview"}})
		if r.status != 200 || !strings.Contains(r.body, "Preview of the change") || !strings.Contains(r.body, "-30") {
			t.Fatalf("preview: %d %s", r.status, r.body)
		}
		after, _ := h.c.GetTraffic(t.Context(), "hello")
		if after.ID != before.ID {
			t.Errorf("preview changed the split: entry %d, was %d", after.ID, before.ID)
		}
	})
	t.Run("preview warns about the sum", func(t *testing.T) {
		r := post(url.Values{"w1": {"50"}, "w2": {"40"}, "action": {"preview"}})
		if !strings.Contains(r.body, "the weights must sum to 100") {
			t.Errorf("preview of 50/40 does not warn: %s", r.body)
		}
	})
	t.Run("the API's message for a bad sum", func(t *testing.T) {
		r := post(url.Values{"w1": {"50"}, "w2": {"40"}, "action": {"apply"}})
		if r.status < 400 || r.status >= 500 || !strings.Contains(r.body, `class="error"`) || !strings.Contains(r.body, "100") {
			t.Fatalf("50/40: got %d, want a 4xx with the API's message: %s", r.status, r.body)
		}
		if !strings.Contains(r.body, `name="w2" id="w2" value="40"`) {
			t.Errorf("the editor lost the input")
		}
	})
	t.Run("a weight that is not a number", func(t *testing.T) {
		r := post(url.Values{"w1": {"ninety"}, "action": {"apply"}})
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "whole number") {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("a tag on an unknown version", func(t *testing.T) {
		r := post(url.Values{"w1": {"100"}, "tag_name": {"canary"}, "tag_version": {"7"}, "action": {"apply"}})
		if r.status < 400 || r.status >= 500 || !strings.Contains(r.body, `class="error"`) {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("a stale page", func(t *testing.T) {
		if _, err := h.c.SetTraffic(t.Context(), "hello", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}}); err != nil {
			t.Fatal(err)
		}
		r := post(url.Values{"w1": {"50"}, "w2": {"50"}, "if_entry": {"1"}, "action": {"apply"}})
		if r.status != http.StatusPreconditionFailed || !strings.Contains(r.body, "changed since this page was loaded") {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("apply with tags and sticky", func(t *testing.T) {
		r := post(url.Values{"w1": {"90"}, "w2": {"10"}, "tag_name": {"canary", ""}, "tag_version": {"2", ""}, "sticky": {"1"}, "action": {"apply"}})
		if r.status != http.StatusSeeOther {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
		tr, _ := h.c.GetTraffic(t.Context(), "hello")
		if splitOf(tr) != "1:90 2:10" || tr.Tags["canary"] != 2 || !tr.Sticky {
			t.Errorf("traffic %+v, want 90/10, canary→2, sticky", tr)
		}
	})
	t.Run("a rule that does not parse", func(t *testing.T) {
		r := post(url.Values{"w1": {"100"}, "rules": {"header:X-Beta=1 -> 2\nheader:X~=( -> 2"}, "action": {"apply"}})
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "rules, line 2") || !strings.Contains(r.body, "does not compile") {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
		if !strings.Contains(r.body, "header:X~=( -&gt; 2</textarea>") {
			t.Errorf("the editor lost the rules the user typed")
		}
	})
	t.Run("the API's message for a rule to an unknown version", func(t *testing.T) {
		r := post(url.Values{"w1": {"100"}, "rules": {"header:X-Beta=1 -> 7"}, "action": {"apply"}})
		if r.status < 400 || r.status >= 500 || !strings.Contains(r.body, "rule 1: service hello has no version 7") {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("apply rules, then the page shows them", func(t *testing.T) {
		cur, _ := h.c.GetTraffic(t.Context(), "hello")
		r := post(url.Values{"w1": {"100"}, "tag_name": {"canary"}, "tag_version": {"2"}, "if_entry": {itoa(int(cur.ID))},
			"rules": {"header:X-Beta=1 -> 2\r\n\r\n  cookie:beta && source:10.0.0.0/8 -> tag:canary  "}, "action": {"apply"}})
		if r.status != http.StatusSeeOther {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
		tr, _ := h.c.GetTraffic(t.Context(), "hello")
		if len(tr.Rules) != 2 || tr.Rules[0].String() != "header:X-Beta=1 -> 2" || tr.Rules[1].String() != "cookie:beta && source:10.0.0.0/8 -> tag:canary" {
			t.Fatalf("rules %+v", tr.Rules)
		}
		page := h.do("GET", "/ui/services/hello", nil, nil)
		for _, want := range []string{
			`<ol id="current-rules" class="rules"><li><code>header:X-Beta=1 -&gt; 2</code></li>`,
			">header:X-Beta=1 -&gt; 2\ncookie:beta &amp;&amp; source:10.0.0.0/8 -&gt; tag:canary</textarea>",
			`· rules <code class="rules">header:X-Beta=1 -&gt; 2; cookie:beta &amp;&amp; source:10.0.0.0/8 -&gt; tag:canary</code>`,
		} {
			if !strings.Contains(page.body, want) {
				t.Errorf("the service page lacks %s", want)
			}
		}
		// A change of the weights alone keeps the rules the editor shows.
		r = post(url.Values{"w1": {"50"}, "w2": {"50"}, "tag_name": {"canary"}, "tag_version": {"2"}, "if_entry": {itoa(int(tr.ID))},
			"rules": {"header:X-Beta=1 -> 2\ncookie:beta && source:10.0.0.0/8 -> tag:canary"}, "action": {"preview"}})
		if !strings.Contains(r.body, `id="preview-rules">Rules after: header:X-Beta=1 -&gt; 2; cookie:beta`) {
			t.Errorf("the preview does not show the rules: %s", r.body)
		}
	})
}

func TestRollbackFromTimeline(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy("hello", 2)
	ctx := t.Context()
	first, err := h.c.SetTraffic(ctx, "hello", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := h.c.SetTraffic(ctx, "hello", core.Traffic{Weights: []core.Weight{{Version: 2, Percent: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	h.login()
	page := h.do("GET", "/ui/services/hello", nil, nil)
	if !strings.Contains(page.body, `id="rollback-`+itoa(int(first.ID))+`"`) {
		t.Fatalf("the timeline has no rollback button for entry %d", first.ID)
	}
	csrf := h.csrf("/ui/services/hello")
	r := h.do("POST", "/ui/services/hello/rollback", url.Values{"csrf": {csrf}, "to_entry": {itoa(int(first.ID))}, "if_entry": {itoa(int(cur.ID))}}, h.sameOrigin())
	if r.status != http.StatusSeeOther {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	tr, _ := h.c.GetTraffic(ctx, "hello")
	if splitOf(tr) != "1:100" || tr.ID <= cur.ID {
		t.Errorf("after the rollback: %+v, want a new entry with 1:100", tr)
	}
	// fetch sends the token in a header instead of the form.
	hdr := h.sameOrigin()
	hdr.Set("X-CSRF-Token", csrf)
	r = h.do("POST", "/ui/services/hello/rollback", url.Values{"to_entry": {itoa(int(cur.ID))}}, hdr)
	if r.status != http.StatusSeeOther {
		t.Fatalf("rollback with X-CSRF-Token: %d %s", r.status, r.body)
	}
	if tr, _ := h.c.GetTraffic(ctx, "hello"); splitOf(tr) != "2:100" {
		t.Errorf("after the second rollback: %+v, want 2:100", tr)
	}
	// Rolling back to an entry that does not exist shows the API's message.
	r = h.do("POST", "/ui/services/hello/rollback", url.Values{"csrf": {csrf}, "to_entry": {"999"}}, h.sameOrigin())
	if r.status != http.StatusNotFound || !strings.Contains(r.body, `class="error"`) {
		t.Errorf("rollback to 999: got %d: %s", r.status, r.body)
	}
}

func TestEscaping(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	const evil = `<script>alert("x")</script>`
	if _, err := h.c.CreateService(ctx, "hello", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.CreateVersion(ctx, "hello", core.VersionSpec{Image: "greeter:1", Env: []string{"X=" + evil}, Description: evil}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.SetTraffic(ctx, "hello", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}, Message: evil}); err != nil {
		t.Fatal(err)
	}
	h.login()
	r := h.do("GET", "/ui/services/hello", nil, nil)
	if strings.Contains(r.body, "<script>") {
		t.Fatalf("the service page has an unescaped script")
	}
	if n := strings.Count(r.body, "&lt;script&gt;"); n < 3 {
		t.Errorf("the escaped text appears %d times, want 3 (env, description, message)", n)
	}
	// An image name with markup in the create-version form: the API refuses
	// it, and its message is shown escaped.
	csrf := h.csrf("/ui/services/hello")
	r = h.do("POST", "/ui/services/hello/versions", url.Values{"csrf": {csrf}, "image": {evil}}, h.sameOrigin())
	if r.status < 400 || r.status >= 500 || strings.Contains(r.body, "<script>") {
		t.Errorf("create a version with image %s: got %d (want 4xx), or unescaped: %s", evil, r.status, r.body)
	}
	// The login page's next is escaped too.
	r = h.do("GET", "/ui/login?next=/ui/%22%3E%3Cscript%3E", nil, http.Header{})
	if strings.Contains(r.body, "<script>") {
		t.Errorf("the login page reflects next unescaped")
	}
}

func TestCreateVersionForm(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy("hello", 1)
	h.login()
	csrf := h.csrf("/ui/services/hello")
	r := h.do("POST", "/ui/services/hello/versions", url.Values{"csrf": {csrf}, "image": {"greeter:2"}, "port": {"9090"}, "env": {"A=1\r\nB=2\r\n"}}, h.sameOrigin())
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	v, err := h.c.GetVersion(t.Context(), "hello", 2)
	if err != nil || v.Image != "greeter:2" || v.Port != 9090 || strings.Join(v.Env, ",") != "A=1,B=2" {
		t.Fatalf("version 2: %+v %v", v, err)
	}
	r = h.do("POST", "/ui/services/hello/versions", url.Values{"csrf": {csrf}, "image": {"greeter:2"}, "port": {"99999"}}, h.sameOrigin())
	if r.status < 400 || r.status >= 500 || !strings.Contains(r.body, "port") {
		t.Errorf("port 99999: got %d: %s", r.status, r.body)
	}
}

func TestPagesOfUnknownThings(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	for _, path := range []string{"/ui/services/nope", "/ui/services/nope/logs", "/ui/builds/12", "/ui/builds/x"} {
		r := h.do("GET", path, nil, nil)
		// 503: this API has no builder, and says so.
		if r.status < 400 || r.status >= 500 && r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, `class="error"`) {
			t.Errorf("GET %s: got %d, want a 4xx page with the message: %s", path, r.status, r.body)
		}
	}
}

func TestLogsPageWithoutLogsAPI(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy("hello", 1)
	h.login()
	r := h.do("GET", "/ui/services/hello/logs?kind=app&q=x", nil, nil)
	if r.status != 200 {
		t.Fatalf("logs page: %d %s", r.status, r.body)
	}
	if !strings.Contains(r.body, "keeps no logs") {
		t.Errorf("the logs page of an API without a log store does not say so: %s", r.body)
	}
}

func TestLogsPageAndStream(t *testing.T) {
	var mu sync.Mutex
	var seen []*http.Request
	h := newHarnessWith(t, nil, func(m *http.ServeMux) {
		m.HandleFunc("GET /v1/services/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Clone(context.WithoutCancel(r.Context())))
			mu.Unlock()
			if r.URL.Query().Get("q") == "bad" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":{"code":"bad_request","message":"kind \"nope\" is not app, platform or request"}}`)
				return
			}
			if r.Header.Get("Accept") == "text/event-stream" {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, "id: 3\nevent: log\ndata: {\"seq\":3,\"message\":\"x\"}\n\n")
				return
			}
			w.Header().Set("Content-Type", "application/x-ndjson")
			_, _ = io.WriteString(w, `{"seq":1,"time":"2026-01-02T03:04:05Z","kind":"app","service":"hello","version":1,"instance":"i-1","message":"<script>alert(1)</script>"}`+"\n")
			_, _ = io.WriteString(w, `{"seq":2,"time":"2026-01-02T03:04:06Z","kind":"platform","service":"hello","event":"instance.ready","message":"ready in 120 ms"}`+"\n")
		})
	})
	h.deploy("hello", 1)
	h.login()
	r := h.do("GET", "/ui/services/hello/logs?version=1&kind=app&kind=platform&q=hi", nil, nil)
	if r.status != 200 || strings.Contains(r.body, "<script>alert") || !strings.Contains(r.body, "&lt;script&gt;alert(1)") || !strings.Contains(r.body, "ready in 120 ms") {
		t.Fatalf("logs page: %d %s", r.status, r.body)
	}
	if !strings.Contains(r.body, `data-stream="/ui/services/hello/logs/stream?`) || !strings.Contains(r.body, "since=2026-01-02T03%3A04%3A06Z") {
		t.Errorf("the follow box does not start after the last line shown: %s", r.body)
	}
	mu.Lock()
	q := seen[0].URL.Query()
	mu.Unlock()
	if q.Get("version") != "1" || q.Get("kind") != "app,platform" || q.Get("q") != "hi" || q.Get("tail") != "200" {
		t.Errorf("the page asked the logs API for %v", q)
	}
	// The API's 400 for a bad filter is shown with its message.
	r = h.do("GET", "/ui/services/hello/logs?q=bad", nil, nil)
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "is not app, platform or request") {
		t.Errorf("a bad filter: %d %s", r.status, r.body)
	}
	// The stream is the API's event stream, with Last-Event-ID passed on.
	r = h.do("GET", "/ui/services/hello/logs/stream?kind=app", nil, http.Header{"Last-Event-ID": {"2"}})
	if r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" || !strings.Contains(r.body, "event: log") {
		t.Fatalf("stream: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	mu.Lock()
	last := seen[len(seen)-1]
	mu.Unlock()
	if last.Header.Get("Last-Event-ID") != "2" || last.URL.Query().Get("follow") != "true" || last.URL.Query().Get("kind") != "app" {
		t.Errorf("the stream asked the API with Last-Event-ID %q and %v", last.Header.Get("Last-Event-ID"), last.URL.Query())
	}
	// Not logged in: no stream.
	h.browser.Jar, _ = cookiejar.New(nil)
	if r := h.do("GET", "/ui/services/hello/logs/stream", nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("stream without a session: %d", r.status)
	}
}

func TestLiveJSON(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wisp_requests_total"}, []string{"service", "version", "code"})
	reg.MustRegister(reqs)
	s, err := dashboard.NewSampler(dashboard.SamplerConfig{Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *dashboard.Config) { c.Sampler = s })
	h.deploy("hello", 1)
	t0 := time.Now()
	s.Sample(t0.Add(-10 * time.Second))
	reqs.WithLabelValues("hello", "1", "2xx").Add(50)
	s.Sample(t0.Add(-5 * time.Second))
	h.login()
	r := h.do("GET", "/ui/api/services/hello/live", nil, nil)
	var live struct {
		Charts map[string]string            `json:"charts"`
		Latest map[string]dashboard.Point   `json:"latest"`
		Series map[string][]dashboard.Point `json:"series"`
	}
	if err := json.Unmarshal([]byte(r.body), &live); err != nil || r.status != 200 {
		t.Fatalf("live: %d %v %s", r.status, err, r.body)
	}
	if live.Latest["1"].RPS != 10 || len(live.Series["1"]) != 1 || !strings.Contains(live.Charts["1"], "<svg") || !strings.Contains(live.Charts["1"], "now 10.0") {
		t.Errorf("live JSON: %+v", live)
	}
	r = h.do("GET", "/ui/api/overview", nil, nil)
	if r.status != 200 || !strings.Contains(r.body, `"rps":"10.0"`) {
		t.Errorf("overview: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/ui/", nil, nil)
	if !strings.Contains(r.body, `<td data-k="rps" class="num">10.0</td>`) {
		t.Errorf("the services list does not show 10.0 requests/s: %s", r.body)
	}
}

func TestBuildsOnPages(t *testing.T) {
	h := newHarnessWith(t, nil, func(m *http.ServeMux) {
		build := `{"id":7,"service":"hello","status":"failed","image":"hello:<b>","version":0,"error":"step 3: <script>x</script>","created_at":"2026-01-02T03:04:05Z"}`
		m.HandleFunc("GET /v1/builds", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("service") != "hello" && r.URL.Query().Get("service") != "" {
				t.Errorf("builds of %q", r.URL.Query().Get("service"))
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"builds":[`+build+`]}`)
		})
		m.HandleFunc("GET /v1/builds/{id}", func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("id") == "9" {
				_, _ = io.WriteString(w, `{"id":9,"service":"hello","status":"running","created_at":"2026-01-02T03:04:05Z"}`)
				return
			}
			if r.PathValue("id") != "7" {
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no build 8"}}`)
				return
			}
			_, _ = io.WriteString(w, build)
		})
		m.HandleFunc("GET /v1/builds/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if r.URL.Query().Get("follow") == "true" {
				_, _ = io.WriteString(w, "followed log\n")
				return
			}
			_, _ = io.WriteString(w, "Step 1/3 : FROM scratch\n<script>evil()</script>\n")
		})
	})
	h.deploy("hello", 1)
	h.login()
	r := h.do("GET", "/ui/services/hello", nil, nil)
	if r.status != 200 || !strings.Contains(r.body, `<a href="/ui/builds/7">7</a>`) || strings.Contains(r.body, "hello:<b>") {
		t.Fatalf("service page builds: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/ui/builds/7", nil, nil)
	if r.status != 200 || !strings.Contains(r.body, "Step 1/3 : FROM scratch") || strings.Contains(r.body, "<script>evil") || !strings.Contains(r.body, "step 3: &lt;script&gt;") {
		t.Fatalf("build page: %d %s", r.status, r.body)
	}
	if strings.Contains(r.body, "data-follow") {
		t.Errorf("a failed build's page follows its log")
	}
	if r := h.do("GET", "/ui/builds/9", nil, nil); !strings.Contains(r.body, `data-follow="/ui/builds/9/log"`) {
		t.Errorf("a running build's page does not follow its log: %s", r.body)
	}
	if r := h.do("GET", "/ui/builds/7/log", nil, nil); r.status != 200 || r.body != "followed log\n" || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("the build log stream: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	if r := h.do("GET", "/ui/builds/8", nil, nil); r.status != http.StatusNotFound || !strings.Contains(r.body, "no build 8") {
		t.Errorf("build 8: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/ui/platform", nil, nil); r.status != 200 || !strings.Contains(r.body, "<th>Builds</th><td>1</td>") {
		t.Errorf("platform: %d %s", r.status, r.body)
	}
}

// TestStandbyOnServicePage: the service page shows the standby count and
// what the standbys cost, from the memory limit of the version with
// traffic.
func TestStandbyOnServicePage(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy("warm", 0)
	if _, err := h.c.CreateVersion(t.Context(), "warm", core.VersionSpec{Image: "greeter:1", MemoryLimit: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	h.login()
	if r := h.do("GET", "/ui/services/warm", nil, nil); r.status != 200 ||
		!strings.Contains(r.body, `Standby: <strong id="standby-count">0</strong>`) || !strings.Contains(r.body, "none (a version with no traffic") {
		t.Fatalf("without standbys: %d %s", r.status, r.body)
	}
	two := 2
	if _, err := h.c.UpdatePolicy(t.Context(), "warm", core.PolicyPatch{Standby: &two}); err != nil {
		t.Fatal(err)
	}
	r := h.do("GET", "/ui/services/warm", nil, nil)
	if r.status != 200 || !strings.Contains(r.body, `Standby: <strong id="standby-count">2</strong>`) ||
		!strings.Contains(r.body, "2 paused instance(s) per version with traffic: memory, not CPU; v1: up to 2 × 64Mi (its memory limit) = 128Mi") {
		t.Fatalf("with standby 2: %d %s", r.status, r.body)
	}
}

// TestPolicyOnServicePage: the Scaling section shows keep_previous,
// singleton and the min_instances schedule.
func TestPolicyOnServicePage(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy("cron", 0)
	h.login()
	if r := h.do("GET", "/ui/services/cron", nil, nil); r.status != 200 ||
		!strings.Contains(r.body, "Keep previous: 10m") || !strings.Contains(r.body, "singleton: no") || strings.Contains(r.body, "by schedule") {
		t.Fatalf("the defaults: %d %s", r.status, r.body)
	}
	on, off := true, core.Duration(0)
	w, err := core.ParseMinWindow("mon-fri 08:00-18:00 Europe/Paris=1")
	if err != nil {
		t.Fatal(err)
	}
	sched := []core.MinWindow{w}
	if _, err := h.c.UpdatePolicy(t.Context(), "cron", core.PolicyPatch{Singleton: &on, KeepPrevious: &off, MinInstancesSchedule: &sched}); err != nil {
		t.Fatal(err)
	}
	r := h.do("GET", "/ui/services/cron", nil, nil)
	if r.status != 200 || !strings.Contains(r.body, "Keep previous: off") || !strings.Contains(r.body, "singleton: yes") ||
		!strings.Contains(r.body, "min_instances by schedule: <code>mon-fri 08:00-18:00 Europe/Paris=1</code>") {
		t.Fatalf("singleton, keep_previous off, a schedule: %d %s", r.status, r.body)
	}
}
