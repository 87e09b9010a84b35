package docker_test

import (
	"testing"

	"github.com/wisp-run/wisp/internal/runtime/docker"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
	"github.com/wisp-run/wisp/internal/runtime/runtimetest"
)

// TestConformance runs the runtime suite on the real engine in every
// networking mode.
func TestConformance(t *testing.T) {
	dockertest.Skip(t)
	dockertest.CleanupService(t, "conformance")
	dockertest.MustBuildGoImage(t, "./testdata/greeter", "wisp-greeter:test")
	modes := []struct {
		name string
		cfg  docker.Config
	}{
		{"bridge", docker.Config{Network: "wisp-test", Owner: "conformance"}},
		{"publish", docker.Config{Network: "wisp-test", Publish: true, Owner: "conformance"}},
		{"host", docker.Config{Network: docker.HostNetwork, Owner: "conformance"}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rt, err := docker.Open(t.Context(), m.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			if got := rt.NetworkMode(); got != m.name {
				t.Fatalf("network mode %q, want %q", got, m.name)
			}
			runtimetest.Run(t, rt, runtimetest.Image{Ref: "wisp-greeter:test", Port: 8080})
		})
	}
}
