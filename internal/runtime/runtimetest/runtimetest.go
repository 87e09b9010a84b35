// Package runtimetest is the conformance suite of the runtime port: every
// runtime implementation runs Run unchanged.
package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// Image is the image the suite runs. It must serve HTTP on Port, answer
// "Hello, $GREETING!" on /, and listen on $PORT when that is set.
type Image struct {
	Ref  string
	Port int
}

// Run runs the suite against rt.
func Run(t *testing.T, rt runtime.Runtime, img Image) {
	t.Run("ResolveImage", func(t *testing.T) { testResolve(t, rt, img) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, rt, img) })
	t.Run("StartMissingImage", func(t *testing.T) { testMissingImage(t, rt, img) })
	if _, ok := rt.(runtime.Watcher); ok {
		t.Run("Watch", func(t *testing.T) { testWatch(t, rt, img) })
	}
	if _, ok := rt.(runtime.Precreator); ok {
		t.Run("Precreate", func(t *testing.T) { testPrecreate(t, rt, img) })
	}
}

func testPrecreate(t *testing.T, rt runtime.Runtime, img Image) {
	ctx := t.Context()
	pc := rt.(runtime.Precreator)
	s := spec(t, rt, img, "conformance-pre")
	in, err := pc.Create(ctx, s)
	if err != nil {
		t.Logf("Create refused (allowed by the contract): %v", err)
		return
	}
	t.Cleanup(func() { _ = rt.Stop(context.WithoutCancel(ctx), s.ID, time.Second) })
	if in.State != runtime.StateCreated {
		t.Fatalf("after Create: state %s, want created", in.State)
	}
	list, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range list {
		found = found || (l.ID == s.ID && l.State == runtime.StateCreated)
	}
	if !found {
		t.Fatalf("List does not show the created instance %s", s.ID)
	}
	started, err := pc.StartCreated(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if started.Addr == "" {
		t.Fatal("StartCreated returned no address")
	}
	if body := WaitServing(t, started.Addr, 15*time.Second); body != "Hello, Conformance!\n" {
		t.Fatalf("body %q", body)
	}
	if _, err := pc.StartCreated(ctx, "conformance-missing-instance"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("StartCreated of an unknown instance: got %v, want not found", err)
	}
}

// NewID returns a unique instance ID for service.
func NewID(service string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return service + "-" + hex.EncodeToString(b)
}

func spec(t *testing.T, rt runtime.Runtime, img Image, service string) runtime.InstanceSpec {
	t.Helper()
	id, err := rt.ResolveImage(t.Context(), img.Ref)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.InstanceSpec{ID: NewID(service), Service: service, VersionID: 42, VersionNumber: 7,
		Image: id, ImageRef: img.Ref, Port: img.Port, Env: []string{"GREETING=Conformance"}, MemoryLimit: 64 << 20, CPULimit: 0.5}
}

func testResolve(t *testing.T, rt runtime.Runtime, img Image) {
	id, err := rt.ResolveImage(t.Context(), img.Ref)
	if err != nil || id == "" {
		t.Fatalf("ResolveImage(%q) = %q, %v", img.Ref, id, err)
	}
	_, err = rt.ResolveImage(t.Context(), "wisp-missing-image:none")
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "wisp-missing-image:none") {
		t.Fatalf("ResolveImage of a missing image: got %v, want an invalid error naming it", err)
	}
}

// Get fetches url with a bounded timeout and returns the body.
func Get(ctx context.Context, url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

// WaitServing polls addr until it greets or the deadline passes.
func WaitServing(t testing.TB, addr string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	var lastErr error
	for time.Now().Before(deadline) {
		body, err := Get(t.Context(), "http://"+addr+"/", time.Second)
		if err == nil {
			return body
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("instance at %s not serving within %s: %v", addr, within, lastErr)
	return ""
}

func testLifecycle(t *testing.T, rt runtime.Runtime, img Image) {
	ctx := t.Context()
	s := spec(t, rt, img, "conformance")
	in, err := rt.Start(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop(context.WithoutCancel(ctx), s.ID, time.Second) })
	if in.ID != s.ID || in.Addr == "" || in.Service != s.Service || in.VersionID != 42 || in.VersionNumber != 7 {
		t.Fatalf("Start returned %+v", in)
	}
	if body := WaitServing(t, in.Addr, 15*time.Second); body != "Hello, Conformance!\n" {
		t.Fatalf("body %q: the env did not reach the instance", body)
	}
	got, err := rt.Inspect(ctx, s.ID)
	if err != nil || got.State != runtime.StateRunning || got.Addr != in.Addr {
		t.Fatalf("Inspect: %+v, %v", got, err)
	}
	list, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range list {
		if l.ID == s.ID {
			found = l.Service == s.Service && l.VersionID == 42 && l.VersionNumber == 7 && l.State == runtime.StateRunning && l.Addr == in.Addr
			if !found {
				t.Fatalf("List entry lost labels or address: %+v", l)
			}
		}
	}
	if !found {
		t.Fatalf("List does not include %s", s.ID)
	}
	logs, err := rt.Logs(ctx, s.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(logs)
	_ = logs.Close()
	if len(b) == 0 {
		t.Fatal("Logs returned nothing")
	}
	if p, ok := rt.(runtime.Pauser); ok {
		if err := p.Pause(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := rt.Inspect(ctx, s.ID); got.State != runtime.StatePaused {
			t.Fatalf("after Pause: state %s", got.State)
		}
		if _, err := Get(ctx, "http://"+in.Addr+"/", 300*time.Millisecond); err == nil {
			t.Fatal("a paused instance answered")
		}
		if err := p.Unpause(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		WaitServing(t, in.Addr, 5*time.Second)
	}
	if err := rt.Stop(ctx, s.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Inspect(ctx, s.ID); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Inspect after Stop: got %v, want not found", err)
	}
	list, _ = rt.List(ctx)
	for _, l := range list {
		if l.ID == s.ID {
			t.Fatalf("List still has %s after Stop", s.ID)
		}
	}
	if err := rt.Stop(ctx, s.ID, time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func testMissingImage(t *testing.T, rt runtime.Runtime, img Image) {
	s := spec(t, rt, img, "conformance-missing")
	s.Image = "sha256:" + strings.Repeat("0", 64)
	if _, err := rt.Start(t.Context(), s); err == nil {
		_ = rt.Stop(context.WithoutCancel(t.Context()), s.ID, time.Second)
		t.Fatal("Start of a missing image succeeded")
	}
	list, err := rt.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if l.ID == s.ID {
			t.Fatalf("a failed Start left %s behind", s.ID)
		}
	}
}

func testWatch(t *testing.T, rt runtime.Runtime, img Image) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, errc := rt.(runtime.Watcher).Watch(ctx)
	s := spec(t, rt, img, "conformance-watch")
	if _, err := rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, s.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e := <-events:
			if e.InstanceID == s.ID && e.Kind == runtime.EventRemoved {
				return
			}
		case err := <-errc:
			t.Fatalf("watch ended: %v", err)
		case <-timeout:
			t.Fatal("no removed event within 15s")
		}
	}
}
