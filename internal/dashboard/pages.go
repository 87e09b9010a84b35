package dashboard

import (
	"bufio"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
)

func subtleEq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		d := time.Since(t).Round(time.Second)
		switch {
		case d < time.Minute:
			return d.String() + " ago"
		case d < time.Hour:
			return d.Round(time.Minute).String() + " ago"
		case d < 48*time.Hour:
			return d.Round(time.Hour).String() + " ago"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"split": splitString,
	"tags":  tagString,
	"join":  strings.Join,
}

func splitString(t core.Traffic) string {
	var parts []string
	for _, w := range t.Weights {
		parts = append(parts, fmt.Sprintf("v%d %d%%", w.Version, w.Percent))
	}
	if len(parts) == 0 {
		return "no traffic"
	}
	return strings.Join(parts, " · ")
}

func tagString(t core.Traffic) string {
	names := make([]string, 0, len(t.Tags))
	for n := range t.Tags {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s→v%d", n, t.Tags[n]))
	}
	return strings.Join(parts, ", ")
}

// ---- login

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if d.sess.authenticate(r).ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther) //nolint:gosec // G710: safeNext keeps it under /ui/
		return
	}
	d.render(w, r, http.StatusOK, "login", pageData{Title: "Log in", Data: safeNext(r.URL.Query().Get("next"))})
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.PostFormValue("next"))
	if !sameOrigin(r) {
		d.render(w, r, http.StatusForbidden, "login", pageData{Title: "Log in", Data: next,
			Error: "Refused: the login form was sent from another site."})
		return
	}
	if !d.sess.checkToken(strings.TrimSpace(r.PostFormValue("token"))) {
		d.log.Warn("dashboard: a login with a wrong token", "remote", r.RemoteAddr)
		d.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Log in", Data: next,
			Error: "Wrong token: that is not this daemon's admin token (wisp serve prints where it is kept; or --admin-token)."})
		return
	}
	http.SetCookie(w, d.sess.cookie(d.sess.issue(), int(d.cfg.SessionTTL.Seconds())))
	http.Redirect(w, r, next, http.StatusSeeOther) //nolint:gosec // G710: safeNext keeps it under /ui/
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, _ auth) error {
	http.SetCookie(w, d.sess.cookie("", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	return nil
}

// safeNext keeps a redirect target inside the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}

// ---- services list

type serviceRow struct {
	Name       string `json:"name"`
	URL        string `json:"-"`
	Split      string `json:"split"`
	Versions   int    `json:"versions"`
	Instances  string `json:"instances"`
	RPS        string `json:"rps"`
	ErrorRate  string `json:"error_rate"`
	P50        string `json:"p50"`
	P99        string `json:"p99"`
	ColdStarts string `json:"cold_starts"`
	LastDeploy string `json:"last_deploy"`
}

func (d *Dashboard) serviceRows(r *http.Request) ([]serviceRow, error) {
	ctx := r.Context()
	svcs, err := d.api.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	insts, err := d.api.Instances(ctx, "")
	if err != nil {
		return nil, err
	}
	byState := map[string]map[string]int{}
	for _, in := range insts {
		if byState[in.Service] == nil {
			byState[in.Service] = map[string]int{}
		}
		byState[in.Service][in.State]++
	}
	rows := make([]serviceRow, 0, len(svcs))
	for _, s := range svcs {
		row := serviceRow{Name: s.Name, URL: s.URL, Instances: statesString(byState[s.Name]), Split: "no traffic",
			RPS: "—", ErrorRate: "—", P50: "—", P99: "—", ColdStarts: "—", LastDeploy: "never"}
		if t, err := d.api.GetTraffic(ctx, s.Name); err == nil {
			row.Split = splitString(t.Traffic)
		} else if !errors.Is(err, core.ErrNotFound) {
			return nil, err
		}
		vs, err := d.api.ListVersions(ctx, s.Name)
		if err != nil && !errors.Is(err, core.ErrNotFound) {
			return nil, err
		}
		row.Versions = len(vs)
		var last time.Time
		for _, v := range vs {
			if v.CreatedAt.After(last) {
				last = v.CreatedAt
			}
		}
		if !last.IsZero() {
			row.LastDeploy = funcs["ago"].(func(time.Time) string)(last)
		}
		if d.cfg.Sampler != nil {
			if p, ok := d.cfg.Sampler.Latest(s.Name); ok {
				row.RPS, row.P50, row.P99 = formatNum(p.RPS, ""), formatNum(p.P50*1000, "ms"), formatNum(p.P99*1000, "ms")
				row.ErrorRate = "0%"
				if p.RPS > 0 {
					row.ErrorRate = fmt.Sprintf("%.1f%%", 100*p.ErrorsPS/p.RPS)
				}
				row.ColdStarts = strconv.Itoa(p.ColdStarts)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func statesString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for s, n := range m {
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func (d *Dashboard) servicesPage(w http.ResponseWriter, r *http.Request, a auth) error {
	rows, err := d.serviceRows(r)
	if err != nil {
		return err
	}
	d.render(w, r, http.StatusOK, "services", pageData{Title: "Services", Nav: "services", CSRF: d.csrfOf(a), Bearer: a.bearer, Data: rows})
	return nil
}

func (d *Dashboard) overviewJSON(w http.ResponseWriter, r *http.Request) {
	rows, err := d.serviceRows(r)
	if err != nil {
		status, msg := errorStatus(err)
		writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"services": rows})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ---- service page

type servicePageData struct {
	Service   core.Service
	Versions  []core.Version
	Current   *core.TrafficEntry
	History   []core.TrafficEntry // newest first
	Instances []core.InstanceInfo
	Builds    []core.Build
	BuildsErr string
	Charts    []versionCharts
	Editor    editor
	Preview   *preview
	NewVer    newVersionForm
	Done      string
}

type versionCharts struct {
	Version int
	SVG     []template.HTML
}

type editor struct {
	Rows    []editorRow
	Tags    []tagRow
	Sticky  bool
	Message string
	IfEntry int64
}

type editorRow struct {
	Version int
	Percent string
	Current int
}

type tagRow struct{ Name, Version string }

type preview struct {
	Rows    []previewRow
	Sum     int
	SumOK   bool
	Tags    string
	OldTags string
	Sticky  bool
}

type previewRow struct {
	Version   int
	From, To  int
	Delta     string
	Changed   bool
	NoVersion bool
}

type newVersionForm struct {
	Image, Port, Env, Description string
}

func (d *Dashboard) loadService(r *http.Request, name string) (*servicePageData, error) {
	ctx := r.Context()
	svc, err := d.api.GetService(ctx, name)
	if err != nil {
		return nil, err
	}
	p := &servicePageData{Service: svc}
	if p.Versions, err = d.api.ListVersions(ctx, name); err != nil {
		return nil, err
	}
	hist, err := d.api.TrafficHistory(ctx, name)
	if err != nil {
		return nil, err
	}
	for i := len(hist) - 1; i >= 0; i-- {
		p.History = append(p.History, hist[i])
	}
	if len(p.History) > 0 {
		cur := p.History[0]
		p.Current = &cur
	}
	if p.Instances, err = d.api.Instances(ctx, name); err != nil {
		return nil, err
	}
	if p.Builds, err = d.api.ListBuilds(ctx, name, 20); err != nil {
		p.Builds, p.BuildsErr = nil, err.Error()
	}
	now := d.cfg.Now()
	for _, v := range p.Versions {
		p.Charts = append(p.Charts, versionCharts{Version: v.Number, SVG: d.versionSVGs(name, v.Number, now)})
	}
	p.Editor = editorFor(p.Versions, p.Current)
	return p, nil
}

func (d *Dashboard) versionSVGs(service string, version int, now time.Time) []template.HTML {
	var pts []Point
	if d.cfg.Sampler != nil {
		pts = d.cfg.Sampler.Series(Key{Service: service, Version: version})
	}
	out := make([]template.HTML, 0, len(charts))
	for _, c := range charts {
		out = append(out, renderChart(c, pts, now, d.window))
	}
	return out
}

func editorFor(vs []core.Version, cur *core.TrafficEntry) editor {
	e := editor{}
	weights := map[int]int{}
	if cur != nil {
		for _, w := range cur.Weights {
			weights[w.Version] = w.Percent
		}
		e.Sticky, e.IfEntry = cur.Sticky, cur.ID
		names := make([]string, 0, len(cur.Tags))
		for n := range cur.Tags {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			e.Tags = append(e.Tags, tagRow{Name: n, Version: strconv.Itoa(cur.Tags[n])})
		}
	}
	for _, v := range vs {
		e.Rows = append(e.Rows, editorRow{Version: v.Number, Percent: strconv.Itoa(weights[v.Number]), Current: weights[v.Number]})
	}
	e.Tags = append(e.Tags, tagRow{}, tagRow{})
	return e
}

func (d *Dashboard) servicePage(w http.ResponseWriter, r *http.Request, a auth) error {
	p, err := d.loadService(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	p.Done = doneMessage(r.URL.Query())
	d.render(w, r, http.StatusOK, "service", pageData{Title: p.Service.Name, Nav: "services", CSRF: d.csrfOf(a), Bearer: a.bearer, Data: p, Flash: p.Done})
	return nil
}

// doneMessage says what the change before the redirect did (fixed texts:
// a link cannot make the page say something else).
func doneMessage(q url.Values) string {
	n, _ := strconv.Atoi(q.Get("n"))
	switch q.Get("done") {
	case "traffic":
		return fmt.Sprintf("Traffic changed (entry %d).", n)
	case "rollback":
		return fmt.Sprintf("Rolled back (new entry %d).", n)
	case "version":
		return fmt.Sprintf("Version %d created.", n)
	}
	return ""
}

// readEditor reads the traffic form into a Traffic and the editor's state
// (to show the user's input again).
func readEditor(r *http.Request, vs []core.Version) (core.Traffic, editor, error) {
	var t core.Traffic
	e := editor{Sticky: r.PostFormValue("sticky") != "", Message: r.PostFormValue("message")}
	e.IfEntry, _ = strconv.ParseInt(r.PostFormValue("if_entry"), 10, 64)
	t.Sticky, t.Message = e.Sticky, e.Message
	var problems []string
	for _, v := range vs {
		raw := strings.TrimSpace(r.PostFormValue("w" + strconv.Itoa(v.Number)))
		e.Rows = append(e.Rows, editorRow{Version: v.Number, Percent: raw})
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("the weight of version %d must be a whole number of percent, got %q", v.Number, raw))
			continue
		}
		if n != 0 {
			t.Weights = append(t.Weights, core.Weight{Version: v.Number, Percent: n})
		}
	}
	names, versions := r.PostForm["tag_name"], r.PostForm["tag_version"]
	for i, name := range names {
		name = strings.TrimSpace(name)
		ver := ""
		if i < len(versions) {
			ver = strings.TrimSpace(versions[i])
		}
		e.Tags = append(e.Tags, tagRow{Name: name, Version: ver})
		if name == "" && ver == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(ver, "v"))
		if err != nil {
			problems = append(problems, fmt.Sprintf("tag %q needs a version number, got %q", name, ver))
			continue
		}
		if t.Tags == nil {
			t.Tags = map[string]int{}
		}
		t.Tags[name] = n
	}
	e.Tags = append(e.Tags, tagRow{})
	if len(problems) > 0 {
		return t, e, formErrorf("%s", strings.Join(problems, "; "))
	}
	return t, e, nil
}

func makePreview(cur *core.TrafficEntry, next core.Traffic, vs []core.Version) *preview {
	from := map[int]int{}
	oldTags := ""
	if cur != nil {
		for _, w := range cur.Weights {
			from[w.Version] = w.Percent
		}
		oldTags = tagString(cur.Traffic)
	}
	to := map[int]int{}
	p := &preview{Tags: tagString(next), OldTags: oldTags, Sticky: next.Sticky}
	for _, w := range next.Weights {
		to[w.Version] += w.Percent
		p.Sum += w.Percent
	}
	for _, v := range vs {
		row := previewRow{Version: v.Number, From: from[v.Number], To: to[v.Number]}
		row.Changed = row.From != row.To
		row.Delta = fmt.Sprintf("%+d", row.To-row.From)
		p.Rows = append(p.Rows, row)
	}
	p.SumOK = p.Sum == 100
	return p
}

func (d *Dashboard) setTraffic(w http.ResponseWriter, r *http.Request, a auth) error {
	name := r.PathValue("name")
	p, err := d.loadService(r, name)
	if err != nil {
		return err
	}
	t, e, ferr := readEditor(r, p.Versions)
	p.Editor = e
	if ferr == nil {
		p.Preview = makePreview(p.Current, t, p.Versions)
	}
	data := pageData{Title: name, Nav: "services", CSRF: d.csrfOf(a), Bearer: a.bearer, Data: p}
	if ferr != nil {
		data.Error = ferr.Error()
		d.render(w, r, http.StatusBadRequest, "service", data)
		return nil
	}
	if r.PostFormValue("action") == "preview" {
		data.Flash = "Preview: nothing has changed yet. Apply to make this the split."
		d.render(w, r, http.StatusOK, "service", data)
		return nil
	}
	entry, err := d.api.SetTrafficIf(r.Context(), name, t, e.IfEntry)
	if err != nil {
		status, msg := errorStatus(err)
		if errors.Is(err, core.ErrPreconditionFailed) {
			msg = "The split changed since this page was loaded (someone else changed it); nothing was applied. Reload and try again. (" + msg + ")"
		}
		data.Error = msg
		d.render(w, r, status, "service", data)
		return nil
	}
	http.Redirect(w, r, fmt.Sprintf("/ui/services/%s?done=traffic&n=%d#traffic", url.PathEscape(name), entry.ID), http.StatusSeeOther)
	return nil
}

func (d *Dashboard) rollback(w http.ResponseWriter, r *http.Request, a auth) error {
	name := r.PathValue("name")
	to, err := strconv.ParseInt(r.PostFormValue("to_entry"), 10, 64)
	if err != nil || to < 1 {
		return formErrorf("to_entry must be a traffic history entry's number, got %q", r.PostFormValue("to_entry"))
	}
	ifEntry, _ := strconv.ParseInt(r.PostFormValue("if_entry"), 10, 64)
	entry, err := d.api.RollbackTrafficIf(r.Context(), name, to, ifEntry)
	if err != nil {
		p, lerr := d.loadService(r, name)
		if lerr != nil {
			return err
		}
		status, msg := errorStatus(err)
		d.render(w, r, status, "service", pageData{Title: name, Nav: "services", CSRF: d.csrfOf(a), Bearer: a.bearer, Data: p, Error: msg})
		return nil
	}
	http.Redirect(w, r, fmt.Sprintf("/ui/services/%s?done=rollback&n=%d#timeline", url.PathEscape(name), entry.ID), http.StatusSeeOther)
	return nil
}

func (d *Dashboard) createVersion(w http.ResponseWriter, r *http.Request, a auth) error {
	name := r.PathValue("name")
	f := newVersionForm{Image: strings.TrimSpace(r.PostFormValue("image")), Port: strings.TrimSpace(r.PostFormValue("port")),
		Env: r.PostFormValue("env"), Description: r.PostFormValue("description")}
	spec := core.VersionSpec{Image: f.Image, Description: f.Description}
	var ferr error
	if f.Port != "" {
		n, err := strconv.Atoi(f.Port)
		if err != nil {
			ferr = formErrorf("port must be a number from 1 to 65535, got %q", f.Port)
		}
		spec.Port = n
	}
	for _, line := range strings.Split(f.Env, "\n") {
		if line = strings.TrimRight(line, "\r"); strings.TrimSpace(line) != "" {
			spec.Env = append(spec.Env, line)
		}
	}
	var v core.Version
	if ferr == nil {
		v, ferr = d.api.CreateVersion(r.Context(), name, spec)
	}
	if ferr != nil {
		p, lerr := d.loadService(r, name)
		if lerr != nil {
			return ferr
		}
		p.NewVer = f
		status, msg := errorStatus(ferr)
		d.render(w, r, status, "service", pageData{Title: name, Nav: "services", CSRF: d.csrfOf(a), Bearer: a.bearer, Data: p, Error: msg})
		return nil
	}
	http.Redirect(w, r, fmt.Sprintf("/ui/services/%s?done=version&n=%d#versions", url.PathEscape(name), v.Number), http.StatusSeeOther)
	return nil
}

func (d *Dashboard) liveJSON(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ctx := r.Context()
	vs, err := d.api.ListVersions(ctx, name)
	if err != nil {
		status, msg := errorStatus(err)
		writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg}})
		return
	}
	now := d.cfg.Now()
	charts := map[string]string{}
	latest := map[string]Point{}
	series := map[string][]Point{}
	for _, v := range vs {
		var b strings.Builder
		for _, s := range d.versionSVGs(name, v.Number, now) {
			b.WriteString(string(s))
		}
		key := strconv.Itoa(v.Number)
		charts[key] = b.String()
		if d.cfg.Sampler != nil {
			k := Key{Service: name, Version: v.Number}
			if p, ok := d.cfg.Sampler.LatestVersion(k); ok {
				latest[key] = p
			}
			series[key] = d.cfg.Sampler.Series(k)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"charts": charts, "latest": latest, "series": series, "interval_seconds": d.interval.Seconds()})
}

// ---- logs

type logsPageData struct {
	Service           string
	Version, Instance string
	Q, Since, Tail    string
	Kinds             map[string]bool
	Entries           []core.LogEntry
	Unavailable       string
	StreamURL         string
}

// logQuery builds the logs API's query from the page's filters.
func logQuery(q url.Values) url.Values {
	out := url.Values{}
	for _, k := range []string{"version", "instance", "q", "since"} {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			out.Set(k, v)
		}
	}
	var kinds []string
	for _, k := range q["kind"] {
		for _, part := range strings.Split(k, ",") {
			if part = strings.TrimSpace(part); part != "" {
				kinds = append(kinds, part)
			}
		}
	}
	if len(kinds) > 0 {
		out.Set("kind", strings.Join(kinds, ","))
	}
	return out
}

func (d *Dashboard) logsPage(w http.ResponseWriter, r *http.Request, a auth) error {
	name := r.PathValue("name")
	if _, err := d.api.GetService(r.Context(), name); err != nil {
		return err
	}
	q := r.URL.Query()
	p := &logsPageData{Service: name, Version: q.Get("version"), Instance: q.Get("instance"), Q: q.Get("q"),
		Since: q.Get("since"), Tail: q.Get("tail"), Kinds: map[string]bool{}}
	if p.Tail == "" {
		p.Tail = "200"
	}
	filters := logQuery(q)
	for _, k := range strings.Split(filters.Get("kind"), ",") {
		p.Kinds[k] = true
	}
	filters.Set("tail", p.Tail)
	status, body, err := d.callAPI(r, "/v1/services/"+url.PathEscape(name)+"/logs?"+filters.Encode(), "application/x-ndjson")
	switch {
	case err != nil:
		return err
	case status == http.StatusNotFound && strings.Contains(string(body), "no route"):
		p.Unavailable = "This daemon has no logs API (GET /v1/services/{name}/logs)."
	case status >= 400:
		var eb struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.Unmarshal(body, &eb)
		msg := eb.Error.Message
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		d.render(w, r, status, "logs", pageData{Title: name + " logs", Nav: "services", CSRF: d.csrfOf(a), Data: p, Error: msg})
		return nil
	default:
		sc := bufio.NewScanner(strings.NewReader(string(body)))
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			var e core.LogEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				p.Entries = append(p.Entries, e)
			}
		}
	}
	// Following starts where the lines shown end (the page drops lines it
	// already has, by seq), so nothing between the two is missed.
	stream := logQuery(q)
	if n := len(p.Entries); n > 0 && stream.Get("since") == "" {
		stream.Set("since", p.Entries[n-1].Time.UTC().Format(time.RFC3339Nano))
	}
	p.StreamURL = "/ui/services/" + url.PathEscape(name) + "/logs/stream?" + stream.Encode()
	d.render(w, r, http.StatusOK, "logs", pageData{Title: name + " logs", Nav: "services", CSRF: d.csrfOf(a), Data: p})
	return nil
}

// callAPI sends one GET to the API's handler and returns its whole answer
// (for routes whose body is not JSON).
func (d *Dashboard) callAPI(r *http.Request, path, accept string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://wisp-admin.internal"+path, nil) //nolint:gosec // G704: served by the API's handler in this process, never sent over a network
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.cfg.Token)
	req.Header.Set("Accept", accept)
	resp, err := handlerTransport{d.cfg.API}.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, err
}

// logStream hands a browser's EventSource to the logs API's event stream:
// the API's handler writes straight to this response, so follow, keepalives
// and Last-Event-ID behave as the API documents.
func (d *Dashboard) logStream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q := logQuery(r.URL.Query())
	q.Set("follow", "true")
	if t := r.URL.Query().Get("tail"); t != "" {
		q.Set("tail", t)
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/v1/services/"+url.PathEscape(name)+"/logs?"+q.Encode(), nil) //nolint:gosec // G704: served by the API's handler in this process, never sent over a network
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.Header.Set("Authorization", "Bearer "+d.cfg.Token)
	req.Header.Set("Accept", "text/event-stream")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	d.cfg.API.ServeHTTP(w, req)
}

// ---- builds

type buildPageData struct {
	Build core.Build
	Log   string
	// Follow is where the page streams the rest of the log from while the
	// build runs.
	Follow string
}

func (d *Dashboard) buildPage(w http.ResponseWriter, r *http.Request, a auth) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return formErrorf("a build's id is a positive number, got %q", r.PathValue("id"))
	}
	b, err := d.api.GetBuild(r.Context(), id)
	if err != nil {
		return err
	}
	p := &buildPageData{Build: b}
	if b.Status == core.BuildQueued || b.Status == core.BuildRunning {
		p.Follow = fmt.Sprintf("/ui/builds/%d/log", id)
	}
	rc, err := d.api.BuildLogs(r.Context(), id, false)
	if err != nil {
		p.Log = "(no log: " + err.Error() + ")"
	} else {
		defer rc.Close()
		lb, _ := io.ReadAll(io.LimitReader(rc, 2<<20))
		p.Log = string(lb)
	}
	d.render(w, r, http.StatusOK, "build", pageData{Title: fmt.Sprintf("Build %d", id), Nav: "services", CSRF: d.csrfOf(a), Data: p})
	return nil
}

// buildLogStream hands a running build's log to the page as the API
// streams it (text/plain, followed until the build ends).
func (d *Dashboard) buildLogStream(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		http.Error(w, "a build's id is a positive number", http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, fmt.Sprintf("/v1/builds/%d/logs?follow=true", id), nil) //nolint:gosec // G704: served by the API's handler in this process, never sent over a network
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.Header.Set("Authorization", "Bearer "+d.cfg.Token)
	d.cfg.API.ServeHTTP(w, req)
}

// ---- platform

type platformData struct {
	Info      core.ServerInfo
	Services  int
	Versions  int
	Instances string
	RPS       string
	Builds    string
}

func (d *Dashboard) platformPage(w http.ResponseWriter, r *http.Request, a auth) error {
	ctx := r.Context()
	info, err := d.api.Info(ctx)
	if err != nil {
		return err
	}
	svcs, err := d.api.ListServices(ctx)
	if err != nil {
		return err
	}
	p := &platformData{Info: info, Services: len(svcs), RPS: "—"}
	rps, seen := 0.0, false
	for _, s := range svcs {
		vs, err := d.api.ListVersions(ctx, s.Name)
		if err == nil {
			p.Versions += len(vs)
		}
		if d.cfg.Sampler != nil {
			if pt, ok := d.cfg.Sampler.Latest(s.Name); ok {
				rps, seen = rps+pt.RPS, true
			}
		}
	}
	if seen {
		p.RPS = formatNum(rps, "")
	}
	insts, err := d.api.Instances(ctx, "")
	if err != nil {
		return err
	}
	states := map[string]int{}
	for _, in := range insts {
		states[in.State]++
	}
	p.Instances = fmt.Sprintf("%d (%s)", len(insts), statesString(states))
	if bs, err := d.api.ListBuilds(ctx, "", 1000); err == nil {
		p.Builds = strconv.Itoa(len(bs))
	} else {
		var ae *apiclient.Error
		if errors.As(err, &ae) {
			p.Builds = "off (" + ae.Message + ")"
		}
	}
	d.render(w, r, http.StatusOK, "platform", pageData{Title: "Platform", Nav: "platform", CSRF: d.csrfOf(a), Data: p})
	return nil
}
