package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
)

func TestRolloutSection(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy("hello", 2)
	ctx := t.Context()
	if _, err := h.c.SetTraffic(ctx, "hello", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}}); err != nil {
		t.Fatal(err)
	}
	ro, err := h.c.StartRollout(ctx, "hello", core.RolloutSpec{To: 2, Steps: []int{10, 100}})
	if err != nil {
		t.Fatal(err)
	}
	h.login()
	page := h.do("GET", "/ui/services/hello", nil, nil)
	for _, want := range []string{`<h2>Rollout ` + itoa(int(ro.ID)) + `</h2>`, `id="rollout-percent">10%`, `id="rollout-pause"`, `id="rollout-abort"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the service page lacks %q", want)
		}
	}
	// Without the CSRF token the action is refused and changes nothing.
	if r := h.do("POST", "/ui/services/hello/rollout/pause", url.Values{}, h.sameOrigin()); r.status != http.StatusForbidden {
		t.Errorf("pause without CSRF: %d", r.status)
	}
	csrf := h.csrf("/ui/services/hello")
	r := h.do("POST", "/ui/services/hello/rollout/pause", url.Values{"csrf": {csrf}}, h.sameOrigin())
	if r.status != http.StatusSeeOther {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	if got, _ := h.c.GetRollout(ctx, "hello"); got.State != core.RolloutPaused {
		t.Errorf("after pause: %s", got.State)
	}
	if page := h.do("GET", "/ui/services/hello", nil, nil); !strings.Contains(page.body, `id="rollout-resume"`) || strings.Contains(page.body, `id="rollout-pause"`) {
		t.Errorf("a paused rollout offers resume, not pause")
	}
	// An action the state forbids shows the API's message.
	if r := h.do("POST", "/ui/services/hello/rollout/pause", url.Values{"csrf": {csrf}}, h.sameOrigin()); r.status != http.StatusConflict || !strings.Contains(r.body, "paused already") {
		t.Errorf("pause twice: %d", r.status)
	}
	if r := h.do("POST", "/ui/services/hello/rollout/abort", url.Values{"csrf": {csrf}}, h.sameOrigin()); r.status != http.StatusSeeOther {
		t.Fatalf("abort: %d %s", r.status, r.body)
	}
	if tr, _ := h.c.GetTraffic(ctx, "hello"); splitOf(tr) != "1:100" {
		t.Errorf("after abort: %+v, want 1:100", tr)
	}
	if r := h.do("POST", "/ui/services/hello/rollout/explode", url.Values{"csrf": {csrf}}, h.sameOrigin()); r.status < 400 || r.status >= 500 {
		t.Errorf("unknown action: %d, want a 4xx", r.status)
	}
}
