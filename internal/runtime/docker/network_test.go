package docker_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/wisp-run/wisp/internal/runtime/docker"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

const iccOption = "com.docker.network.bridge.enable_icc"

// syncBuffer is a log sink for a test to read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNetworkMigration: a network an older Wisp created without isolation
// is recreated with it (same subnet) when nothing is attached; with a
// container attached it is left alone and the log says what to do; a
// network Wisp did not create is never changed.
func TestNetworkMigration(t *testing.T) {
	dockertest.Skip(t)
	dockertest.MustBuildGoImage(t, "./testdata/greeter", "wisp-greeter:test")
	ctx := t.Context()
	const name = "wisp-migrate-test"
	reset := func(t *testing.T, labels map[string]string) dockertest.Network {
		t.Helper()
		if err := dockertest.RemoveNetwork(ctx, name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = dockertest.RemoveNetwork(context.WithoutCancel(ctx), name) })
		if err := dockertest.CreateNetwork(ctx, name, nil, labels); err != nil {
			t.Fatal(err)
		}
		n, err := dockertest.InspectNetwork(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	open := func(t *testing.T) (*docker.Docker, string) {
		t.Helper()
		var log syncBuffer
		rt, err := docker.Open(ctx, docker.Config{Network: name, Owner: "migrate", Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		_ = rt.Close()
		return rt, log.String()
	}
	managed := map[string]string{"wisp.managed": "true"}

	t.Run("nothing attached: recreated", func(t *testing.T) {
		before := reset(t, managed)
		_, log := open(t)
		after, err := dockertest.InspectNetwork(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if after.Options[iccOption] != "false" || after.Gateway != before.Gateway {
			t.Fatalf("after migration: options %v gateway %s, want %s=false and gateway %s; log:\n%s", after.Options, after.Gateway, iccOption, before.Gateway, log)
		}
		if !strings.Contains(log, "recreating the network") {
			t.Fatalf("the log does not say the network was recreated:\n%s", log)
		}
		// Opening again changes nothing and says nothing about it.
		if _, log := open(t); strings.Contains(log, "recreating") || strings.Contains(log, "level=WARN") {
			t.Fatalf("a second start touched the migrated network:\n%s", log)
		}
	})
	t.Run("a container attached: left alone, with what to do", func(t *testing.T) {
		reset(t, managed)
		id, err := dockertest.RunOn(ctx, "wisp-greeter:test", name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = dockertest.KillContainer(context.WithoutCancel(ctx), id, true) })
		_, log := open(t)
		after, err := dockertest.InspectNetwork(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if after.Options[iccOption] == "false" || after.Containers != 1 {
			t.Fatalf("a network with a container attached was changed: %+v", after)
		}
		if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "docker network rm "+name) || !strings.Contains(log, "--keep-instances") {
			t.Fatalf("the warning does not say what to do:\n%s", log)
		}
	})
	t.Run("a network of the user's: never changed", func(t *testing.T) {
		reset(t, nil)
		_, log := open(t)
		after, err := dockertest.InspectNetwork(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if after.Options[iccOption] == "false" || !strings.Contains(log, "not created by Wisp") || !strings.Contains(log, "docker network create -o "+iccOption+"=false "+name) {
			t.Fatalf("options %v; log:\n%s", after.Options, log)
		}
	})
}
