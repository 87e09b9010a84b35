package dashboard

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

type servicePageData struct {
	Service  core.Service
	Versions []core.Version
	// Standby says what the policy's standbys cost (core.StandbyCost).
	Standby string
	Current *core.TrafficEntry
	// Rollout is the newest rollout, nil when there is none.
	Rollout   *core.Rollout
	History   []core.TrafficEntry // newest first
	Instances []core.InstanceInfo
	Builds    []core.Build
	BuildsErr string
	Charts    []versionCharts
	Calls     callsSection
	// Mirror is this replica's mirror report (nil when it could not be
	// read: MirrorErr says why).
	Mirror    *core.MirrorReport
	MirrorErr string
	// MirrorStamp is mirrorStamp of the report, "" without one.
	MirrorStamp string
	Editor      editor
	Preview     *preview
	NewVer      newVersionForm
	Done        string
}

type versionCharts struct {
	Version int
	SVG     []template.HTML
}

type editor struct {
	Rows []editorRow
	Tags []tagRow
	// Rules is the textarea of request rules, one per line in the CLI's
	// form (core.ParseRequestRule).
	Rules   string
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
	Rows     []previewRow
	Sum      int
	SumOK    bool
	Tags     string
	OldTags  string
	Rules    []string
	OldRules []string
	Sticky   bool
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
	if ro, err := d.api.GetRollout(ctx, name); err == nil {
		p.Rollout = &ro
	}
	p.Editor = editorFor(p.Versions, p.Current)
	p.Standby = d.standbyCost(r, svc, p.Versions, p.Current)
	p.Calls = d.loadCalls(r, name)
	if rep, err := d.api.MirrorReport(ctx, name); err != nil {
		p.MirrorErr = err.Error()
	} else {
		p.Mirror, p.MirrorStamp = &rep, mirrorStamp(rep)
	}
	return p, nil
}

// standbyCost describes the cost of the service's standbys for the
// versions that get traffic now.
func (d *Dashboard) standbyCost(r *http.Request, svc core.Service, versions []core.Version, cur *core.TrafficEntry) string {
	noPause := false
	if info, err := d.api.Info(r.Context()); err == nil {
		noPause = info.NoPause
	}
	var routable []core.Version
	if cur != nil {
		on := cur.Routable()
		for _, v := range versions {
			if on[v.Number] {
				routable = append(routable, v)
			}
		}
	}
	return core.StandbyCost(svc.Policy.Standby, routable, noPause)
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
		e.Rules = strings.Join(ruleLines(cur.Traffic), "\n")
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
	case "rollout":
		switch q.Get("action") {
		case core.RolloutPause:
			return "The rollout is paused."
		case core.RolloutResume:
			return "The rollout is resumed: its step's interval starts again."
		case core.RolloutPromote:
			return "The rollout is promoted: its version has 100%."
		case core.RolloutAbort:
			return "The rollout is aborted: the traffic before it is restored."
		}
	case "version":
		return fmt.Sprintf("Version %d created.", n)
	case "retry":
		return "The call is queued again, with a fresh budget of attempts."
	case "suspend":
		return "The schedule is suspended: it fires no more until it is resumed."
	case "resume":
		return "The schedule is resumed."
	case "run":
		if id := q.Get("call"); callIDPattern.MatchString(id) {
			return "The schedule fired now: call " + id + "."
		}
		return "The schedule fired now."
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
	e.Rules = r.PostFormValue("rules")
	for i, line := range strings.Split(e.Rules, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		rule, err := core.ParseRequestRule(line)
		if err != nil {
			problems = append(problems, fmt.Sprintf("rules, line %d: %v", i+1, err))
			continue
		}
		t.Rules = append(t.Rules, rule)
	}
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
	p := &preview{Tags: tagString(next), OldTags: oldTags, Rules: ruleLines(next), Sticky: next.Sticky}
	if cur != nil {
		p.OldRules = ruleLines(cur.Traffic)
	}
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
	if p.Current != nil {
		// The editor does not show the mirror; a new split keeps it
		// (unless it gives the mirror's version everything), as
		// wisp traffic set does.
		t.Mirror = t.MirrorFor(p.Current.Mirror)
	}
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
	out := map[string]any{"charts": charts, "latest": latest, "series": series, "interval_seconds": d.interval.Seconds()}
	// The newest rollout's state and when it last changed: app.js
	// refreshes the page's rollout section when that moves.
	if ro, err := d.api.GetRollout(ctx, name); err == nil {
		out["rollout"] = map[string]string{"state": string(ro.State), "updated": strconv.FormatInt(ro.UpdatedAt.UnixNano(), 10)}
	}
	// And the mirror report's stamp: app.js refreshes the mirror section
	// when a copy was counted or the setting changed.
	if rep, err := d.api.MirrorReport(ctx, name); err == nil {
		out["mirror"] = map[string]string{"updated": mirrorStamp(rep)}
	}
	writeJSON(w, http.StatusOK, out)
}

// mirrorStamp names the state of a mirror report: it moves when the
// setting changes (the report starts again) and with every copy counted
// (compared, dropped, too large or failed), and stays while nothing
// happens, so a page that shows the report knows when it is stale.
func mirrorStamp(rep core.MirrorReport) string {
	setting := "off"
	if rep.Mirror != nil {
		setting = rep.Mirror.String()
	}
	var n int64
	for _, p := range rep.Pairs {
		n += p.Compared + p.Dropped + p.TooLarge + p.Errors
	}
	return fmt.Sprintf("%d.%d %s", rep.Since.UnixNano(), n, setting)
}

// rolloutActions are the buttons a rollout in state s offers.
func rolloutActions(s core.RolloutState) []string {
	if s == core.RolloutPaused {
		return []string{core.RolloutResume, core.RolloutPromote, core.RolloutAbort}
	}
	return []string{core.RolloutPause, core.RolloutPromote, core.RolloutAbort}
}

// rolloutAction applies a button of the rollout section.
func (d *Dashboard) rolloutAction(w http.ResponseWriter, r *http.Request, a auth) error {
	name := r.PathValue("name")
	// The action is one of the fixed names, never the path's text.
	var action string
	for _, a := range []string{core.RolloutPause, core.RolloutResume, core.RolloutPromote, core.RolloutAbort} {
		if r.PathValue("action") == a {
			action = a
		}
	}
	if action == "" {
		return formErrorf("unknown rollout action %q: pause, resume, promote or abort", r.PathValue("action"))
	}
	if _, err := d.api.RolloutAction(r.Context(), name, action); err != nil {
		p, lerr := d.loadService(r, name)
		if lerr != nil {
			return err
		}
		status, msg := errorStatus(err)
		d.render(w, r, status, "service", pageData{Title: name, Nav: "services", CSRF: d.csrfOf(a), Bearer: a.bearer, Data: p, Error: msg})
		return nil
	}
	http.Redirect(w, r, fmt.Sprintf("/ui/services/%s?done=rollout&action=%s#rollout", url.PathEscape(name), action), http.StatusSeeOther)
	return nil
}
