package daemon_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
)

// TestDockerRequestRules (issue 15): with weights 1=50 2=50 and the rule
// header:X-Beta=1 -> 2, every request with X-Beta: 1 reaches version 2 and
// the 3,000 others split 50/50 within ±3 points; a rule to a version
// without weight and without an instance starts one, like any routed
// request.
func TestDockerRequestRules(t *testing.T) {
	setup(t, "rules")
	w := startWisp(t, t.TempDir(), nil)
	w.deploy("rules", core.PolicyPatch{}, []string{"GREETING=Go"}, []string{"GREETING=Docker"}, []string{"GREETING=sqlite"})
	rules := []core.RequestRule{}
	for _, s := range []string{"header:X-Beta=1 -> 2", "cookie:gamma=1 -> 3"} {
		r, err := core.ParseRequestRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	if _, err := w.c.SetTraffic(t.Context(), "rules", core.Traffic{
		Weights: []core.Weight{{Version: 1, Percent: 50}, {Version: 2, Percent: 50}}, Rules: rules}); err != nil {
		t.Fatal(err)
	}

	// Version 3 has no weight: the cookie rule is its only way in, and its
	// first request starts its first instance.
	if c := containers(t, "rules"); len(c) != 0 {
		t.Fatalf("%d containers before any request, want 0: %v", len(c), c)
	}
	if r := w.getWith("rules.localhost", "/", "Cookie", "gamma=1"); r.status != 200 || r.version != "3" || strings.TrimSpace(r.body) != "Hello, sqlite!" {
		t.Fatalf("the cookie rule's request: %+v, want 200 from version 3", r)
	} else {
		t.Logf("first request to version 3 by a rule: cold start %s ms", r.cold)
	}

	const others, beta = 3000, 1000
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan bool, others+beta)
	for i := range others + beta {
		jobs <- i%4 == 3 // every fourth request is a beta one
	}
	close(jobs)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for isBeta := range jobs {
				var r reply
				if isBeta {
					r = w.getWith("rules.localhost", "/", "X-Beta", "1")
				} else {
					r = w.get("rules.localhost", "/")
				}
				mu.Lock()
				counts[fmt.Sprintf("%t %d %s", isBeta, r.status, strings.TrimSpace(r.body))]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("counts: %v", counts)
	if got := counts["true 200 Hello, Docker!"]; got != beta {
		t.Errorf("%d of %d requests with X-Beta: 1 reached version 2, want all", got, beta)
	}
	for body, want := range map[string]float64{"false 200 Hello, Go!": 50, "false 200 Hello, Docker!": 50} {
		got := 100 * float64(counts[body]) / others
		if got < want-3 || got > want+3 {
			t.Errorf("%q: %.1f%% of the requests without X-Beta, want %.0f±3", body, got, want)
		}
	}
	if n := counts["false 200 Hello, Go!"] + counts["false 200 Hello, Docker!"]; n != others {
		t.Errorf("%d of %d requests without X-Beta were served by version 1 or 2: %v", n, others, counts)
	}
}

// getWith is get with one request header.
func (w *wisp) getWith(host, path, key, value string) reply {
	w.t.Helper()
	req, err := http.NewRequestWithContext(w.t.Context(), "GET", "http://"+w.router+path, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Host = host
	req.Header.Set(key, value)
	resp, err := w.http.Do(req)
	if err != nil {
		w.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: string(b), version: resp.Header.Get("Wisp-Version"), cold: resp.Header.Get("Wisp-Cold-Start")}
}
