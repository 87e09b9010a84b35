package daemon_test

// Integration tests of the whole daemon on the real Docker Engine, with
// images built locally (testdata/greeter, FROM scratch). They skip when no
// engine answers.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

const greeter = "wisp-greeter:e2e"

type wisp struct {
	t      *testing.T
	c      *apiclient.Client
	router string
	stop   func()
	http   *http.Client
}

// startWisp runs the daemon on the real engine with a fast reaper.
func startWisp(t *testing.T, dataDir string, edit func(*config.Config)) *wisp {
	t.Helper()
	d, stop := runDaemon(t, dataDir, func(cfg *config.Config) {
		cfg.DockerNetwork = "wisp-test"
		cfg.ReapInterval = 200 * time.Millisecond
		cfg.StopGrace = 2 * time.Second
		if edit != nil {
			edit(cfg)
		}
	}, daemon.Options{})
	return &wisp{t: t, c: apiclient.New(d.AdminAddr().String(), d.Token()), router: d.RouterAddr().String(), stop: stop,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: 60 * time.Second}}
}

type reply struct {
	status  int
	body    string
	version string
	cold    string
}

func (w *wisp) get(host, path string) reply {
	w.t.Helper()
	req, err := http.NewRequestWithContext(w.t.Context(), "GET", "http://"+w.router+path, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Host = host
	resp, err := w.http.Do(req)
	if err != nil {
		w.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: string(b), version: resp.Header.Get("Wisp-Version"), cold: resp.Header.Get("Wisp-Cold-Start")}
}

// deploy creates service name with one version per env, and traffic weights.
func (w *wisp) deploy(name string, policy core.PolicyPatch, envs ...[]string) {
	w.t.Helper()
	ctx := w.t.Context()
	if _, err := w.c.CreateService(ctx, name, policy); err != nil {
		w.t.Fatal(err)
	}
	for _, env := range envs {
		if _, err := w.c.CreateVersion(ctx, name, core.VersionSpec{Image: greeter, Env: env}); err != nil {
			w.t.Fatal(err)
		}
	}
}

// containers returns the started containers of service (spares, created
// but never started, are left out; allContainers has them).
func containers(t *testing.T, service string) map[string]string {
	t.Helper()
	c := allContainers(t, service)
	for id, state := range c {
		if state == "created" {
			delete(c, id)
		}
	}
	return c
}

func allContainers(t *testing.T, service string) map[string]string {
	t.Helper()
	c, err := dockertest.Containers(t.Context(), service)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func setup(t *testing.T, prefix string) {
	t.Helper()
	dockertest.Skip(t)
	dockertest.CleanupService(t, prefix)
	dockertest.MustBuildGoImage(t, "./testdata/greeter", greeter)
}

// TestDockerSplit: three versions at 10/30/60 and 3,000 requests: each share
// within ±3 points; a 0% version gets none.
func TestDockerSplit(t *testing.T) {
	setup(t, "split")
	w := startWisp(t, t.TempDir(), nil)
	w.deploy("split", core.PolicyPatch{}, []string{"GREETING=Go"}, []string{"GREETING=Docker"}, []string{"GREETING=sqlite"}, []string{"GREETING=unused"})
	if _, err := w.c.SetTraffic(t.Context(), "split", core.Traffic{Weights: []core.Weight{
		{Version: 1, Percent: 10}, {Version: 2, Percent: 30}, {Version: 3, Percent: 60}, {Version: 4, Percent: 0}}}); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r := w.get("split.localhost", "/")
				mu.Lock()
				counts[fmt.Sprintf("%d %s", r.status, strings.TrimSpace(r.body))]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("counts: %v", counts)
	for body, want := range map[string]float64{"200 Hello, Go!": 10, "200 Hello, Docker!": 30, "200 Hello, sqlite!": 60} {
		got := 100 * float64(counts[body]) / n
		if got < want-3 || got > want+3 {
			t.Errorf("%q: %.1f%%, want %.0f±3", body, got, want)
		}
	}
	if counts["200 Hello, unused!"] != 0 {
		t.Errorf("the 0%% version served %d requests", counts["200 Hello, unused!"])
	}
	if len(containers(t, "split")) != 3 {
		t.Errorf("containers: %v, want one per version with traffic", containers(t, "split"))
	}
}

// TestDockerStorm: 100 concurrent requests to a scaled-to-zero service all
// answer 200, and exactly one instance is started for them, in a network
// sandbox from the pool (issue 14). With max_instances 1 the property is
// coalescing alone; with the default policy the autoscaler may add instances
// after the first (reason autoscaler), but only one start is for the first
// request.
func TestDockerStorm(t *testing.T) {
	setup(t, "storm")
	w := startWisp(t, t.TempDir(), nil)
	for _, tc := range []struct {
		name string
		max  *int
	}{{"storm-one", new(1)}, {"storm-scale", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			// A full pool, as in steady operation (it fills in the
			// background after the daemon starts and after each take).
			for deadline := time.Now().Add(30 * time.Second); metricSum(t, w, "wisp_sandboxes_free") < 2; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the sandbox pool did not fill to 2 within 30 s")
				}
			}
			takes := metricSum(t, w, "wisp_sandbox_takes_total")
			w.deploy(tc.name, core.PolicyPatch{MaxInstances: tc.max}, []string{"GREETING=storm"})
			storm(t, w, tc.name)
			if got := metricSum(t, w, "wisp_sandbox_takes_total"); got <= takes {
				t.Errorf("wisp_sandbox_takes_total went from %v to %v over the deploy and the storm, want it to grow", takes, got)
			}
			if got := metricSum(t, w, "wisp_sandboxes_target"); got != 2 {
				t.Errorf("wisp_sandboxes_target = %v, want the default 2", got)
			}
		})
	}
}

func storm(t *testing.T, w *wisp, service string) {
	var wg sync.WaitGroup
	replies := make(chan reply, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies <- w.get(service+".localhost", "/")
		}()
	}
	wg.Wait()
	close(replies)
	cold := 0
	for r := range replies {
		if r.status != 200 || r.body != "Hello, storm!\n" {
			t.Fatalf("storm reply: %+v", r)
		}
		if r.cold != "" {
			cold++
		}
	}
	t.Logf("%d of 100 requests waited for the cold start", cold)
	if cold == 0 {
		t.Fatal("no request reports a cold start (Wisp-Cold-Start), but the service was at zero")
	}
	// The platform events say why each instance started. The autoscaler's
	// starts go on after the storm, and a container runs a moment before
	// Wisp hears back from the engine and emits its instance.starting: the
	// events and the containers are read again until they agree.
	var reasons map[string]int
	var firstInstance string
	var events []string // all of them, printed when the test fails
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the platform events:\n%s", strings.Join(events, "\n"))
		}
	})
	var started map[string]string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		reasons, events = map[string]int{}, nil
		err := w.c.Logs(t.Context(), service, core.LogQuery{Kinds: []core.LogKind{core.LogPlatform}}, func(e core.LogEntry) error {
			events = append(events, fmt.Sprintf("%s %s %s %s %v", e.Time.Format("15:04:05.000"), e.Event, e.Instance, e.Message, e.Fields))
			if e.Event == core.EventInstanceStarting {
				reasons[e.Fields["reason"]]++
				if e.Fields["reason"] == core.StartFirstRequest {
					firstInstance = e.Instance
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		started = containers(t, service)
		// Counts that agree are not enough: the autoscaler's start can be
		// heard before the first request's (seen in CI under load: one
		// container and one autoscaler event, and the first request's
		// event came later).
		if len(started) >= 1 && len(started) == sumCounts(reasons) && reasons[core.StartFirstRequest] >= 1 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("starts by reason: %v", reasons)
	if reasons[core.StartFirstRequest] != 1 {
		t.Fatalf("%d instances started for the first request, want exactly 1 (starts by reason: %v)", reasons[core.StartFirstRequest], reasons)
	}
	if len(started) < 1 || len(started) != sumCounts(reasons) {
		t.Fatalf("%d containers started, the platform events name %d starts (%v): %v", len(started), sumCounts(reasons), reasons, started)
	}
	// The first instance runs in a sandbox from the pool, not on the network
	// directly: its container joins the sandbox's namespace.
	for id := range started {
		c, err := dockertest.InspectContainer(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Labels["wisp.instance"] == firstInstance || len(started) == 1 {
			if sb := c.Labels["wisp.sandbox"]; sb == "" || !strings.HasPrefix(c.NetworkMode, "container:") {
				t.Fatalf("the first instance's container: sandbox label %q, network mode %q; want it in a sandbox", sb, c.NetworkMode)
			}
		}
	}
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestDockerSlowStartIsolation: a service whose start takes 3s never delays
// requests to another service.
func TestDockerSlowStartIsolation(t *testing.T) {
	setup(t, "iso-")
	w := startWisp(t, t.TempDir(), nil)
	w.deploy("iso-slow", core.PolicyPatch{}, []string{"START_DELAY_MS=3000"})
	w.deploy("iso-fast", core.PolicyPatch{}, nil)
	if r := w.get("iso-fast.localhost", "/"); r.status != 200 {
		t.Fatalf("warm-up: %+v", r)
	}
	slowDone := make(chan reply, 1)
	go func() { slowDone <- w.get("iso-slow.localhost", "/") }()
	time.Sleep(300 * time.Millisecond)
	var worst time.Duration
	for range 20 {
		start := time.Now()
		if r := w.get("iso-fast.localhost", "/"); r.status != 200 {
			t.Fatalf("fast service: %+v", r)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(50 * time.Millisecond)
	}
	if worst > 300*time.Millisecond {
		t.Fatalf("a request to the fast service took %s while the slow one started", worst)
	}
	select {
	case r := <-slowDone:
		t.Fatalf("the slow service answered before its 3s start: %+v", r)
	default:
	}
	if r := <-slowDone; r.status != 200 || r.cold == "" {
		t.Fatalf("slow service: %+v", r)
	}
}

// TestDockerScaleToZero: with idle timeout 2s the container is gone within 2s
// plus one reaper period (plus the stop itself) after the last request; the
// next request starts a new one. A paused instance is woken by a request.
func TestDockerScaleToZero(t *testing.T) {
	setup(t, "zero-")
	w := startWisp(t, t.TempDir(), func(c *config.Config) { c.ReapInterval = time.Second })
	idle, never, pause := core.Duration(2*time.Second), core.Duration(0), core.Duration(time.Second)
	w.deploy("zero-idle", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: &never}, nil)
	if r := w.get("zero-idle.localhost", "/"); r.status != 200 {
		t.Fatal(r)
	}
	last := time.Now()
	first := containers(t, "zero-idle")
	if len(first) != 1 {
		t.Fatalf("containers: %v", first)
	}
	for len(containers(t, "zero-idle")) > 0 {
		if time.Since(last) > 10*time.Second {
			t.Fatal("the idle container was not removed within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	gone := time.Since(last)
	t.Logf("idle container removed %s after the last request (idle timeout 2s, reaper period 1s)", gone.Round(time.Millisecond))
	// 2s idle + 1s reaper period + up to 1s for docker to stop and remove
	// the container on a loaded machine.
	if gone < 2*time.Second || gone > 4*time.Second {
		t.Fatalf("removed after %s, want between 2s and 2s + 1s reaper period + 1s to stop", gone)
	}
	// What is left is the spare: created after the first start, never started.
	spare := allContainers(t, "zero-idle")
	if len(spare) != 1 || onlyState(spare) != "created" {
		t.Fatalf("after scale to zero: %v, want one created spare", spare)
	}
	if r := w.get("zero-idle.localhost", "/"); r.status != 200 || r.cold == "" {
		t.Fatalf("after scale to zero: %+v", r)
	}
	now := containers(t, "zero-idle")
	for id := range now {
		if _, old := first[id]; old {
			t.Fatal("the old container came back")
		}
		if _, ok := spare[id]; !ok {
			t.Fatalf("the cold start after scale to zero did not start the spare: running %v, spare %v", now, spare)
		}
	}

	// Pause after 1s, remove after 30s.
	long := core.Duration(30 * time.Second)
	w.deploy("zero-pause", core.PolicyPatch{IdleTimeout: &long, PauseAfter: &pause}, []string{"GREETING=paused"})
	if r := w.get("zero-pause.localhost", "/"); r.status != 200 {
		t.Fatal(r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := containers(t, "zero-pause")
		if len(c) == 1 && onlyState(c) == "paused" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not paused within 5s: %v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := containers(t, "zero-pause")
	start := time.Now()
	r := w.get("zero-pause.localhost", "/")
	t.Logf("wake from pause answered in %s (cold-start header %sms)", time.Since(start).Round(100*time.Microsecond), r.cold)
	if r.status != 200 || r.body != "Hello, paused!\n" {
		t.Fatalf("woken: %+v", r)
	}
	after := containers(t, "zero-pause")
	if len(after) != 1 || onlyState(after) != "running" {
		t.Fatalf("after wake: %v", after)
	}
	for id := range after {
		if _, same := before[id]; !same {
			t.Fatal("a request to a paused instance started a new container instead of waking it")
		}
	}
}

func onlyState(c map[string]string) string {
	for _, s := range c {
		return s
	}
	return ""
}

// TestDockerRestartAdopts: instances that outlive a restart are adopted (no
// duplicates), and a normal shutdown leaves no orphans.
func TestDockerRestartAdopts(t *testing.T) {
	setup(t, "adopt")
	dir := t.TempDir()
	w := startWisp(t, dir, func(c *config.Config) { c.KeepInstances = true })
	w.deploy("adopt", core.PolicyPatch{}, []string{"GREETING=adopted"})
	if r := w.get("adopt.localhost", "/"); r.status != 200 {
		t.Fatal(r)
	}
	w.stop()
	kept := containers(t, "adopt")
	if len(kept) != 1 || onlyState(kept) != "running" {
		t.Fatalf("--keep-instances: %v", kept)
	}
	w2 := startWisp(t, dir, nil)
	r := w2.get("adopt.localhost", "/")
	if r.status != 200 || r.body != "Hello, adopted!\n" || r.cold != "" {
		t.Fatalf("after restart: %+v (an adopted instance answers without a cold start)", r)
	}
	if got := containers(t, "adopt"); len(got) != 1 {
		t.Fatalf("after restart: %v, want the one adopted container", got)
	}
	ins, err := w2.c.Instances(t.Context(), "adopt")
	if err != nil || len(ins) != 1 {
		t.Fatalf("instances: %+v %v", ins, err)
	}
	w2.stop()
	if got := allContainers(t, "adopt"); len(got) != 0 {
		t.Fatalf("orphans (spares included) after shutdown: %v", got)
	}
}

// TestDockerKilledContainerReplaced: a container killed or removed by hand is
// replaced on the next request.
func TestDockerKilledContainerReplaced(t *testing.T) {
	setup(t, "killed")
	w := startWisp(t, t.TempDir(), nil)
	w.deploy("killed", core.PolicyPatch{}, nil)
	for _, remove := range []bool{false, true} {
		if r := w.get("killed.localhost", "/"); r.status != 200 {
			t.Fatal(r)
		}
		before := containers(t, "killed")
		for id := range before {
			if err := dockertest.KillContainer(t.Context(), id, remove); err != nil {
				t.Fatal(err)
			}
		}
		r := w.get("killed.localhost", "/")
		if r.status != 200 || r.body != "Hello, World!\n" {
			t.Fatalf("remove=%v: next request: %+v", remove, r)
		}
		running := 0
		for id, state := range containers(t, "killed") {
			if _, old := before[id]; !old && state == "running" {
				running++
			}
		}
		if running != 1 {
			t.Fatalf("remove=%v: containers %v, want one new running container", remove, containers(t, "killed"))
		}
	}
}

// TestDockerBadInputs covers what a user can get wrong.
func TestDockerBadInputs(t *testing.T) {
	setup(t, "bad-")
	doomed := dockertest.MustBuildGoImage(t, "./testdata/greeter", "wisp-doomed:e2e")
	w := startWisp(t, t.TempDir(), func(c *config.Config) { c.StartTimeout = 3 * time.Second })
	ctx := t.Context()

	t.Run("missing image", func(t *testing.T) {
		if _, err := w.c.CreateService(ctx, "bad-image", core.PolicyPatch{}); err != nil {
			t.Fatal(err)
		}
		_, err := w.c.CreateVersion(ctx, "bad-image", core.VersionSpec{Image: "wisp-no-such-image:1"})
		var apiErr *apiclient.Error
		if !asAPIError(err, &apiErr) || apiErr.Status != 422 || !strings.Contains(apiErr.Message, `"wisp-no-such-image:1" is not present`) {
			t.Fatalf("got %v, want 422 naming the image", err)
		}
		if v, _ := w.c.ListVersions(ctx, "bad-image"); len(v) != 0 {
			t.Fatalf("a refused version was stored: %+v", v)
		}
	})
	t.Run("never opens its port", func(t *testing.T) {
		w.deploy("bad-silent", core.PolicyPatch{}, []string{"NEVER_LISTEN=1"})
		start := time.Now()
		r := w.get("bad-silent.localhost", "/")
		if r.status != 503 || !strings.Contains(r.body, "not ready within the start timeout of 3s") || !strings.Contains(r.body, "never listening") {
			t.Fatalf("got %+v", r)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s with a 3s start timeout", d)
		}
		waitGone(t, "bad-silent")
	})
	t.Run("exits at once", func(t *testing.T) {
		w.deploy("bad-exit", core.PolicyPatch{}, []string{"EXIT_CODE=3"})
		start := time.Now()
		r := w.get("bad-exit.localhost", "/")
		if r.status != 503 || !strings.Contains(r.body, "exited with code 3") || !strings.Contains(r.body, "exiting at once") {
			t.Fatalf("got %+v", r)
		}
		// Reported as an exit, and before the start timeout would have
		// fired: the activator watched the container die rather than wait.
		// (Not a tighter bound: while other packages build images the
		// engine here takes over 2 s to start and reap a container.)
		if d := time.Since(start); d >= 3*time.Second {
			t.Fatalf("a crash at start took %s to report, no sooner than the start timeout of 3s", d)
		}
		t.Logf("a crash at start was reported in %s", time.Since(start).Round(time.Millisecond))
		waitGone(t, "bad-exit")
	})
	t.Run("image deleted after the version was created", func(t *testing.T) {
		if _, err := w.c.CreateService(ctx, "bad-deleted", core.PolicyPatch{}); err != nil {
			t.Fatal(err)
		}
		v, err := w.c.CreateVersion(ctx, "bad-deleted", core.VersionSpec{Image: "wisp-doomed:e2e"})
		if err != nil {
			t.Fatal(err)
		}
		if v.ImageID != doomed {
			t.Fatalf("version pinned %q, want %q", v.ImageID, doomed)
		}
		if err := dockertest.RemoveImage(ctx, "wisp-doomed:e2e"); err != nil {
			t.Fatal(err)
		}
		r := w.get("bad-deleted.localhost", "/")
		if r.status != 503 || !strings.Contains(r.body, "is no longer on this machine") {
			t.Fatalf("got %+v", r)
		}
		waitGone(t, "bad-deleted")
	})
}

func asAPIError(err error, target **apiclient.Error) bool {
	e, ok := err.(*apiclient.Error) //nolint:errorlint // the client returns it unwrapped
	if ok {
		*target = e
	}
	return ok
}

func waitGone(t *testing.T, service string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(containers(t, service)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the failed container of %s was not removed: %v", service, containers(t, service))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDockerImagePinning: re-tagging an image never changes a version.
func TestDockerImagePinning(t *testing.T) {
	setup(t, "pin")
	other := dockertest.MustBuildGoImage(t, "./testdata/greeter", "wisp-other:e2e")
	if err := dockertest.Tag(t.Context(), greeter, "wisp-moving:e2e"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dockertest.RemoveImage(context.WithoutCancel(t.Context()), "wisp-moving:e2e") })
	w := startWisp(t, t.TempDir(), nil)
	if _, err := w.c.CreateService(t.Context(), "pin", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	v, err := w.c.CreateVersion(t.Context(), "pin", core.VersionSpec{Image: "wisp-moving:e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if err := dockertest.Tag(t.Context(), other, "wisp-moving:e2e"); err != nil {
		t.Fatal(err)
	}
	got, _ := w.c.GetVersion(t.Context(), "pin", v.Number)
	if got.ImageID == other || got.ImageID != v.ImageID || v.ImageID == "" {
		t.Fatalf("pinned %q, after re-tag %q (other image %q)", v.ImageID, got.ImageID, other)
	}
	if r := w.get("pin.localhost", "/"); r.status != 200 {
		t.Fatalf("%+v", r)
	}
}

// TestDockerNetworkModes serves a request through the router in every mode.
func TestDockerNetworkModes(t *testing.T) {
	setup(t, "net-")
	for _, m := range []struct {
		name string
		edit func(*config.Config)
	}{
		{"bridge", nil},
		{"publish", func(c *config.Config) { c.DockerPublish = true }},
		{"host", func(c *config.Config) { c.DockerNetwork = "host" }},
	} {
		t.Run(m.name, func(t *testing.T) {
			w := startWisp(t, t.TempDir(), m.edit)
			svc := "net-" + m.name
			w.deploy(svc, core.PolicyPatch{}, []string{"GREETING=" + m.name})
			r := w.get(svc+".localhost", "/")
			if r.status != 200 || r.body != "Hello, "+m.name+"!\n" {
				t.Fatalf("%+v", r)
			}
			ins, _ := w.c.Instances(t.Context(), svc)
			if len(ins) != 1 || ins[0].Address == "" {
				t.Fatalf("instances: %+v", ins)
			}
			if m.name != "bridge" && !strings.HasPrefix(ins[0].Address, "127.0.0.1:") {
				t.Fatalf("%s mode address %s, want 127.0.0.1", m.name, ins[0].Address)
			}
			w.stop()
			if c := allContainers(t, svc); len(c) != 0 {
				t.Fatalf("left behind: %v", c)
			}
		})
	}
}

// TestDockerTwoInstallationsShareAnEngine: a second Wisp (another data
// directory) neither adopts nor removes the first one's instances.
func TestDockerTwoInstallationsShareAnEngine(t *testing.T) {
	setup(t, "share")
	a := startWisp(t, t.TempDir(), nil)
	a.deploy("share", core.PolicyPatch{}, []string{"GREETING=mine"})
	if r := a.get("share.localhost", "/"); r.status != 200 {
		t.Fatal(r)
	}
	before := containers(t, "share")
	b := startWisp(t, t.TempDir(), nil)
	if ins, err := b.c.Instances(t.Context(), ""); err != nil || len(ins) != 0 {
		t.Fatalf("the second installation adopted %+v (%v)", ins, err)
	}
	b.stop()
	after := containers(t, "share")
	if len(after) != 1 || onlyState(after) != "running" || fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("the second installation touched the first one's container: before %v, after %v", before, after)
	}
	if r := a.get("share.localhost", "/"); r.status != 200 || r.cold != "" {
		t.Fatalf("the first installation lost its instance: %+v", r)
	}
}

// TestDockerAutoscale: 200 concurrent requests of 100 ms each, to a version
// with max_concurrency 10 and max instances 20: every request answers 200,
// no instance ever has more than 10 in flight, the version reaches at least
// 10 instances within a few seconds, and scales back down after the load.
func TestDockerAutoscale(t *testing.T) {
	setup(t, "scale")
	dockertest.Exclusive(t)
	// How fast can the engine itself start the 9 containers beyond the
	// first, as many at once as Wisp starts them? Wisp cannot be faster;
	// the bound below allows for the first cold start, the autoscaler's
	// one-second tick and the load this test puts on the same two cores.
	parallel := config.Default().ParallelStarts
	engine, err := dockertest.StartBaseline(t.Context(), greeter, "wisp-test", 8080, 9, parallel)
	if err != nil {
		t.Fatal(err)
	}
	bound := 2*engine + 3*time.Second
	t.Logf("the bare engine starts 9 containers, %d at a time, in %s: Wisp must reach 10 instances within %s",
		parallel, engine.Round(time.Millisecond), bound.Round(time.Millisecond))
	w := startWisp(t, t.TempDir(), func(c *config.Config) {
		c.StableWindow, c.PanicWindow, c.ScaleDownDelay = 6*time.Second, 2*time.Second, time.Second
	})
	maxI, idle := 20, core.Duration(60*time.Second)
	if _, err := w.c.CreateService(t.Context(), "scale", core.PolicyPatch{MaxInstances: &maxI, IdleTimeout: &idle}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.CreateVersion(t.Context(), "scale", core.VersionSpec{Image: greeter, MaxConcurrency: 10}); err != nil {
		t.Fatal(err)
	}
	// The load runs for 8s, and on until 2s after the 10th instance is
	// ready, but no longer than the bound allows.
	const workers = 200
	start := time.Now()
	stop := start.Add(bound + time.Second)
	var stopped atomic.Bool
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() {
				r := w.get("scale.localhost", "/sleep?ms=100")
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
			}
		}()
	}
	// Watch the instance count while the load runs.
	reached := time.Duration(0)
	peakInstances := 0
	addrs := map[string]string{} // address -> the instance seen there
	for time.Now().Before(stop) {
		ins, err := w.c.Instances(t.Context(), "scale")
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		for _, in := range ins {
			if in.State == core.InstanceReady {
				ready++
				addrs[in.Address] = in.ID
			}
		}
		peakInstances = max(peakInstances, ready)
		if ready >= 10 && reached == 0 {
			reached = time.Since(start)
		}
		if reached > 0 && time.Since(start) > max(8*time.Second, reached+2*time.Second) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	stopped.Store(true)
	stop = time.Now()
	// Each instance reports the most requests it ever served at once. An
	// address whose instance was removed may belong to a new instance by
	// now (the network reuses addresses), which has served nothing: only
	// instances still at their address are asked.
	now := map[string]string{}
	if ins, err := w.c.Instances(t.Context(), "scale"); err == nil {
		for _, in := range ins {
			now[in.Address] = in.ID
		}
	}
	for addr, id := range addrs {
		if now[addr] != id {
			continue
		}
		body, err := getDirect(t, "http://"+addr+"/max")
		if err != nil {
			continue // scaled down meanwhile
		}
		var n int
		if _, err := fmt.Sscan(body, &n); err != nil || n > 10 || n < 1 {
			t.Errorf("instance %s served %q requests at once; the limit is 10", addr, body)
		}
	}
	wg.Wait()
	total := 0
	for _, n := range statuses {
		total += n
	}
	t.Logf("%d requests: %v; peak %d ready instances; 10 ready after %s", total, statuses, peakInstances, reached.Round(time.Millisecond))
	if statuses[200] != total || total < 2*workers {
		t.Fatalf("statuses %v: every request must answer 200", statuses)
	}
	if reached == 0 || reached > bound {
		t.Fatalf("10 ready instances after %s (peak %d), want within %s (twice the bare engine's %s, plus 3s)",
			reached.Round(time.Millisecond), peakInstances, bound.Round(time.Millisecond), engine.Round(time.Millisecond))
	}
	// After the load, the autoscaler scales down (at most half per step).
	deadline := time.Now().Add(30 * time.Second)
	for {
		ins, _ := w.c.Instances(t.Context(), "scale")
		if len(ins) <= 2 {
			t.Logf("scaled down to %d instances %s after the load", len(ins), time.Since(stop).Round(time.Second))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d instances 30s after the load stopped", len(ins))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func getDirect(t *testing.T, url string) (string, error) {
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		return "", err
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
