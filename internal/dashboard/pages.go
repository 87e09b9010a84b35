package dashboard

import (
	"crypto/subtle"
	"encoding/json"
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
	"utc":            func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"split":          splitString,
	"steps":          core.RolloutSteps,
	"rolloutActions": rolloutActions,
	"title":          title,
	"tags":           tagString,
	"rules":          ruleLines,
	"join":           strings.Join,
	// percent shows a rate in [0, 1] as a percent.
	"percent": func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	// Async calls, triggers and schedules.
	"lastStatus": lastStatus,
	"origin":     originLink,
	"ms":         durationMS,
	"utcp":       timeOrDash,
	"inc":        func(i int) int { return i + 1 },
	"utcz":       func(t time.Time) string { return timeOrDash(&t) },
}

// title capitalises s's first letter ("running" → "Running").
func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
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

// ruleLines returns t's request rules in the text form the editor takes,
// one per element.
func ruleLines(t core.Traffic) []string {
	out := make([]string, len(t.Rules))
	for i, r := range t.Rules {
		out[i] = r.String()
	}
	return out
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
