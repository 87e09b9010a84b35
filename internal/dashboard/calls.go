package dashboard

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wisp-run/wisp/internal/core"
)

// asyncOffMessage is shown where async calls, triggers or schedules would
// be when the daemon runs without NATS (the API answers 503).
const asyncOffMessage = "Async calls are off on this server: it runs without NATS (wisp serve --async=false), so there are no async calls, triggers or schedules."

// asyncOff reports whether err is the API's 503 for async parts the daemon
// does not run.
func asyncOff(err error) bool { return errors.Is(err, core.ErrUnavailable) }

const (
	// serviceCallsLimit is how many calls the service page lists.
	serviceCallsLimit = 20
	// deadCountLimit bounds the count of dead calls (the API's largest
	// page): more are shown as "1000 or more".
	deadCountLimit = 1000
	// bodyPreviewBytes is how much of a request's or response's body a call
	// page shows.
	bodyPreviewBytes = 4 << 10
)

// callsSection is the service page's "Async calls".
type callsSection struct {
	// Off says async calls are off on this server; Err why the calls could
	// not be listed.
	Off, Err string
	State    string
	States   []string
	Calls    []core.Call
	Dead     int
	DeadMore bool
}

func (d *Dashboard) loadCalls(r *http.Request, service string) callsSection {
	ctx := r.Context()
	s := callsSection{State: r.URL.Query().Get("state"), States: core.CallStates}
	if s.State != "" && !knownState(s.State) {
		s.Err = fmt.Sprintf("There is no call state %q; pick one of %s.", s.State, strings.Join(core.CallStates, ", "))
		s.State = ""
		return s
	}
	dead, err := d.api.ListCalls(ctx, service, core.CallDead, deadCountLimit)
	if err != nil {
		if asyncOff(err) {
			s.Off = asyncOffMessage
		} else {
			_, s.Err = errorStatus(err)
		}
		return s
	}
	s.Dead, s.DeadMore = len(dead), len(dead) >= deadCountLimit
	if s.State == core.CallDead {
		s.Calls = dead[:min(len(dead), serviceCallsLimit)]
		return s
	}
	if s.Calls, err = d.api.ListCalls(ctx, service, s.State, serviceCallsLimit); err != nil {
		_, s.Err = errorStatus(err)
	}
	return s
}

func knownState(s string) bool {
	for _, k := range core.CallStates {
		if s == k {
			return true
		}
	}
	return false
}

// lastStatus is the status of a call's latest attempt that got one.
func lastStatus(c core.Call) int {
	for i := len(c.Attempts) - 1; i >= 0; i-- {
		if c.Attempts[i].Status != 0 {
			return c.Attempts[i].Status
		}
	}
	if c.Response != nil {
		return c.Response.Status
	}
	return 0
}

// link is a text, with where it leads when it leads somewhere.
type link struct{ Text, Href string }

// originLink links a call's origin to its trigger's or schedule's page.
func originLink(origin string) link {
	l := link{Text: origin}
	if kind, name, ok := strings.Cut(origin, ":"); ok && name != "" {
		switch kind {
		case "trigger":
			l.Href = "/ui/triggers/" + url.PathEscape(name)
		case "schedule":
			l.Href = "/ui/schedules/" + url.PathEscape(name)
		}
	}
	if l.Text == "" {
		l.Text = "—"
	}
	return l
}

// headerRow is one header line of a call's request or response.
type headerRow struct{ Name, Value string }

func headerRows(h http.Header) []headerRow {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	var rows []headerRow
	for _, n := range names {
		for _, v := range h[n] {
			rows = append(rows, headerRow{Name: n, Value: v})
		}
	}
	return rows
}

// bodyPreview is the start of a body: text when it is UTF-8, else a hex
// dump. html/template escapes it like any other value.
type bodyPreview struct {
	Text   string
	Size   int
	Cut    bool
	Binary bool
}

func previewBody(b []byte) bodyPreview {
	p := bodyPreview{Size: len(b)}
	if len(b) > bodyPreviewBytes {
		b, p.Cut = b[:bodyPreviewBytes], true
		// Do not split a character of a text body.
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
	}
	if utf8.Valid(b) {
		p.Text = string(b)
		return p
	}
	p.Binary = true
	p.Text = hex.Dump(b[:min(len(b), 512)])
	p.Cut = p.Cut || len(b) > 512
	return p
}

type callPageData struct {
	Call        core.Call
	Origin      link
	ReqHeaders  []headerRow
	ReqBody     bodyPreview
	RespHeaders []headerRow
	RespBody    bodyPreview
	CanRetry    bool
}

func (d *Dashboard) loadCall(r *http.Request, id string) (*callPageData, error) {
	c, err := d.api.GetCall(r.Context(), id)
	if err != nil {
		return nil, err
	}
	p := &callPageData{Call: c, Origin: originLink(c.Origin), ReqHeaders: headerRows(c.Request.Header), ReqBody: previewBody(c.Request.Body),
		CanRetry: c.State == core.CallDead || c.State == core.CallFailed}
	if c.Response != nil {
		p.RespHeaders, p.RespBody = headerRows(c.Response.Header), previewBody(c.Response.Body)
	}
	return p, nil
}

func (d *Dashboard) callPage(w http.ResponseWriter, r *http.Request, a auth) error {
	p, err := d.loadCall(r, r.PathValue("id"))
	if err != nil {
		return asyncPageError(err)
	}
	d.render(w, r, http.StatusOK, "call", pageData{Title: "Call " + p.Call.ID, Nav: "services", CSRF: d.csrfOf(a), Bearer: a.bearer, Data: p,
		Flash: doneMessage(r.URL.Query())})
	return nil
}

// retryCall queues a dead or failed call again and goes back to its page.
func (d *Dashboard) retryCall(w http.ResponseWriter, r *http.Request, a auth) error {
	id := r.PathValue("id")
	if _, err := d.api.RetryCall(r.Context(), id); err != nil {
		p, lerr := d.loadCall(r, id)
		if lerr != nil {
			return asyncPageError(err)
		}
		status, msg := errorStatus(err)
		d.render(w, r, status, "call", pageData{Title: "Call " + p.Call.ID, Nav: "services", CSRF: d.csrfOf(a), Bearer: a.bearer, Data: p, Error: msg})
		return nil
	}
	http.Redirect(w, r, "/ui/calls/"+url.PathEscape(id)+"?done=retry", http.StatusSeeOther)
	return nil
}

// asyncPageError words the API's 503 for a daemon without async calls the
// same way on every page.
func asyncPageError(err error) error {
	if asyncOff(err) {
		return &offError{err}
	}
	return err
}

// offError is the API's 503 for async parts the daemon does not run,
// shown with asyncOffMessage.
type offError struct{ err error }

func (e *offError) Error() string { return e.err.Error() }
func (e *offError) Unwrap() error { return e.err }

// callIDPattern is what a call ID looks like (async.NewID: lower-case
// base32); a flash names a call only when its ID matches, so a link
// cannot make the page say anything else.
var callIDPattern = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

func durationMS(ms float64) string {
	if ms == 0 {
		return "—"
	}
	return formatNum(ms, "ms")
}

func timeOrDash(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
