//go:build browser

package browser

import (
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wisp-run/wisp/internal/core"
)

// mirrorReport: the service gets v3, the same as v1 (GREETING=one), and a
// mirror of every request to it through the API; GET requests through the
// router are copied and compared. The page shown, the answer to the
// refused change rulesInEditor made last (its path is …/traffic), follows
// the mirror without a reload (app.js): first the setting, then the pair
// v1 → v3 at a 100% match rate with the count compared.
func mirrorReport(b tab, w *wisp, ui string) {
	t := b.t
	ctx := t.Context()
	if path := eval[string](b, "mirror section", `location.pathname`); path != "/ui/services/"+service+"/traffic" {
		t.Fatalf("the page shown is %s, want the answer to a refused change (/ui/services/%s/traffic)", path, service)
	}
	value(t, b.ctx, b.shots, "mirror section", markPage())
	v3, err := w.c.CreateVersion(ctx, service, core.VersionSpec{Image: greeter, Env: []string{"GREETING=one"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.SetMirror(ctx, service, core.Mirror{Version: v3.Number, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	setting := value(t, b.ctx, b.shots, "mirror setting live",
		chromedp.Poll[string](`(function(){ var p = document.getElementById("mirror-setting");
			return window.wispBefore === true && p && p.textContent.indexOf("Copies") === 0 ? p.textContent : null; })()`,
			chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(250*time.Millisecond)))
	b.run("mirror section", b.shots.take("mirror-set"))
	if !strings.Contains(setting, "Copies 100% of requests to v3") {
		t.Fatalf("the mirror section says %q, want Copies 100%% of requests to v3", setting)
	}

	// Requests until the report has compared a few: the first copies wait
	// for v3 to start (at most 5 s each), and while they do more are
	// dropped, so the count is not known beforehand. Bounded: 60 s.
	var rep core.MirrorReport
	sent := 0
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if v, err := w.get(ctx, "/"); err != nil || v != "1" {
			t.Fatalf("a request while mirroring went to %q (%v), want 1: clients get the primary's answer", v, err)
		}
		sent++
		if rep, err = w.c.MirrorReport(ctx, service); err != nil {
			t.Fatal(err)
		}
		if len(rep.Pairs) == 1 && rep.Pairs[0].Compared >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d requests in 60 s the mirror report compared too few: %+v", sent, rep.Pairs)
		}
	}
	pair := rep.Pairs[0]
	if pair.Primary != 1 || pair.Mirror != v3.Number || pair.Matched != pair.Compared {
		t.Fatalf("the mirror report (API): %+v, want v1 → v%d with every compared pair matched", pair, v3.Number)
	}

	// The section follows the report by itself: the page marked before the
	// copies is still the one shown.
	row := `document.querySelector('#mirror-report tr[data-pair="1-` + strconv.Itoa(v3.Number) + `"]')`
	compared := value(t, b.ctx, b.shots, "mirror report live",
		chromedp.Poll[string](`(function(){ var r = `+row+`; if (!r || window.wispBefore !== true) { return null; }
			var n = parseInt(r.querySelector(".compared").textContent, 10); return n > 0 ? String(n) : null; })()`,
			chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(250*time.Millisecond)))
	b.run("mirror report", b.shots.take("mirror-report"))
	if rate := eval[string](b, "match rate", row+`.querySelector(".match-rate").textContent`); rate != "100.0%" {
		t.Errorf("the page's match rate of v1 → v%d is %q, want 100.0%% (two identical versions)", v3.Number, rate)
	}
	if cells := eval[string](b, "mismatches", row+`.cells[3].textContent`); strings.TrimSpace(cells) != "none" {
		t.Errorf("the page's mismatches of identical versions: %q, want none", cells)
	}
	if n := eval[int](b, "examples", `document.querySelectorAll("#mirror table.mirror-examples").length`); n != 0 {
		t.Errorf("the page shows %d tables of differences for identical versions", n)
	}
	t.Logf("mirror: %d requests, the API compared %d (matched %d, errors %d, dropped %d); the page showed %s compared at 100%% without a reload",
		sent, pair.Compared, pair.Matched, pair.Errors, pair.Dropped, compared)
	if _, err := w.c.DeleteMirror(ctx, service); err != nil {
		t.Fatal(err)
	}
}
