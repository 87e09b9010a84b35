package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"

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
		{"bridge with sandboxes", docker.Config{Network: "wisp-test", Owner: "conformance-sandbox", Sandboxes: 2}},
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

// TestBuild builds FROM the local test image (nothing is pulled), runs the
// result, and checks failures and lookup by label.
func TestBuild(t *testing.T) {
	dockertest.Skip(t)
	dockertest.CleanupService(t, "built")
	dockertest.MustBuildGoImage(t, "./testdata/greeter", "wisp-greeter:test")
	rt, err := docker.Open(t.Context(), docker.Config{Network: "wisp-test", Owner: "conformance"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx := t.Context()
	tarOf := func(files map[string]string) io.Reader {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for name, body := range files {
			_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
			_, _ = tw.Write([]byte(body))
		}
		_ = tw.Close()
		return &buf
	}
	digest := fmt.Sprintf("test-%d", time.Now().UnixNano())
	var lines []string
	id, err := rt.Builder().Build(ctx, runtime.BuildRequest{
		Context:    tarOf(map[string]string{"build/Dockerfile.wisp": "FROM wisp-greeter:test\nENV GREETING=built\n"}),
		Dockerfile: "build/Dockerfile.wisp",
		Tags:       []string{"wisp-built:test"},
		Labels:     map[string]string{"wisp.source-digest": digest},
	}, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dockertest.RemoveImage(context.WithoutCancel(ctx), "wisp-built:test") })
	if !strings.HasPrefix(id, "sha256:") || !strings.Contains(strings.Join(lines, "\n"), "Step 2/3 : ENV GREETING=built") {
		t.Fatalf("id %q, progress %q", id, lines)
	}
	found, ok, err := rt.Builder().FindImage(ctx, map[string]string{"wisp.source-digest": digest})
	if err != nil || !ok || found != id {
		t.Fatalf("FindImage: %q %v %v, want %q", found, ok, err, id)
	}
	if _, ok, _ := rt.Builder().FindImage(ctx, map[string]string{"wisp.source-digest": "no-such-digest"}); ok {
		t.Fatal("FindImage found an image for an unknown digest")
	}
	in, err := rt.Start(ctx, runtime.InstanceSpec{ID: runtimetest.NewID("built"), Service: "built", VersionID: 1, VersionNumber: 1, Image: id, Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rt.Stop(context.WithoutCancel(ctx), in.ID, time.Second) }()
	if body := runtimetest.WaitServing(t, in.Addr, 15*time.Second); body != "Hello, built!\n" {
		t.Fatalf("the built image answers %q", body)
	}

	// A failing step: an invalid error with the step in its last output.
	_, err = rt.Builder().Build(ctx, runtime.BuildRequest{
		Context: tarOf(map[string]string{"Dockerfile": "FROM wisp-greeter:test\nCOPY missing.txt /\n"}),
		Tags:    []string{"wisp-broken:test"},
	}, nil)
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "missing.txt") || !strings.Contains(err.Error(), "Step 2/2 : COPY missing.txt") {
		t.Fatalf("a failing step: %v", err)
	}
	// A base image that is not on the machine and cannot be pulled (no
	// registry here): the message names it and says how to use a local one.
	_, err = rt.Builder().Build(ctx, runtime.BuildRequest{
		Context: tarOf(map[string]string{"Dockerfile": "FROM wisp-no-such-base:1 AS build\nRUN true\n"}),
		Tags:    []string{"wisp-broken:test"},
	}, nil)
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "could not get the base image wisp-no-such-base:1") ||
		!strings.Contains(err.Error(), "--base-image") || !strings.Contains(err.Error(), "build.base_image") {
		t.Fatalf("a missing base image: %v", err)
	}
	// A Dockerfile that does not parse.
	_, err = rt.Builder().Build(ctx, runtime.BuildRequest{Context: tarOf(map[string]string{"Dockerfile": "FROMM nothing\n"})}, nil)
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "FROMM") {
		t.Fatalf("a broken Dockerfile: got %v, want an invalid error naming the bad instruction", err)
	}
}

// TestOpenNeedsOwner: without an owner ID a runtime could adopt or remove
// another installation's containers, so Open refuses (before any engine).
func TestOpenNeedsOwner(t *testing.T) {
	if _, err := docker.Open(t.Context(), docker.Config{}); err == nil || !strings.Contains(err.Error(), "owner ID is required") {
		t.Fatalf("got %v", err)
	}
}

// TestSetBackground: a background instance's container gets the lowest CPU
// weight and keeps serving; the default weight comes back; an unknown
// instance is not found.
func TestSetBackground(t *testing.T) {
	dockertest.Skip(t)
	dockertest.CleanupService(t, "weigh")
	img := dockertest.MustBuildGoImage(t, "./testdata/greeter", "wisp-greeter:test")
	ctx := t.Context()
	rt, err := docker.Open(ctx, docker.Config{Network: "wisp-test", Owner: "weigh"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	in, err := rt.Start(ctx, runtime.InstanceSpec{ID: runtimetest.NewID("weigh"), Service: "weigh", VersionID: 1, VersionNumber: 1, Image: img, Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rt.Stop(context.WithoutCancel(ctx), in.ID, time.Second) }()
	ids, err := dockertest.Containers(ctx, "weigh")
	if err != nil || len(ids) != 1 {
		t.Fatalf("containers of weigh: %v, %v", ids, err)
	}
	var cid string
	for id := range ids {
		cid = id
	}
	for _, tc := range []struct {
		background bool
		want       int64
	}{{true, 2}, {false, 1024}, {true, 2}} {
		if err := rt.SetBackground(ctx, in.ID, tc.background); err != nil {
			t.Fatalf("SetBackground(%t): %v", tc.background, err)
		}
		c, err := dockertest.InspectContainer(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		if c.CPUShares != tc.want {
			t.Errorf("after SetBackground(%t): cpu shares %d, want %d", tc.background, c.CPUShares, tc.want)
		}
		runtimetest.WaitServing(t, in.Addr, 5*time.Second)
	}
	if err := rt.SetBackground(ctx, "weigh-nobody", true); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("SetBackground of an unknown instance: %v, want not found", err)
	}
}
