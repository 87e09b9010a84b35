package fake_test

import (
	"testing"

	"github.com/wisp-run/wisp/internal/runtime/fake"
	"github.com/wisp-run/wisp/internal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	rt := fake.New(fake.Config{Images: map[string]string{"greeter:test": "sha256:greeter"}})
	runtimetest.Run(t, rt, runtimetest.Image{Ref: "greeter:test", Port: 8080})
}

// TestConformanceShared: in shared mode the fake also reports EventReady.
func TestConformanceShared(t *testing.T) {
	rt := fake.New(fake.Config{Images: map[string]string{"greeter:test": "sha256:greeter"}, Shared: true})
	runtimetest.Run(t, rt, runtimetest.Image{Ref: "greeter:test", Port: 8080})
}
