package daemon_test

// The faults of issue 10 that are the Docker Engine's, on the real engine:
// a container frozen by hand, a process that hangs, a crash loop, and a
// container an earlier run left in the middle of its start.

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/docker"
)

// TestDockerFrozenAndHungInstances: a container paused by hand is thawed
// for the next request (it was 504 for ever); one whose process hangs costs
// the request that hit the hang, and then requests are served by a new
// instance while the hung one is removed.
func TestDockerFrozenAndHungInstances(t *testing.T) {
	setup(t, "frozen")
	w := startWisp(t, t.TempDir(), nil)
	ctx := t.Context()
	if _, err := w.c.CreateService(ctx, "frozen", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.CreateVersion(ctx, "frozen", core.VersionSpec{Image: greeter, Timeout: core.Duration(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if r := w.get("frozen.localhost", "/"); r.status != 200 {
		t.Fatal(r)
	}
	first := onlyRunning(t, "frozen")
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.ContainerPause(ctx, first, client.ContainerPauseOptions{}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if r := w.get("frozen.localhost", "/"); r.status != 200 {
		t.Fatalf("after docker pause: %+v, want the container thawed and the request answered", r)
	}
	if d := time.Since(began); d > 1500*time.Millisecond {
		t.Fatalf("a request to a container paused by hand took %s", d)
	}
	// The thawed process can answer before the engine has recorded the
	// thaw (it resumes the cgroup, then marks the container running), so
	// the engine's view is waited for, not read once.
	waitFor(t, 2*time.Second, "the engine to report the thawed container running", func() bool {
		return containers(t, "frozen")[first] == "running"
	})
	if now := onlyRunning(t, "frozen"); now != first {
		t.Fatalf("the frozen container was replaced (%s → %s), want it thawed", first[:12], now[:12])
	}

	// Now the process hangs: it accepts connections and never answers.
	if r := w.get("frozen.localhost", "/freeze"); r.status != 200 {
		t.Fatal(r)
	}
	if r := w.get("frozen.localhost", "/"); r.status != 504 {
		t.Fatalf("the request that met the hang: %+v, want 504 at the version's timeout", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		began := time.Now()
		r := w.get("frozen.localhost", "/")
		if r.status == 200 {
			break
		}
		if d := time.Since(began); d > 3*time.Second {
			t.Fatalf("a request after the hang took %s (%+v): the hung instance still gets traffic", d, r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %+v 10s after the hang", r)
		}
	}
	waitFor(t, 15*time.Second, "the hung container to be removed", func() bool {
		_, ok := containers(t, "frozen")[first]
		return !ok
	})
}

// TestDockerCrashLoopBacksOff: ten clients sending for 4 s to a version
// whose process exits at once start at most 4 containers (0, 1, 3 s), not
// one per request; every answer is a 503 with the exit code, its output and
// Retry-After.
func TestDockerCrashLoopBacksOff(t *testing.T) {
	setup(t, "crash")
	w := startWisp(t, t.TempDir(), nil)
	ctx := t.Context()
	if _, err := w.c.CreateService(ctx, "crash", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.CreateVersion(ctx, "crash", core.VersionSpec{Image: greeter, Env: []string{"EXIT_CODE=1"}}); err != nil {
		t.Fatal(err)
	}
	stop := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	var answers, bad atomic.Int64
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+w.router+"/", nil)
				req.Host = "crash.localhost"
				resp, err := w.http.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b := make([]byte, 4096)
				n, _ := resp.Body.Read(b)
				_ = resp.Body.Close()
				answers.Add(1)
				ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				if resp.StatusCode != 503 || ra < 1 || !strings.Contains(string(b[:n]), "code 1") {
					if bad.Add(1) <= 3 {
						t.Errorf("got %d (Retry-After %q) %q, want 503 with the exit code and a Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), b[:n])
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	failed := coldStarts(t, w, "crash", "failed")
	t.Logf("%d answers, %d starts in 4 s", answers.Load(), failed)
	if failed < 2 || failed > 4 {
		t.Fatalf("%d failed starts in 4 s, want 2 to 4 (a backoff of 1 s, then 2 s)", failed)
	}
}

// coldStarts reads wisp_cold_starts_total{service,result} from /metrics.
func coldStarts(t *testing.T, w *wisp, service, result string) int {
	t.Helper()
	return int(metricSum(t, w, "wisp_cold_starts_total", `service="`+service+`"`, `result="`+result+`"`))
}

// metricSum adds up the samples of metric name on /metrics whose labels
// contain every one of match (name="value" strings).
func metricSum(t *testing.T, w *wisp, name string, match ...string) float64 {
	t.Helper()
	body, err := w.c.Raw(t.Context(), "GET", "/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	sc := bufio.NewScanner(strings.NewReader(string(body)))
next:
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		for _, m := range match {
			if !strings.Contains(l, m) {
				continue next
			}
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

// TestDockerAdoptedMidStart: a container an earlier run left in the middle
// of its start (the process listens only after 3 s) is adopted and probed:
// a request right after the restart waits for it and is answered, instead
// of getting 502 from a port nobody listens on.
func TestDockerAdoptedMidStart(t *testing.T) {
	setup(t, "midstart")
	dir := t.TempDir()
	w := startWisp(t, dir, nil)
	ctx := t.Context()
	if _, err := w.c.CreateService(ctx, "midstart", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	v, err := w.c.CreateVersion(ctx, "midstart", core.VersionSpec{Image: greeter, Env: []string{"START_DELAY_MS=3000"}})
	if err != nil {
		t.Fatal(err)
	}
	w.stop()

	// As if an earlier run had started it and died: the same installation,
	// the version's image, a process that is not listening yet.
	owner := strings.TrimSpace(readFile(t, dir+"/installation-id"))
	rt, err := docker.Open(ctx, docker.Config{Network: "wisp-test", Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, err := rt.Start(ctx, runtime.InstanceSpec{ID: "midstart-v1-earlier", Service: "midstart", VersionID: v.ID, VersionNumber: 1,
		Image: v.ImageID, ImageRef: v.Image, Port: 8080, Env: []string{"START_DELAY_MS=3000"}}); err != nil {
		t.Fatal(err)
	}
	w2 := startWisp(t, dir, func(c *config.Config) { c.StartTimeout = 20 * time.Second })
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+w2.router+"/", strings.NewReader("x"))
	req.Host = "midstart.localhost"
	resp, err := w2.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a POST right after the restart: %d, want 200 once the adopted instance is ready", resp.StatusCode)
	}
	ins, err := w2.c.Instances(ctx, "midstart")
	if err != nil || len(ins) != 1 || ins[0].ID != "midstart-v1-earlier" {
		t.Fatalf("instances: %+v, %v; want the adopted one only", ins, err)
	}
}

// onlyRunning returns the one running container of service.
func onlyRunning(t *testing.T, service string) string {
	t.Helper()
	var ids []string
	for id, state := range containers(t, service) {
		if state == "running" {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("running containers of %s: %v, want one", service, containers(t, service))
	}
	return ids[0]
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", within, what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // G304: the test's own temporary directory
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
