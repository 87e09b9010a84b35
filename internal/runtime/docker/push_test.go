package docker_test

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/docker"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

// loopbackRegistry serves a real OCI registry on 127.0.0.1, which the engine
// pushes to over plain HTTP.
func loopbackRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(slog.NewLogLogger(slog.DiscardHandler, slog.LevelError))), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// TestPush pushes a built image to a registry on loopback and checks that
// the digest it returns is what the registry serves for the tag.
func TestPush(t *testing.T) {
	dockertest.Skip(t)
	ctx := t.Context()
	id := dockertest.MustBuildGoImage(t, "./testdata/greeter", "wisp-greeter:test")
	rt, err := docker.Open(ctx, docker.Config{Network: "wisp-test", Owner: "conformance"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	b := rt.Builder()
	reg := loopbackRegistry(t)
	ref := reg + "/wisp-test/greeter:v1"
	if err := b.TagImage(ctx, id, ref); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dockertest.RemoveImage(ctx, ref) })
	var lines []string
	pinned, err := b.Push(ctx, ref, runtime.RegistryAuth{}, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pinned, reg+"/wisp-test/greeter@sha256:") {
		t.Fatalf("pinned %q, want %s/wisp-test/greeter@sha256:…", pinned, reg)
	}
	if len(lines) == 0 {
		t.Fatal("no progress lines")
	}
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tag, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if got := reg + "/wisp-test/greeter@" + desc.Digest.String(); got != pinned {
		t.Fatalf("registry serves %s for the tag, push said %s", got, pinned)
	}

	// Bad input: no tag, and a registry that is not there.
	if _, err := b.Push(ctx, reg+"/wisp-test/greeter", runtime.RegistryAuth{}, nil); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("push without a tag: %v, want invalid", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	_ = l.Close()
	if err := b.TagImage(ctx, id, gone+"/wisp-test/greeter:v1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dockertest.RemoveImage(ctx, gone+"/wisp-test/greeter:v1") })
	_, err = b.Push(ctx, gone+"/wisp-test/greeter:v1", runtime.RegistryAuth{}, nil)
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), gone) {
		t.Fatalf("push to a registry that is not there: %v, want invalid naming %s", err, gone)
	}
}
