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
	"net"
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
	t.Run("Logs", func(t *testing.T) { testLogs(t, rt, img) })
	t.Run("LongID", func(t *testing.T) { testLongID(t, rt, img) })
	if _, ok := rt.(runtime.Watcher); ok {
		t.Run("Watch", func(t *testing.T) { testWatch(t, rt, img) })
	}
	if _, ok := rt.(runtime.Precreator); ok {
		t.Run("Precreate", func(t *testing.T) { testPrecreate(t, rt, img) })
	}
	if runtime.IsShared(rt) {
		t.Run("SharedReportsReady", func(t *testing.T) { testSharedReady(t, rt, img) })
	}
}

// testSharedReady: a shared runtime is a Watcher and reports EventReady for
// an instance it started, once the instance takes requests, with its
// version and an address that answers (or an empty one that Inspect fills).
func testSharedReady(t *testing.T, rt runtime.Runtime, img Image) {
	w, ok := rt.(runtime.Watcher)
	if !ok {
		t.Fatal("a shared runtime must be a runtime.Watcher that reports EventReady")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, errc := w.Watch(ctx)
	s := spec(t, rt, img, "conformance-ready")
	if _, err := rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop(context.WithoutCancel(ctx), s.ID, time.Second) })
	timeout := time.After(60 * time.Second)
	for {
		select {
		case e := <-events:
			if e.InstanceID != s.ID || e.Kind != runtime.EventReady {
				continue
			}
			in := e.Instance
			if in.Addr == "" {
				var err error
				if in, err = rt.Inspect(ctx, s.ID); err != nil {
					t.Fatalf("Inspect after EventReady: %v", err)
				}
			}
			if in.VersionID != s.VersionID || in.Addr == "" {
				t.Fatalf("EventReady reports version %d at %q, want version %d and an address", in.VersionID, in.Addr, s.VersionID)
			}
			c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", in.Addr)
			if err != nil {
				t.Fatalf("the instance reported ready does not accept connections at %s: %v", in.Addr, err)
			}
			_ = c.Close()
			return
		case err := <-errc:
			t.Fatalf("watch ended: %v", err)
		case <-timeout:
			t.Fatal("no ready event within 60s")
		}
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

// testLongID: an ID of runtime.MaxIDLen characters is accepted and kept.
func testLongID(t *testing.T, rt runtime.Runtime, img Image) {
	ctx := t.Context()
	s := spec(t, rt, img, "conformance-long")
	s.ID = s.ID + "-" + strings.Repeat("x", runtime.MaxIDLen-len(s.ID)-3) + "-z"
	if len(s.ID) != runtime.MaxIDLen {
		t.Fatalf("test bug: ID of %d characters", len(s.ID))
	}
	in, err := rt.Start(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop(context.WithoutCancel(ctx), s.ID, time.Second) })
	got, err := rt.Inspect(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != s.ID || in.ID != s.ID {
		t.Fatalf("ID %q came back as %q (Start) and %q (Inspect)", s.ID, in.ID, got.ID)
	}
}

// testLogs: the output comes back line by line with its stream, in order
// within each stream; Tail and Since select lines; Follow waits for new
// lines and ends on Close. Across streams the order is the runtime's: each
// stream is its own pipe, read and timestamped by its own reader, so lines
// written a moment apart to stdout and stderr may come back swapped (seen
// on containerd under load).
func testLogs(t *testing.T, rt runtime.Runtime, img Image) {
	ctx := t.Context()
	s := spec(t, rt, img, "conformance-logs")
	in, err := rt.Start(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop(context.WithoutCancel(ctx), s.ID, time.Second) })
	WaitServing(t, in.Addr, 15*time.Second)
	say := func(stream, text string) {
		t.Helper()
		if _, err := Get(ctx, "http://"+in.Addr+"/log?stream="+stream+"&text="+text, 5*time.Second); err != nil {
			t.Fatalf("print %q: %v", text, err)
		}
	}
	say(runtime.Stdout, "first-out")
	say(runtime.Stderr, "second-err")
	want := []runtime.LogLine{{Stream: runtime.Stdout, Text: "first-out"}, {Stream: runtime.Stderr, Text: "second-err"}}
	found := func(all []runtime.LogLine) bool { return hasInOrder(all, want) }
	if m, ok := rt.(runtime.StreamMerger); ok && m.MergesStreams() {
		// Every line comes as stdout, in the order the runtime read the
		// two pipes: each line must be there.
		t.Log("this runtime merges stdout and stderr: every line is expected as stdout")
		want[1].Stream = runtime.Stdout
		found = func(all []runtime.LogLine) bool { return hasInOrder(all, want[:1]) && hasInOrder(all, want[1:]) }
	}
	// The runtime may record output a moment after it is written.
	var all []runtime.LogLine
	deadline := time.Now().Add(10 * time.Second)
	for {
		all = readLines(t, rt, s.ID, runtime.LogOptions{})
		if found(all) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !found(all) {
		t.Fatalf("Logs = %+v, want the lines %+v in order with their streams", all, want)
	}
	for _, l := range all {
		if l.Time.IsZero() {
			t.Fatalf("line %+v has no time", l)
		}
	}
	if tail := readLines(t, rt, s.ID, runtime.LogOptions{Tail: 1}); len(tail) != 1 || tail[0] != all[len(all)-1] {
		t.Fatalf("Tail 1 = %+v, want only the last line", tail)
	}
	cut := all[len(all)-1].Time.Add(time.Millisecond)
	if since := readLines(t, rt, s.ID, runtime.LogOptions{Since: cut.Add(time.Second)}); len(since) != 0 {
		t.Fatalf("Since after the last line = %+v, want none", since)
	}

	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	f, err := rt.Logs(fctx, s.ID, runtime.LogOptions{Follow: true, Since: cut})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan runtime.LogLine, 10)
	ended := make(chan error, 1)
	go func() {
		for {
			l, err := f.Next()
			if err != nil {
				ended <- err
				return
			}
			got <- l
		}
	}()
	say(runtime.Stdout, "third-follow")
	select {
	case l := <-got:
		if l.Text != "third-follow" || l.Stream != runtime.Stdout {
			t.Fatalf("followed %+v, want the new stdout line", l)
		}
	case err := <-ended:
		t.Fatalf("a following reader ended (%v) before the new line", err)
	case <-time.After(10 * time.Second):
		t.Fatal("a following reader did not get a new line within 10s")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("Next after Close: %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return within 5s of Close")
	}
	if _, err := rt.Logs(ctx, "conformance-missing-instance", runtime.LogOptions{}); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Logs of an unknown instance: got %v, want not found", err)
	}
}

func readLines(t *testing.T, rt runtime.Runtime, id string, opts runtime.LogOptions) []runtime.LogLine {
	t.Helper()
	r, err := rt.Logs(t.Context(), id, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []runtime.LogLine
	for {
		l, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
}

// hasInOrder reports whether the lines of want (streams and texts) appear
// in got with their streams, in order within each stream.
func hasInOrder(got, want []runtime.LogLine) bool {
	for _, stream := range []string{runtime.Stdout, runtime.Stderr} {
		i := 0
		var w []runtime.LogLine
		for _, l := range want {
			if l.Stream == stream {
				w = append(w, l)
			}
		}
		for _, l := range got {
			if i < len(w) && l.Stream == stream && l.Text == w[i].Text {
				i++
			}
		}
		if i != len(w) {
			return false
		}
	}
	return true
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
	if p, ok := rt.(runtime.Pauser); ok {
		if err := p.Pause(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := rt.Inspect(ctx, s.ID); err != nil || got.State != runtime.StatePaused {
			t.Fatalf("after Pause: state %s, %v", got.State, err)
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
	if list, err = rt.List(ctx); err != nil {
		t.Fatal(err)
	}
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
