package dashboard

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSP is the Content-Security-Policy of every /ui/ response: our own script
// and style only, no inline script or style, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Prefix is where the admin server mounts the dashboard.
const Prefix = "/ui/"

// Config configures a Dashboard.
type Config struct {
	// Token is the admin token: the login form exchanges it for a session,
	// and the dashboard sends it to the API.
	Token string
	// API is the admin API's handler; every read and change goes through it.
	API http.Handler
	// Sampler provides the live numbers; nil shows none.
	Sampler *Sampler
	// SessionTTL is how long a login lasts; default 12 h.
	SessionTTL time.Duration
	// Secure marks the session cookie Secure (the admin server speaks TLS).
	Secure bool
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Validate checks c.
func (c Config) Validate() error {
	switch {
	case c.Token == "":
		return errors.New("dashboard: the admin token is required")
	case c.API == nil:
		return errors.New("dashboard: the admin API's handler is required")
	case c.SessionTTL < 0:
		return errors.New("dashboard: the session TTL must not be negative")
	}
	return nil
}

// Dashboard serves /ui/.
type Dashboard struct {
	cfg      Config
	log      *slog.Logger
	api      *apiclient.Client
	sess     *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
	static   http.Handler
	window   time.Duration
	interval time.Duration
}

// New returns a Dashboard.
func New(cfg Config) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger.With("component", "dashboard"),
		api:  apiclient.New("http://wisp-admin.internal", cfg.Token, apiclient.WithTransport(handlerTransport{cfg.API})),
		sess: newSessions(cfg.Token, cfg.SessionTTL, cfg.Secure, cfg.Now), window: time.Hour, interval: 5 * time.Second}
	if cfg.Sampler != nil {
		d.window, d.interval = cfg.Sampler.cfg.Window, cfg.Sampler.cfg.Interval
	}
	var err error
	if d.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	files := http.StripPrefix("/ui/static/", http.FileServerFS(sub))
	d.static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
	d.routes()
	return d, nil
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("dashboard template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

func (d *Dashboard) routes() {
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", d.static)
	m.HandleFunc("GET /ui/login", d.loginPage)
	m.HandleFunc("POST /ui/login", d.login)
	m.Handle("POST /ui/logout", d.change(d.logout))
	m.Handle("GET /ui/{$}", d.page(d.servicesPage))
	m.Handle("GET /ui/platform", d.page(d.platformPage))
	m.Handle("GET /ui/services/{name}", d.page(d.servicePage))
	m.Handle("POST /ui/services/{name}/traffic", d.change(d.setTraffic))
	m.Handle("POST /ui/services/{name}/rollback", d.change(d.rollback))
	m.Handle("POST /ui/services/{name}/rollout/{action}", d.change(d.rolloutAction))
	m.Handle("POST /ui/services/{name}/versions", d.change(d.createVersion))
	m.Handle("GET /ui/services/{name}/logs", d.page(d.logsPage))
	m.Handle("GET /ui/services/{name}/logs/stream", d.private(http.HandlerFunc(d.logStream)))
	m.Handle("GET /ui/builds/{id}", d.page(d.buildPage))
	m.Handle("GET /ui/builds/{id}/log", d.private(http.HandlerFunc(d.buildLogStream)))
	m.Handle("GET /ui/calls/{id}", d.page(d.callPage))
	m.Handle("POST /ui/calls/{id}/retry", d.change(d.retryCall))
	m.Handle("GET /ui/async", d.page(d.eventsPage))
	m.Handle("GET /ui/triggers/{name}", d.page(d.triggerPage))
	m.Handle("GET /ui/schedules/{name}", d.page(d.schedulePage))
	m.Handle("POST /ui/schedules/{name}/suspend", d.change(d.suspendSchedule(true)))
	m.Handle("POST /ui/schedules/{name}/resume", d.change(d.suspendSchedule(false)))
	m.Handle("POST /ui/schedules/{name}/run", d.change(d.runSchedule))
	m.Handle("GET /ui/api/overview", d.private(http.HandlerFunc(d.overviewJSON)))
	m.Handle("GET /ui/api/services/{name}/live", d.private(http.HandlerFunc(d.liveJSON)))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		if !d.sess.authenticate(r).ok {
			d.toLogin(w, r)
			return
		}
		d.render(w, r, http.StatusNotFound, "error", pageData{Title: "Not found", Error: "There is no page " + r.URL.Path + " in the dashboard."})
	})
	d.mux = m
}

// ServeHTTP serves the dashboard with its security headers.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		h.Set("Cache-Control", "no-store")
	}
	d.mux.ServeHTTP(w, r)
}

// private lets authenticated requests through and answers others 401.
func (d *Dashboard) private(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.sess.authenticate(r).ok {
			http.Error(w, `{"error":{"code":"unauthorized","message":"log in to the dashboard first"}}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// pageFunc renders a page; an error is shown on an error page.
type pageFunc func(w http.ResponseWriter, r *http.Request, a auth) error

// page serves a GET page to an authenticated user, others go to the login.
func (d *Dashboard) page(f pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := d.sess.authenticate(r)
		if !a.ok {
			d.toLogin(w, r)
			return
		}
		if err := f(w, r, a); err != nil {
			d.fail(w, r, a, err)
		}
	})
}

// change serves a state-changing POST: the session (or the bearer token),
// the same origin and the session's CSRF token are required.
func (d *Dashboard) change(f pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		a := d.sess.authenticate(r)
		if !a.ok {
			d.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Log in", Error: "Your session has ended: log in again, then repeat the change."})
			return
		}
		if !a.bearer {
			tok := r.Header.Get(csrfHeader)
			if tok == "" {
				tok = r.PostFormValue(csrfField)
			}
			if !sameOrigin(r) || !hmacEqual(tok, d.sess.csrf(a.session)) {
				d.log.Warn("dashboard: refused a change without a valid CSRF token or from another origin",
					"path", r.URL.Path, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
				d.render(w, r, http.StatusForbidden, "error", pageData{Title: "Refused", CSRF: d.sess.csrf(a.session),
					Error: "Refused: this change did not come from a dashboard page (missing or wrong CSRF token, or another site). Reload the page and try again."})
				return
			}
		}
		if err := f(w, r, a); err != nil {
			d.fail(w, r, a, err)
		}
	})
}

func hmacEqual(a, b string) bool {
	return a != "" && len(a) == len(b) && subtleEq(a, b)
}

func (d *Dashboard) toLogin(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/ui/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther) //nolint:gosec // G710: a fixed local path; next is a query value, checked by safeNext when used
}

// fail shows err: an API error with its own status (4xx) and message,
// anything else as 502 (the API could not answer), never a 500.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, a auth, err error) {
	status, msg := errorStatus(err)
	if status >= 500 {
		d.log.Warn("dashboard: request failed", "path", r.URL.Path, "err", err)
	}
	d.render(w, r, status, "error", pageData{Title: http.StatusText(status), Error: msg, CSRF: d.csrfOf(a)})
}

func errorStatus(err error) (int, string) {
	var off *offError
	if errors.As(err, &off) {
		return http.StatusServiceUnavailable, asyncOffMessage
	}
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		if ae.Status >= 400 && ae.Status < 500 || ae.Status == http.StatusServiceUnavailable {
			return ae.Status, ae.Message
		}
		return http.StatusBadGateway, "The admin API failed: " + ae.Message
	}
	var fe *formError
	if errors.As(err, &fe) {
		return http.StatusBadRequest, fe.msg
	}
	return http.StatusBadGateway, "The admin API failed: " + err.Error()
}

// formError is a bad form value, found before asking the API.
type formError struct{ msg string }

func (e *formError) Error() string { return e.msg }

func formErrorf(format string, args ...any) error {
	return &formError{msg: fmt.Sprintf(format, args...)}
}

func (d *Dashboard) csrfOf(a auth) string {
	if a.session == "" {
		return ""
	}
	return d.sess.csrf(a.session)
}

// pageData is what every page's template gets.
type pageData struct {
	Title  string
	Nav    string
	CSRF   string
	Flash  string
	Error  string
	Bearer bool
	Data   any
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, p pageData) {
	t := d.pages[name]
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		d.log.Error("dashboard: render", "page", name, "err", err)
		http.Error(w, "the dashboard could not render this page", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// handlerTransport sends the API client's requests to the API's handler in
// this process, marked as the dashboard's.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		req.Header.Set("Wisp-Client", "dashboard")
	}
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr = "dashboard"
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	t.h.ServeHTTP(rec, req)
	return &http.Response{Status: fmt.Sprintf("%d %s", rec.status, http.StatusText(rec.status)), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rec.header, Body: io.NopCloser(&rec.body),
		ContentLength: int64(rec.body.Len()), Request: req}, nil
}

// recorder is the response writer of an in-process API call.
type recorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = s, true
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
func (r *recorder) Flush() {}
