//go:build browser

package browser

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/chromedp/chromedp"

	"github.com/wisp-run/wisp/internal/core"
)

// navigationStatus is the HTTP status of the document shown now (for a
// form's post that was answered with a page, that answer's).
const navigationStatus = `performance.getEntriesByType("navigation")[0].responseStatus`

// rulesInEditor: a request rule typed into the traffic editor of the
// service (two versions, v1 100%) is applied: the timeline and the API show
// it, and the router sends a request that matches it to v2. A rule the
// editor or the API refuses shows the 4xx message on the page, keeps the
// input and changes nothing.
func rulesInEditor(b tab, w *wisp, ui string) {
	t := b.t
	ctx := t.Context()
	const rule, message = "header:X-Beta=1 -> 2", "beta testers to v2"
	b.run("type a rule",
		chromedp.Navigate(ui+"services/"+service+"#traffic"),
		chromedp.WaitVisible(chromedp.ID("rules")),
		chromedp.SetValue(chromedp.ID("w1"), "100"),
		chromedp.SetValue(chromedp.ID("w2"), "0"),
		emptyField("rules"),
		chromedp.SendKeys(chromedp.ID("rules"), rule),
		chromedp.SendKeys(chromedp.CSS(`#traffic-editor input[name="message"]`), message),
		b.shots.take("rules-typed"))
	if errText := b.submit("apply the rule", "apply"); errText != "" {
		t.Fatalf("applying the rule %q: the page shows the error %q", rule, errText)
	}
	b.run("rule applied", b.shots.take("rules-applied"))
	if flash := b.text("rule applied", "flash"); !strings.Contains(flash, "Traffic changed") {
		t.Fatalf("after applying the rule the page says %q, want Traffic changed", flash)
	}
	// The DOM's text, so "->" is what a user reads, not the markup's &gt;.
	if cur := b.text("current rules", "current-rules"); strings.TrimSpace(cur) != rule {
		t.Errorf("the page's current rules read %q, want %q", cur, rule)
	}
	entry := eval[string](b, "timeline", `document.querySelector("#timeline li.current").textContent`)
	if !strings.Contains(entry, "rules "+rule) || !strings.Contains(entry, message) || !strings.Contains(entry, "v1 100%") {
		t.Errorf("the timeline's newest entry reads %q, want v1 100%%, rules %s and the message %q", strings.Join(strings.Fields(entry), " "), rule, message)
	}
	if got := eval[string](b, "editor", `document.getElementById("rules").value`); got != rule {
		t.Errorf("the editor after the apply holds the rules %q, want %q", got, rule)
	}
	tr, err := w.c.GetTraffic(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Rules) != 1 || tr.Rules[0].String() != rule || tr.Message != message || len(tr.Weights) != 1 || tr.Weights[0] != (core.Weight{Version: 1, Percent: 100}) {
		t.Fatalf("GET traffic after the editor: rules %v, weights %+v, message %q; want [%s], v1 100%%, %q", tr.Rules, tr.Weights, tr.Message, rule, message)
	}
	beta := http.Header{"X-Beta": {"1"}}
	for i := range 20 {
		if v, err := w.getWith(ctx, "/", beta); err != nil || v != "2" {
			t.Fatalf("request %d with X-Beta: 1 went to %q (%v), want 2 (the rule)", i, v, err)
		}
		if v, err := w.get(ctx, "/"); err != nil || v != "1" {
			t.Fatalf("request %d without X-Beta went to %q (%v), want 1 (the weights)", i, v, err)
		}
	}

	hist, err := w.c.TrafficHistory(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, rule string
		status     int
		want       []string
	}{
		// The editor parses the rules (core.ParseRequestRule) before the API.
		{"a regex that does not compile", `header:X~=( -> 2`, http.StatusBadRequest, []string{"rules, line 2", "does not compile"}},
		// The API checks the rule's version against the service's.
		{"an unknown version", `header:X-Beta=1 -> 9`, http.StatusUnprocessableEntity, []string{"rule 2", "has no version 9"}},
	} {
		step := "bad rule: " + tc.name
		b.run(step,
			chromedp.Navigate(ui+"services/"+service+"#traffic"),
			chromedp.WaitVisible(chromedp.ID("rules")),
			// The good rule stays first: the bad one is line 2.
			emptyField("rules"),
			chromedp.SendKeys(chromedp.ID("rules"), rule+"\n"+tc.rule))
		errText := b.submit(step, "apply")
		b.run(step, b.shots.take("rules-refused"))
		for _, want := range tc.want {
			if !strings.Contains(errText, want) {
				t.Errorf("%s (%s): the page shows the error %q, want one saying %q", tc.name, tc.rule, errText, want)
			}
		}
		if status := eval[int](b, step, navigationStatus); status != tc.status {
			t.Errorf("%s: the page came with status %d, want %d", tc.name, status, tc.status)
		}
		if got := eval[string](b, step, `document.getElementById("rules").value`); got != rule+"\n"+tc.rule {
			t.Errorf("%s: the editor lost the input: it holds %q, want %q", tc.name, got, rule+"\n"+tc.rule)
		}
		after, err := w.c.TrafficHistory(ctx, service)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(hist) {
			t.Fatalf("%s: the traffic history has %d entries, was %d: a refused rule changed the split", tc.name, len(after), len(hist))
		}
	}
	if tr, err := w.c.GetTraffic(ctx, service); err != nil || len(tr.Rules) != 1 || tr.Rules[0].String() != rule {
		t.Fatalf("after the refused rules: %v %v, want only %s", tr.Rules, err, rule)
	}
	t.Logf("rules: %q applied from the editor and followed by the router; a bad regex (400) and an unknown version (422) refused with their messages", rule)
}

// emptyField empties the form field with the id (chromedp.Clear wants a
// textarea that has text, and SetValue refuses "").
func emptyField(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(function(){ document.getElementById(`+strconv.Quote(id)+`).value = ""; return true; })()`)(ctx, tg)
		return err
	})
}
