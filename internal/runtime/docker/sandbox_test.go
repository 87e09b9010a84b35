package docker_test

import (
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/docker"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
	"github.com/wisp-run/wisp/internal/runtime/runtimetest"
)

// waitFree waits until rt has n free sandboxes.
func waitFree(t *testing.T, rt *docker.Docker, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		free, _ := rt.Sandboxes()
		if free == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d free sandboxes after 30 s, want %d", free, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sandboxNames(t *testing.T, owner string) map[string]string {
	t.Helper()
	sbs, err := dockertest.Sandboxes(context.WithoutCancel(t.Context()), owner)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, sb := range sbs {
		out[sb.Name] = sb.State
	}
	return out
}

// setupSandboxTest skips without an engine, removes what an earlier run of
// services prefix left, builds the fetcher image and returns it, and
// removes owner's sandboxes at the end.
func setupSandboxTest(t *testing.T, prefix, owner string) string {
	t.Helper()
	dockertest.Skip(t)
	dockertest.CleanupService(t, prefix)
	img := dockertest.MustBuildGoImage(t, "./testdata/fetcher", "wisp-fetcher:sandbox")
	t.Cleanup(func() {
		for _, sb := range mustSandboxes(t, owner) {
			_ = dockertest.KillContainer(context.WithoutCancel(t.Context()), sb.ID, true)
		}
	})
	return img
}

// TestSandboxes: instances start in sandboxes from the pool, which refills;
// an instance in a sandbox has the sandbox's address and cannot reach
// another instance; killing a sandbox takes its instance down; a restart
// adopts the sandboxes in use and removes the others; an empty pool falls
// back to the network; Close leaves no free sandbox and Stop removes an
// instance's sandbox with it.
func TestSandboxes(t *testing.T) {
	const owner = "sandbox-test"
	img := setupSandboxTest(t, "sbx-", owner)
	ctx := t.Context()
	open := func(n int) *docker.Docker {
		t.Helper()
		rt, err := docker.Open(ctx, docker.Config{Network: "wisp-test", Owner: owner, Sandboxes: n})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	spec := func(service string) runtime.InstanceSpec {
		return runtime.InstanceSpec{ID: runtimetest.NewID(service), Service: service, VersionID: 1, VersionNumber: 1,
			Image: img, Port: 8080, Env: []string{"NAME=" + service}}
	}
	rt := open(2)
	if got := rt.NetworkMode(); got != "bridge with sandboxes" {
		t.Fatalf("network mode %q", got)
	}
	waitFree(t, rt, 2)
	free := sandboxNames(t, owner)

	// Two instances of two services, each in a sandbox taken from the pool.
	var a, b runtime.Instance
	for i, svc := range []string{"sbx-a", "sbx-b"} {
		in, err := rt.Start(ctx, spec(svc))
		if err != nil {
			t.Fatal(err)
		}
		c, err := dockertest.InspectContainer(ctx, in.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		sb := c.Labels[docker.LabelSandbox]
		if _, ok := free[sb]; !ok || c.NetworkMode != "container:"+sandboxID(t, owner, sb) {
			t.Fatalf("instance %d: sandbox %q, network mode %q; want one of the free sandboxes %v", i, sb, c.NetworkMode, free)
		}
		if body := runtimetest.WaitServing(t, in.Addr, 10*time.Second); body != "fetcher "+svc+"\n" {
			t.Fatalf("%s answers %q", svc, body)
		}
		if i == 0 {
			a = in
		} else {
			b = in
		}
	}
	waitFree(t, rt, 2) // refilled
	if _, used := rt.Sandboxes(); used != 2 {
		t.Fatalf("%d sandboxes in use, want 2", used)
	}
	// Isolation: a cannot reach b's address (the bridge drops traffic
	// between containers), though the host can.
	body, err := runtimetest.Get(ctx, "http://"+a.Addr+"/fetch?url="+url.QueryEscape("http://"+b.Addr+"/"), 10*time.Second)
	if err == nil && strings.Contains(body, "200 fetcher sbx-b") {
		t.Fatalf("a reached b at %s from its sandbox: %q", b.Addr, body)
	}
	t.Logf("a fetching b directly: %q %v", body, err)

	// Killing a's sandbox by hand takes a down.
	ac, _ := dockertest.InspectContainer(ctx, a.ContainerID)
	if err := dockertest.KillContainer(ctx, ac.Labels[docker.LabelSandbox], false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		in, err := rt.Inspect(ctx, a.ID)
		if err == nil && in.State == runtime.StateExited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a is %v %v 15 s after its sandbox was killed, want exited", in.State, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := rt.Stop(ctx, a.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := sandboxNames(t, owner)[ac.Labels[docker.LabelSandbox]]; ok {
		t.Fatalf("a's sandbox %s outlived a's Stop", ac.Labels[docker.LabelSandbox])
	}

	// A restart: b is kept with its sandbox; the free sandboxes go at Close.
	bc, _ := dockertest.InspectContainer(ctx, b.ContainerID)
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	left := sandboxNames(t, owner)
	if len(left) != 1 || left[bc.Labels[docker.LabelSandbox]] != "running" {
		t.Fatalf("after Close: sandboxes %v, want only b's %s running", left, bc.Labels[docker.LabelSandbox])
	}
	// While Wisp is down, an instance in a sandbox is removed by hand:
	// its sandbox is an orphan.
	rt = open(2)
	orphan, err := rt.Start(ctx, spec("sbx-c"))
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := dockertest.InspectContainer(ctx, orphan.ContainerID)
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dockertest.KillContainer(ctx, orphan.ContainerID, true); err != nil {
		t.Fatal(err)
	}
	rt = open(1)
	defer rt.Close()
	left = sandboxNames(t, owner)
	if _, ok := left[cc.Labels[docker.LabelSandbox]]; ok {
		t.Fatalf("the orphaned sandbox %s is still there after the restart: %v", cc.Labels[docker.LabelSandbox], left)
	}
	if _, ok := left[bc.Labels[docker.LabelSandbox]]; !ok {
		t.Fatalf("b's sandbox was removed at the restart: %v", left)
	}
	list, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var adopted runtime.Instance
	for _, in := range list {
		if in.ID == b.ID {
			adopted = in
		}
	}
	if adopted.Addr != b.Addr || adopted.State != runtime.StateRunning {
		t.Fatalf("b after the restart: %+v, want running at %s", adopted, b.Addr)
	}
	if body := runtimetest.WaitServing(t, adopted.Addr, 5*time.Second); body != "fetcher sbx-b\n" {
		t.Fatalf("adopted b answers %q", body)
	}

	// An empty pool (one sandbox, three starts at once): the others start on
	// the network directly, and all serve.
	waitFree(t, rt, 1)
	var wg sync.WaitGroup
	ins := make([]runtime.Instance, 3)
	errs := make([]error, 3)
	for i := range ins {
		wg.Go(func() { ins[i], errs[i] = rt.Start(ctx, spec("sbx-d")) })
	}
	wg.Wait()
	direct := 0
	for i, in := range ins {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		c, _ := dockertest.InspectContainer(ctx, in.ContainerID)
		if c.Labels[docker.LabelSandbox] == "" {
			direct++
			if c.NetworkMode != "wisp-test" {
				t.Errorf("a fallback start has network mode %q", c.NetworkMode)
			}
		}
		if host, _, _ := net.SplitHostPort(in.Addr); host == "" {
			t.Fatalf("instance %d has no address: %+v", i, in)
		}
		if body := runtimetest.WaitServing(t, in.Addr, 10*time.Second); body != "fetcher sbx-d\n" {
			t.Fatalf("instance %d answers %q", i, body)
		}
	}
	if direct < 2 {
		t.Fatalf("%d of 3 starts fell back to the network, want at least 2 with one sandbox", direct)
	}
	// Stopping every instance and closing leaves no sandbox.
	for _, in := range append(ins, b) {
		if err := rt.Stop(ctx, in.ID, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if left := sandboxNames(t, owner); len(left) != 0 {
		t.Fatalf("sandboxes left after every Stop and Close: %v", left)
	}
}

func sandboxID(t *testing.T, owner, name string) string {
	for _, sb := range mustSandboxes(t, owner) {
		if sb.Name == name {
			return sb.ID
		}
	}
	return ""
}

func mustSandboxes(t *testing.T, owner string) []dockertest.Sandbox {
	sbs, err := dockertest.Sandboxes(context.WithoutCancel(t.Context()), owner)
	if err != nil {
		t.Log(err)
	}
	return sbs
}

// TestSandboxKilledBeforeStart: a sandbox that dies between the pool's take
// and the instance's start (killed by hand, here by a hook at that very
// moment) does not fail the start: the instance starts on the network
// directly and serves.
func TestSandboxKilledBeforeStart(t *testing.T) {
	const owner = "sandbox-kill-test"
	img := setupSandboxTest(t, "sbk-", owner)
	ctx := t.Context()
	rt, err := docker.Open(ctx, docker.Config{Network: "wisp-test", Owner: owner, Sandboxes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	var killed string
	docker.SetBeforeStart(rt, func(sb string) {
		if sb == "" {
			return // the retry, on the network
		}
		killed = sb
		if err := dockertest.KillContainer(ctx, sb, false); err != nil {
			t.Error(err)
		}
	})
	for i := range 3 {
		waitFree(t, rt, 1)
		killed = ""
		spec := runtime.InstanceSpec{ID: runtimetest.NewID("sbk-a"), Service: "sbk-a", VersionID: 1, VersionNumber: 1,
			Image: img, Port: 8080, Env: []string{"NAME=sbk-a"}}
		in, err := rt.Start(ctx, spec)
		if err != nil {
			t.Fatalf("start %d, right after its sandbox %s was killed: %v", i, killed, err)
		}
		c, err := dockertest.InspectContainer(ctx, in.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		if killed == "" {
			t.Fatalf("start %d took no sandbox from a full pool", i)
		}
		if sb := c.Labels[docker.LabelSandbox]; sb != "" || c.NetworkMode != "wisp-test" {
			t.Fatalf("start %d: sandbox %q, network mode %q; want the network directly after its sandbox %s died", i, sb, c.NetworkMode, killed)
		}
		if body := runtimetest.WaitServing(t, in.Addr, 10*time.Second); body != "fetcher sbk-a\n" {
			t.Fatalf("start %d answers %q", i, body)
		}
		t.Logf("start %d after its sandbox was killed: network mode %s", i, c.NetworkMode)
		if err := rt.Stop(ctx, in.ID, time.Second); err != nil {
			t.Fatal(err)
		}
	}
}
