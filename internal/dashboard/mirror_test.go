package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/core"
)

// fakeMirrors answers one report, with the setting the store has, over
// two replicas, or partial (one) once partial is set.
type fakeMirrors struct {
	pairs   []core.MirrorPair
	partial *atomic.Bool
}

func (f fakeMirrors) MirrorReport(_ context.Context, service string) (core.MirrorReport, error) {
	rep := core.MirrorReport{Service: service, Mirror: &core.Mirror{Version: 2, Percent: 10, IgnoreFields: []string{"timestamp"}},
		Since: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Pairs: f.pairs, Replica: "r1", Replicas: 2}
	if f.partial.Load() {
		rep.Replicas, rep.Partial = 1, true
	}
	return rep, nil
}

// TestServicePageMirror: the service page shows the mirror setting and the
// report (match rate, mismatches, latencies side by side, examples, escaped);
// without a mirror it says how to set one; the traffic editor keeps the
// mirror it does not show.
func TestServicePageMirror(t *testing.T) {
	pairs := []core.MirrorPair{{Primary: 1, Mirror: 2, Compared: 40, Matched: 30, MatchRate: 0.75,
		Mismatches:     map[string]int64{"body": 10},
		Dropped:        3,
		PrimaryLatency: core.LatencySummary{Count: 40, P50: 1.25, P90: 2, P99: 3},
		MirrorLatency:  core.LatencySummary{Count: 40, P50: 4.5, P90: 5, P99: 6},
		Examples: []core.MirrorExample{{Method: "GET", Path: "/hi", Kinds: []string{"body"}, PrimaryStatus: 200, MirrorStatus: 200,
			PrimaryBody: "Hello, Go!", MirrorBody: "<b>Hello, Docker!</b>"}}}}
	var partial atomic.Bool
	h := newHarnessAPI(t, nil, nil, api.WithMirrorReports(fakeMirrors{pairs: pairs, partial: &partial}))
	h.deploy("hello", 2)
	h.login()

	page := h.do("GET", "/ui/services/hello", nil, nil)
	if !strings.Contains(page.body, `id="mirror-setting">No mirror.`) {
		t.Errorf("without a mirror the page does not say so: %s", page.body)
	}

	if _, err := h.c.SetMirror(t.Context(), "hello", core.Mirror{Version: 2, Percent: 10, IgnoreFields: []string{"timestamp"}}); err != nil {
		t.Fatal(err)
	}
	page = h.do("GET", "/ui/services/hello", nil, nil)
	for _, want := range []string{
		`id="mirror-setting">Copies 10% of requests to v2, GET, HEAD and OPTIONS only; ignoring JSON fields timestamp`,
		`<td>v1 → v2</td><td>40</td><td class="match-rate">75.0%</td><td>body 10 </td><td>3 / 0 / 0</td><td>1.2 / 2.0 / 3.0</td><td>4.5 / 5.0 / 6.0</td>`,
		`First differences, v1 → v2`,
		`<code>GET /hi</code>`,
		`<code>Hello, Go!</code></td><td><code>&lt;b&gt;Hello, Docker!&lt;/b&gt;</code>`,
		`id="mirror-replicas">Covers 2 replicas.</p>`,
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the service page lacks %s", want)
		}
	}
	partial.Store(true)
	page = h.do("GET", "/ui/services/hello", nil, nil)
	if want := `id="mirror-replicas">Covers 1 replica; partial: the leader could not be reached, so these are this replica's numbers only.</p>`; !strings.Contains(page.body, want) {
		t.Errorf("a partial report: the service page lacks %s", want)
	}

	csrf := h.csrf("/ui/services/hello")
	cur, _ := h.c.GetTraffic(t.Context(), "hello")
	r := h.do("POST", "/ui/services/hello/traffic", url.Values{"csrf": {csrf}, "w1": {"90"}, "w2": {"10"}, "if_entry": {itoa(int(cur.ID))}, "action": {"apply"}}, h.sameOrigin())
	if r.status != http.StatusSeeOther {
		t.Fatalf("apply: %d %s", r.status, r.body)
	}
	if tr, _ := h.c.GetTraffic(t.Context(), "hello"); tr.Mirror == nil || tr.Mirror.Version != 2 || splitOf(tr) != "1:90 2:10" {
		t.Fatalf("the editor's change lost the mirror: %+v", tr)
	}
}
