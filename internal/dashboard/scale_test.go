package dashboard_test

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// TestOverviewAtScale times the services list at WISP_DASH_SCALE services
// (skipped unless set: a measurement, not a check).
func TestOverviewAtScale(t *testing.T) {

	n, _ := strconv.Atoi(os.Getenv("WISP_DASH_SCALE"))
	if n == 0 {
		t.Skip("set WISP_DASH_SCALE=N to time the services list at N services")
	}
	h := newHarness(t, nil)
	ctx := t.Context()
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		if _, err := h.c.CreateService(ctx, name, core.PolicyPatch{}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.c.CreateVersion(ctx, name, core.VersionSpec{Image: "greeter:1"}); err != nil {
			t.Fatal(err)
		}
	}
	h.login()
	for range 3 {
		start := time.Now()
		r := h.do("GET", "/ui/api/overview", nil, nil)
		if r.status != http.StatusOK {
			t.Fatal(r.status)
		}
		t.Logf("GET /ui/api/overview at %d services: %v (%d bytes)", n, time.Since(start).Round(time.Millisecond), len(r.body))
	}
}
