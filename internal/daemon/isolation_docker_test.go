package daemon_test

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

const fetcher = "wisp-fetcher:e2e"

// TestDockerNetworkIsolation is issue 10's fault 6: on Wisp's bridge
// network a container of one service must not reach another service's
// container directly (bypassing the router, its tags and max_concurrency),
// while the router still reaches both, and a service calls another through
// the router at WISP_ROUTER_URL with the other's Host header.
func TestDockerNetworkIsolation(t *testing.T) {
	dockertest.Skip(t)
	dockertest.CleanupService(t, "neigh-")
	dockertest.MustBuildGoImage(t, "./testdata/fetcher", fetcher)
	const network = "wisp-isolation-test"
	ctx := t.Context()
	// A network of its own, made afresh, so the test sees what this
	// version of Wisp creates; its gateway is the host's address on it,
	// where the router listens so that containers can reach it.
	if err := dockertest.RemoveNetwork(ctx, network); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dockertest.RemoveNetwork(context.WithoutCancel(ctx), network) })
	if err := dockertest.CreateNetwork(ctx, network, nil, map[string]string{"wisp.managed": "true"}); err != nil {
		t.Fatal(err)
	}
	n, err := dockertest.InspectNetwork(ctx, network)
	if err != nil || n.Gateway == "" {
		t.Fatalf("network %s: %+v %v", network, n, err)
	}
	w := startWisp(t, t.TempDir(), func(c *config.Config) {
		c.DockerNetwork = network
		c.Addr = net.JoinHostPort(n.Gateway, "0")
	})
	_, port, _ := net.SplitHostPort(w.router)
	for _, name := range []string{"neigh-a", "neigh-b"} {
		if _, err := w.c.CreateService(ctx, name, core.PolicyPatch{}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.c.CreateVersion(ctx, name, core.VersionSpec{Image: fetcher, Env: []string{"NAME=" + name}}); err != nil {
			t.Fatal(err)
		}
		if r := w.get(name+".localhost", "/"); r.status != 200 || r.body != "fetcher "+name+"\n" {
			t.Fatalf("%s through the router: %+v", name, r)
		}
	}
	opened, err := dockertest.InspectNetwork(ctx, network)
	if err != nil {
		t.Fatal(err)
	}
	if opened.Options["com.docker.network.bridge.enable_icc"] != "false" {
		t.Errorf("network %s options %v: want enable_icc=false", network, opened.Options)
	}
	ins, err := w.c.Instances(ctx, "neigh-b")
	if err != nil || len(ins) != 1 {
		t.Fatalf("instances of neigh-b: %v %v", ins, err)
	}
	// From a's container: b's container address is not reachable.
	r := w.get("neigh-a.localhost", "/fetch?url="+url.QueryEscape("http://"+ins[0].Address+"/"))
	if r.status == 200 {
		t.Errorf("neigh-a reached neigh-b's container at %s directly: %q", ins[0].Address, r.body)
	}
	// The router's address as seen from inside is in the environment...
	r = w.get("neigh-a.localhost", "/env?name=WISP_ROUTER_URL")
	if want := "http://" + net.JoinHostPort(n.Gateway, port); r.body != want {
		t.Fatalf("WISP_ROUTER_URL is %q, want %q", r.body, want)
	}
	// ...and through it a reaches b, by b's Host header.
	start := time.Now()
	r = w.get("neigh-a.localhost", "/fetch?host=neigh-b.localhost&url="+url.QueryEscape(r.body+"/"))
	if r.status != 200 || !strings.HasPrefix(r.body, "200 fetcher neigh-b") {
		t.Fatalf("neigh-a through the router to neigh-b: %+v (after %s)", r, time.Since(start))
	}
}
