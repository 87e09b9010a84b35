package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/core"
)

// fakeMirrors answers one report, with the setting the store has, over
// two replicas, or partial (one) once partial is set; the test changes its
// pairs as copies would.
type fakeMirrors struct {
	mu      sync.Mutex
	pairs   []core.MirrorPair
	partial atomic.Bool
}

func (f *fakeMirrors) MirrorReport(_ context.Context, service string) (core.MirrorReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rep := core.MirrorReport{Service: service, Mirror: &core.Mirror{Version: 2, Percent: 10, IgnoreFields: []string{"timestamp"}},
		Since: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Pairs: append([]core.MirrorPair(nil), f.pairs...), Replica: "r1", Replicas: 2}
	if f.partial.Load() {
		rep.Replicas, rep.Partial = 1, true
	}
	return rep, nil
}

func (f *fakeMirrors) set(pairs []core.MirrorPair) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pairs = pairs
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
	f := &fakeMirrors{pairs: pairs}
	h := newHarnessAPI(t, nil, nil, api.WithMirrorReports(f))
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
		`<tr data-pair="1-2"><td>v1 → v2</td><td class="compared">40</td><td class="match-rate">75.0%</td><td>body 10 </td><td>3 / 0 / 0</td><td>1.2 / 2.0 / 3.0</td><td>4.5 / 5.0 / 6.0</td>`,
		`First differences, v1 → v2`,
		`<code>GET /hi</code>`,
		`<code>Hello, Go!</code></td><td><code>&lt;b&gt;Hello, Docker!&lt;/b&gt;</code>`,
		`id="mirror-replicas">Covers 2 replicas.</p>`,
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the service page lacks %s", want)
		}
	}
	f.partial.Store(true)
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

// TestMirrorSectionLive: the mirror section carries the report's stamp, the
// live JSON the same stamp while nothing is counted and another one once a
// copy is (app.js then replaces the section); a pair with no answer
// compared yet shows no match rate rather than 0%; the answer to a refused
// change names the service page as the source of its sections.
func TestMirrorSectionLive(t *testing.T) {
	fake := &fakeMirrors{pairs: []core.MirrorPair{{Primary: 1, Mirror: 2, Errors: 2, Mismatches: map[string]int64{}}}}
	h := newHarnessAPI(t, nil, nil, api.WithMirrorReports(fake))
	h.deploy("hello", 2)
	if _, err := h.c.SetMirror(t.Context(), "hello", core.Mirror{Version: 2, Percent: 10}); err != nil {
		t.Fatal(err)
	}
	h.login()
	stampOfPage := func() string {
		t.Helper()
		page := h.do("GET", "/ui/services/hello", nil, nil)
		m := regexp.MustCompile(`<section id="mirror" data-updated="([^"]+)">`).FindStringSubmatch(page.body)
		if m == nil {
			t.Fatalf("the mirror section has no stamp: %s", page.body)
		}
		return m[1]
	}
	stampOfLive := func() string {
		t.Helper()
		r := h.do("GET", "/ui/api/services/hello/live", nil, nil)
		var live struct {
			Mirror struct {
				Updated string `json:"updated"`
			} `json:"mirror"`
		}
		if err := json.Unmarshal([]byte(r.body), &live); err != nil || r.status != http.StatusOK || live.Mirror.Updated == "" {
			t.Fatalf("live: %d %v %s, want the mirror's stamp", r.status, err, r.body)
		}
		return live.Mirror.Updated
	}

	page, live := stampOfPage(), stampOfLive()
	if page != live {
		t.Errorf("the page's mirror stamp is %q, the live JSON's %q: the page would refresh with nothing new", page, live)
	}
	if body := h.do("GET", "/ui/services/hello", nil, nil).body; !strings.Contains(body, `<td class="compared">0</td><td class="match-rate">—</td>`) {
		t.Errorf("a pair with nothing compared must show no match rate: %s", body)
	}

	fake.set([]core.MirrorPair{{Primary: 1, Mirror: 2, Errors: 2, Compared: 1, Matched: 1, MatchRate: 1, Mismatches: map[string]int64{}}})
	if again := stampOfLive(); again == live {
		t.Errorf("after a copy was compared the live stamp is still %q", again)
	} else if page := stampOfPage(); page != again {
		t.Errorf("after a copy: the page's stamp %q, the live JSON's %q", page, again)
	}
	if body := h.do("GET", "/ui/services/hello", nil, nil).body; !strings.Contains(body, `<td class="compared">1</td><td class="match-rate">100.0%</td>`) {
		t.Errorf("the page does not show the compared copy: %s", body)
	}

	// The answer to a refused change is shown at …/traffic, which answers
	// no GET: the page names the path app.js fetches its sections from.
	csrf := h.csrf("/ui/services/hello")
	r := h.do("POST", "/ui/services/hello/traffic", url.Values{"csrf": {csrf}, "w1": {"100"}, "rules": {"header:X~=( -> 2"}, "action": {"apply"}}, h.sameOrigin())
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, `data-page="/ui/services/hello"`) || !strings.Contains(r.body, `<section id="mirror" data-updated="`) {
		t.Errorf("a refused change: %d, want 400 and a page that names /ui/services/hello as its sections' source: %s", r.status, r.body)
	}
	if r := h.do("GET", "/ui/services/hello/traffic", nil, nil); r.status == http.StatusOK {
		t.Errorf("GET …/traffic answers 200: then location would do, and this test is stale")
	}
}
