package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
)

// interloper stands between the CLI and the daemon: before each of the
// first `times` traffic PUTs it forwards, another client changes the
// traffic directly, as if it had raced the CLI between its read and write.
type interloper struct {
	times    int64
	puts     atomic.Int64
	mu       sync.Mutex
	ifMatchs []string
}

func (e *env) behind(t *testing.T, il *interloper) *env {
	t.Helper()
	tok, err := config.ReadToken(e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	direct := apiclient.New(e.server, tok)
	target, err := url.Parse("http://" + e.server)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/traffic") {
			n := il.puts.Add(1)
			il.mu.Lock()
			il.ifMatchs = append(il.ifMatchs, r.Header.Get("If-Match"))
			il.mu.Unlock()
			if n <= il.times {
				cur, err := direct.GetTraffic(r.Context(), "hello")
				if err == nil {
					_, err = direct.SetTraffic(r.Context(), "hello", core.Traffic{Weights: cur.Weights,
						Tags: map[string]int{"beta": 1}, Message: fmt.Sprint("interloper ", n)})
				}
				if err != nil {
					t.Errorf("interloper: %v", err)
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cp := *e
	cp.server = srv.URL
	return &cp
}

// TestTrafficSetRetriesOnConflict: `wisp traffic set` keeps the current
// tags by reading them first; when someone changes the traffic between its
// read and its write, the write fails its If-Match, and the command reads
// again rather than overwriting the change with the tags it read before.
func TestTrafficSetRetriesOnConflict(t *testing.T) {
	e := newEnv(t)
	e.ok("service", "create", "hello")
	e.ok("version", "create", "hello", "hello:1")
	e.ok("version", "create", "hello", "hello:2")
	e.ok("traffic", "set", "hello", "1", "--tag", "canary=2")
	il := &interloper{times: 1}
	out := e.behind(t, il).ok("traffic", "set", "hello", "2")
	if !strings.Contains(out, "beta") || strings.Contains(out, "canary") {
		t.Fatalf("the command must keep the interloper's tags, not the ones it read first:\n%s", out)
	}
	tok, _ := config.ReadToken(e.dataDir)
	cur, err := apiclient.New(e.server, tok).GetTraffic(t.Context(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"beta": 1}, cur.Tags); diff != "" || len(cur.Weights) != 1 || cur.Weights[0].Version != 2 {
		t.Fatalf("current traffic %+v (tags -want +got:\n%s)", cur, diff)
	}
	il.mu.Lock()
	defer il.mu.Unlock()
	if len(il.ifMatchs) != 2 || il.ifMatchs[0] == "" || il.ifMatchs[1] == "" || il.ifMatchs[0] == il.ifMatchs[1] {
		t.Fatalf("PUTs sent If-Match %q; want two, the second naming the entry read again", il.ifMatchs)
	}
}

// TestTrafficSetGivesUp: under changes that do not stop, the command fails
// after a few attempts with a message that says so, and sets nothing.
func TestTrafficSetGivesUp(t *testing.T) {
	e := newEnv(t)
	e.ok("service", "create", "hello")
	e.ok("version", "create", "hello", "hello:1")
	e.ok("version", "create", "hello", "hello:2")
	il := &interloper{times: 1 << 30}
	code, _, stderr := e.behind(t, il).run("traffic", "set", "hello", "2")
	if code != 1 || !strings.Contains(stderr, "kept changing while this command ran (5 attempts), so nothing was set") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if n := il.puts.Load(); n != 5 {
		t.Fatalf("%d attempts, want 5", n)
	}
	var hist []core.TrafficEntry
	if err := json.Unmarshal([]byte(e.ok("traffic", "history", "hello", "-o", "json")), &hist); err != nil || len(hist) != 6 {
		t.Fatalf("history: %d entries (want the first and 5 interlopers'), %v", len(hist), err)
	}
	for _, h := range hist {
		if h.PercentOf(2) > 0 {
			t.Fatalf("a command that gave up set traffic: entry %+v", h)
		}
	}
}

// TestMirrorReportOutput: the report says how many replicas it covers,
// and when it is partial.
func TestMirrorReportOutput(t *testing.T) {
	e := newEnv(t)
	var partial atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/services/hello/mirror/report" {
			http.NotFound(w, r)
			return
		}
		replicas := 3
		if partial.Load() {
			replicas = 1
		}
		_ = json.NewEncoder(w).Encode(core.MirrorReport{Service: "hello", Mirror: &core.Mirror{Version: 2, Percent: 10},
			Replica: "r1", Replicas: replicas, Partial: partial.Load(),
			Pairs: []core.MirrorPair{{Primary: 1, Mirror: 2, Compared: 40, Matched: 40, MatchRate: 1, Mismatches: map[string]int64{}}}})
	}))
	t.Cleanup(srv.Close)
	cp := *e
	cp.server = srv.URL
	out := cp.ok("traffic", "mirror", "report", "hello")
	if !strings.Contains(out, "over 3 replicas (answered by r1)") || strings.Contains(out, "Partial") || !strings.Contains(out, "v1 → v2") {
		t.Fatalf("report over 3 replicas:\n%s", out)
	}
	partial.Store(true)
	out = cp.ok("traffic", "mirror", "report", "hello")
	if !strings.Contains(out, "over 1 replica (answered by r1)") || !strings.Contains(out, "Partial: the leader could not be reached") {
		t.Fatalf("partial report:\n%s", out)
	}
}
