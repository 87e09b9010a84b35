package daemon_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

// TestDockerMirror (issue 15): mirroring between two identical versions
// matches 100%; a version whose body differs is caught with examples;
// POSTs are not copied without all_methods; clients only ever get the
// primary's answers. Percent 100 (not 10) so that every request is a
// copy: the properties are the same, the test faster.
func TestDockerMirror(t *testing.T) {
	setup(t, "mirror")
	w := startWisp(t, t.TempDir(), nil)
	w.deploy("mirror", core.PolicyPatch{}, []string{"GREETING=Go"}, []string{"GREETING=Go"}, []string{"GREETING=Docker"})
	ctx := t.Context()

	// total is every copy the report accounts for.
	total := func(rep core.MirrorReport) int64 {
		var n int64
		for _, p := range rep.Pairs {
			n += p.Compared + p.Dropped + p.TooLarge + p.Errors
		}
		return n
	}
	// send makes n requests, each answered by the primary, then waits
	// until the report accounts for want copies in all. With paced, it
	// waits for each copy before the next request: the mirror-only
	// version runs at a low CPU weight, so on a busy machine copies sent
	// back to back outrun it and those beyond the in-flight bound are
	// dropped (by design), and this test is about the comparison.
	send := func(method string, n int, want int64, paced bool) core.MirrorReport {
		t.Helper()
		before := int64(0)
		if paced {
			rep, err := w.c.MirrorReport(ctx, "mirror")
			if err != nil {
				t.Fatal(err)
			}
			before = total(rep)
		}
		for i := range n {
			for deadline := time.Now().Add(10 * time.Second); paced; time.Sleep(2 * time.Millisecond) {
				rep, err := w.c.MirrorReport(ctx, "mirror")
				if err != nil {
					t.Fatal(err)
				}
				if total(rep) >= before+int64(i) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("copy %d not accounted for within 10 s: %+v", i, rep)
				}
			}
			req, err := http.NewRequestWithContext(ctx, method, "http://"+w.router+"/", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "mirror.localhost"
			resp, err := w.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "Hello, Go!" || resp.Header.Get("Wisp-Version") != "1" {
				t.Fatalf("%s answered %d %q by version %s; want the primary's answer, from version 1", method, resp.StatusCode, b, resp.Header.Get("Wisp-Version"))
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			rep, err := w.c.MirrorReport(ctx, "mirror")
			if err != nil {
				t.Fatal(err)
			}
			if got := total(rep); got == want {
				return rep
			} else if got > want || time.Now().After(deadline) {
				t.Fatalf("the report accounts for %d copies, want %d: %+v", got, want, rep)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Started mirror versions: while one starts, the copies beyond the
	// in-flight bound are dropped (that is the design), and this test is
	// about the comparison.
	for _, v := range []string{"2", "3"} {
		if r := w.getWith("mirror.localhost", "/", "Wisp-Version", v); r.status != 200 {
			t.Fatalf("warming version %s: %+v", v, r)
		}
	}
	if _, err := w.c.SetMirror(ctx, "mirror", core.Mirror{Version: 2, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	rep := send("GET", 100, 100, true)
	p := rep.Pairs[0]
	t.Logf("identical versions: %+v", p)
	if len(rep.Pairs) != 1 || p.Primary != 1 || p.Mirror != 2 || p.Compared < 80 || p.Matched != p.Compared || p.MatchRate != 1 || len(p.Examples) != 0 {
		t.Fatalf("identical versions: pairs %+v, want v1→v2 with at least 80 compared and a 100%% match", rep.Pairs)
	}
	if p.PrimaryLatency.Count == 0 || p.MirrorLatency.P50 <= 0 {
		t.Fatalf("latencies %+v / %+v", p.PrimaryLatency, p.MirrorLatency)
	}

	if _, err := w.c.SetMirror(ctx, "mirror", core.Mirror{Version: 3, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	if rep, err := w.c.MirrorReport(ctx, "mirror"); err != nil || len(rep.Pairs) != 0 || rep.Mirror == nil || rep.Mirror.Version != 3 {
		t.Fatalf("a new setting did not reset the report: %+v, %v", rep, err)
	}
	rep = send("GET", 50, 50, true)
	p = rep.Pairs[0]
	t.Logf("a different greeting: %+v", p)
	if p.Compared < 30 || p.Matched != 0 || p.Mismatches[core.MismatchBody] != p.Compared || len(p.Examples) == 0 {
		t.Fatalf("a different greeting: %+v, want at least 30 compared, all differing in body, with examples", p)
	}
	if ex := p.Examples[0]; ex.Method != "GET" || ex.Path != "/" || !strings.Contains(ex.PrimaryBody, "Hello, Go!") || !strings.Contains(ex.MirrorBody, "Hello, Docker!") {
		t.Fatalf("example %+v", ex)
	}

	// The mirror-only version runs with the lowest CPU weight, the
	// primary with the engine's default.
	shares := func() map[string]int64 {
		ids, err := dockertest.Containers(ctx, "mirror")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for id, state := range ids {
			c, err := dockertest.InspectContainer(ctx, id)
			if err != nil || state != "running" || c.Labels[runtime.LabelInstance] == "" {
				continue // a sandbox or a stopped container
			}
			out[c.Labels[runtime.LabelVersionNumber]] = c.CPUShares
		}
		return out
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := shares()
		if got["3"] == 2 && got["1"] != 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU shares by version %v: want 2 for version 3 (mirror only), the default for version 1", got)
		}
	}

	// POSTs are not copied: after 20 of them and 10 GETs, the report
	// accounts for exactly 10 more copies.
	send("POST", 20, 50, false)
	send("GET", 10, 60, true)
}
