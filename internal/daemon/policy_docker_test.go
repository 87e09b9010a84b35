package daemon_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

func (w *wisp) routeAll(service string, version int) {
	w.t.Helper()
	if _, err := w.c.SetTraffic(w.t.Context(), service, core.Traffic{Weights: []core.Weight{{Version: version, Percent: 100}}}); err != nil {
		w.t.Fatal(err)
	}
}

// instancesOf returns the states of version n's instances, through the API.
func (w *wisp) instancesOf(service string, n int) []string {
	w.t.Helper()
	list, err := w.c.Instances(w.t.Context(), service)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, in := range list {
		if in.Version == n && in.State != core.InstanceStopping {
			out = append(out, in.State)
		}
	}
	return out
}

// TestDockerKeepPrevious on the real engine: v1 serves, traffic moves to
// v2, and v1's instance is kept paused past idle_timeout; a rollback within
// keep_previous answers its first request without a cold start (no
// Wisp-Cold-Start header) from the same container; after the window v1
// has no instance.
func TestDockerKeepPrevious(t *testing.T) {
	t.Parallel() // mostly waiting: it overlaps the other waiting tests
	setup(t, "keepprev-")
	w := startWisp(t, t.TempDir(), nil)
	idle, never, keep := core.Duration(2*time.Second), core.Duration(0), core.Duration(8*time.Second)
	w.deploy("keepprev-svc", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: &never, KeepPrevious: &keep},
		[]string{"GREETING=one"}, []string{"GREETING=two"})
	if r := w.get("keepprev-svc.localhost", "/"); r.status != 200 || r.body != "Hello, one!\n" {
		t.Fatalf("v1: %+v", r)
	}
	w.routeAll("keepprev-svc", 2)
	moved := time.Now()
	if r := w.get("keepprev-svc.localhost", "/"); r.status != 200 || r.body != "Hello, two!\n" {
		t.Fatalf("v2: %+v", r)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := w.instancesOf("keepprev-svc", 1)
		if len(got) == 1 && got[0] == core.InstancePaused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v1's instances %v, want one paused", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Past idle_timeout (and several reaps), inside the window: still there.
	time.Sleep(time.Until(moved.Add(idle.Std() + time.Second)))
	if got := w.instancesOf("keepprev-svc", 1); len(got) != 1 || got[0] != core.InstancePaused {
		t.Fatalf("past idle_timeout, v1's instances are %v, want the kept one paused", got)
	}
	before := containers(t, "keepprev-svc")
	w.routeAll("keepprev-svc", 1) // the rollback
	r := w.get("keepprev-svc.localhost", "/")
	t.Logf("first request after the rollback: %d %q, Wisp-Cold-Start %q, %s after the switch", r.status, r.body, r.cold, time.Since(moved).Round(time.Millisecond))
	if r.status != 200 || r.body != "Hello, one!\n" || r.cold != "" {
		t.Fatalf("first request after the rollback: %+v, want v1 and no Wisp-Cold-Start header", r)
	}
	// The same container serves: the kept one, now running, and no other
	// started.
	kept := ""
	for id, state := range before {
		if state == "paused" {
			kept = id
		}
	}
	after := containers(t, "keepprev-svc")
	if kept == "" || after[kept] != "running" {
		t.Fatalf("containers after the rollback %v, before %v: want the paused one running", after, before)
	}
	for id, state := range after {
		// v2's spare (created ahead, never started) is removed now that
		// v2 lost its traffic: "removing" is no start.
		if _, known := before[id]; !known && (state == "running" || state == "paused") {
			t.Fatalf("containers after the rollback %v, before %v: a new one started", after, before)
		}
	}
	if time.Since(moved) >= keep.Std() {
		t.Fatalf("the rollback came %s after the switch, outside the window of %s: the test proves nothing", time.Since(moved), keep)
	}

	// Away again: after the window (and idle_timeout), v1 has no instance.
	w.routeAll("keepprev-svc", 2)
	moved = time.Now()
	deadline = moved.Add(keep.Std() + 15*time.Second)
	for len(w.instancesOf("keepprev-svc", 1)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("v1 still has %v after the window", w.instancesOf("keepprev-svc", 1))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if gone := time.Since(moved); gone < keep.Std() {
		t.Fatalf("v1's instance went %s after the switch, before the window of %s was over", gone, keep)
	}
	if c := containers(t, "keepprev-svc"); len(c) != 1 {
		t.Fatalf("containers %v, want v2's alone", c)
	}
}

// TestDockerSingleton on the real engine: a singleton service, 20 rapid
// traffic switches between two versions with requests flowing, while a
// sampler lists the service's containers every few milliseconds: never two
// running or paused at once, and every request is answered 200.
func TestDockerSingleton(t *testing.T) {
	setup(t, "single-")
	w := startWisp(t, t.TempDir(), nil)
	yes := true
	w.deploy("single-svc", core.PolicyPatch{Singleton: &yes}, []string{"GREETING=one"}, []string{"GREETING=two"})
	if r := w.get("single-svc.localhost", "/"); r.status != 200 {
		t.Fatalf("first request: %+v", r)
	}
	stop := make(chan struct{})
	var most, samples atomic.Int64
	var worst map[string]string
	seen := map[string]bool{} // every container the sampler saw
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := dockertest.Containers(t.Context(), "single-svc")
			if err != nil {
				continue
			}
			n := 0
			for id, state := range c {
				seen[id] = true
				if state == "running" || state == "paused" || state == "restarting" {
					n++
				}
			}
			samples.Add(1)
			if int64(n) > most.Load() {
				most.Store(int64(n))
				worst = c
			}
			time.Sleep(3 * time.Millisecond)
		}
	}()
	var ok, bad atomic.Int64
	var bodies sync.Map
	flowing := make(chan struct{})
	for range 3 { // requests flow all along
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-flowing:
					return
				default:
				}
				if r := w.get("single-svc.localhost", "/"); r.status == 200 {
					ok.Add(1)
					bodies.Store(r.body, true)
				} else {
					bad.Add(1)
					t.Errorf("request during the switches: %+v", r)
				}
			}
		}()
	}
	names := map[int]string{1: "Hello, one!\n", 2: "Hello, two!\n"}
	for i := range 20 {
		to := 2 - i%2 // 2, 1, 2, 1, …
		w.routeAll("single-svc", to)
		// The next switch once the new version answers: every switch
		// replaces the instance while requests flow.
		deadline := time.Now().Add(20 * time.Second)
		for w.get("single-svc.localhost", "/").body != names[to] {
			if time.Now().After(deadline) {
				t.Fatalf("switch %d: v%d never answered", i+1, to)
			}
		}
	}
	close(flowing)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d samples of the containers, at most %d running at once, %d containers in all; %d requests answered 200, %d not",
		samples.Load(), most.Load(), len(seen), ok.Load(), bad.Load())
	if most.Load() > 1 {
		t.Fatalf("a singleton had %d containers running at once: %v", most.Load(), worst)
	}
	_, one := bodies.Load("Hello, one!\n")
	_, two := bodies.Load("Hello, two!\n")
	// Each switch replaced the instance: 21 containers at least.
	if samples.Load() < 100 || ok.Load() < 20 || !one || !two || len(seen) < 21 {
		t.Fatalf("too little observed: %d samples, %d requests, both versions answered: %v %v, %d containers", samples.Load(), ok.Load(), one, two, len(seen))
	}
}
