package daemon_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
)

// appLines returns the app entries of service containing text.
func (w *wisp) appLines(service, text string) []core.LogEntry {
	w.t.Helper()
	var out []core.LogEntry
	if err := w.c.Logs(w.t.Context(), service, core.LogQuery{Kinds: []core.LogKind{core.LogApp}, Contains: text},
		func(e core.LogEntry) error { out = append(out, e); return nil }); err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *wisp) waitLines(service, text string, n int) []core.LogEntry {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := w.appLines(service, text)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: %d app lines with %q, want %d", service, len(got), text, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDockerLogsSurvive: an instance's output is readable after the
// instance was scaled to zero and after a daemon restart on the same data
// dir; the stream's seq goes on after the restart.
func TestDockerLogsSurvive(t *testing.T) {
	t.Parallel() // mostly waiting: it overlaps the other waiting tests
	setup(t, "logs-keep")
	dir := t.TempDir()
	w := startWisp(t, dir, func(c *config.Config) { c.ReapInterval = 250 * time.Millisecond })
	idle, never := core.Duration(time.Second), core.Duration(0)
	w.deploy("logs-keep", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: &never}, nil)
	if r := w.get("logs-keep.localhost", "/log?text=kept+line&stream=stderr"); r.status != 200 {
		t.Fatal(r)
	}
	before := w.waitLines("logs-keep", "kept line", 1)
	if e := before[0]; e.Stream != "stderr" || e.Version != 1 || !strings.HasPrefix(e.Instance, "logs-keep-v1-") || e.Seq == 0 {
		t.Fatalf("captured %+v, want stderr of version 1's instance", e)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(containers(t, "logs-keep")) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle instance was not removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := w.appLines("logs-keep", "kept line"); len(got) != 1 || got[0].Seq != before[0].Seq || got[0].Message != before[0].Message {
		t.Fatalf("after scale to zero: %+v, want %+v", got, before)
	}
	w.stop()

	w2 := startWisp(t, dir, nil)
	if got := w2.appLines("logs-keep", "kept line"); len(got) != 1 || got[0].Seq != before[0].Seq || got[0].Message != before[0].Message {
		t.Fatalf("after a restart: %+v, want %+v", got, before)
	}
	if r := w2.get("logs-keep.localhost", "/log?text=after+restart"); r.status != 200 {
		t.Fatal(r)
	}
	after := w2.waitLines("logs-keep", "after restart", 1)
	if after[0].Seq <= before[0].Seq || after[0].Instance == before[0].Instance {
		t.Errorf("after the restart: seq %d (instance %s), want above %d and a new instance", after[0].Seq, after[0].Instance, before[0].Seq)
	}
}

var greeterLine = regexp.MustCompile(`^greeter: line (\d+) of `)

// TestDockerLogsFollow: one follow (the API's ndjson, through the
// apiclient as `wisp logs -f` uses it) sees a service scale from zero, to
// three instances (min_instances 3) and back to zero, each instance's
// lines complete and in order.
func TestDockerLogsFollow(t *testing.T) {
	t.Parallel() // mostly waiting: it overlaps the other waiting tests
	setup(t, "logs-follow")
	w := startWisp(t, t.TempDir(), func(c *config.Config) { c.ReapInterval = 250 * time.Millisecond })
	idle, never := core.Duration(2*time.Second), core.Duration(0)
	w.deploy("logs-follow", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: &never}, []string{"LOG_RATE=20"})

	ctx, cancel := context.WithCancel(t.Context())
	var mu sync.Mutex
	var got []core.LogEntry
	done := make(chan error, 1)
	go func() {
		// Every kind: app lines, platform events (once emitted), requests.
		done <- w.c.Logs(ctx, "logs-follow", core.LogQuery{Follow: true}, func(e core.LogEntry) error {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
			return nil
		})
	}()
	// lines returns the greeter lines followed so far, by instance.
	lines := func() map[string][]core.LogEntry {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]core.LogEntry{}
		for _, e := range got {
			if e.Kind == core.LogApp && greeterLine.MatchString(e.Message) {
				out[e.Instance] = append(out[e.Instance], e)
			}
		}
		return out
	}
	waitFollowed := func(what string, cond func(map[string][]core.LogEntry) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond(lines()) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; followed %d instances", what, len(lines()))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if r := w.get("logs-follow.localhost", "/"); r.status != 200 || r.cold == "" {
		t.Fatalf("scale from zero: %+v", r)
	}
	waitFollowed("the first instance's lines", func(m map[string][]core.LogEntry) bool { return len(m) == 1 })
	three := 3
	if _, err := w.c.UpdatePolicy(t.Context(), "logs-follow", core.PolicyPatch{MinInstances: &three}); err != nil {
		t.Fatal(err)
	}
	waitFollowed("lines of three instances", func(m map[string][]core.LogEntry) bool {
		if len(m) < 3 {
			return false
		}
		for _, es := range m {
			if len(es) < 5 {
				return false
			}
		}
		return true
	})
	zero := 0
	if _, err := w.c.UpdatePolicy(t.Context(), "logs-follow", core.PolicyPatch{MinInstances: &zero}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(containers(t, "logs-follow")) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the service did not scale back to zero")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// What the instances printed last reaches the follower too (the
	// runtime's stream ends when the container goes).
	final := lines()
	if len(final) < 3 {
		t.Fatalf("followed lines of %d instances, want at least 3", len(final))
	}
	for inst, es := range final {
		// Each instance's lines complete from its first, in order, in
		// increasing seq.
		for i, e := range es {
			n, _ := strconv.Atoi(greeterLine.FindStringSubmatch(e.Message)[1])
			if n != i+1 {
				t.Fatalf("instance %s: line %d is %q, want line %d (none lost, none twice, in order)", inst, i, e.Message, i+1)
			}
			if i > 0 && e.Seq <= es[i-1].Seq {
				t.Fatalf("instance %s: seq %d after %d", inst, e.Seq, es[i-1].Seq)
			}
			if e.Version != 1 || e.Service != "logs-follow" || e.Stream != "stdout" {
				t.Fatalf("entry %+v: want service logs-follow, version 1, stdout", e)
			}
		}
		t.Logf("instance %s: %d lines followed", inst, len(es))
	}

	// Each instance's platform events, in the same stream, in seq order:
	// it started (with the reason), became ready and was removed.
	events := func() map[string][]core.LogEntry {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]core.LogEntry{}
		for _, e := range got {
			if e.Kind == core.LogPlatform && e.Instance != "" {
				out[e.Instance] = append(out[e.Instance], e)
			}
		}
		return out
	}
	for inst := range final {
		var names []string
		deadline := time.Now().Add(10 * time.Second)
		for {
			es := events()[inst]
			names = names[:0]
			for _, e := range es {
				names = append(names, e.Event)
			}
			if len(es) >= 3 && es[len(es)-1].Event == core.EventInstanceRemoved {
				first := es[0]
				if first.Event != core.EventInstanceStarting || first.Fields["reason"] == "" {
					t.Fatalf("instance %s: first event %+v, want %s with a reason", inst, first, core.EventInstanceStarting)
				}
				if es[1].Event != core.EventInstanceReady || es[1].Fields["duration_ms"] == "" {
					t.Fatalf("instance %s: events %v, want %s with duration_ms second", inst, names, core.EventInstanceReady)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %s: events %v, want %s, %s, …, %s", inst, names,
					core.EventInstanceStarting, core.EventInstanceReady, core.EventInstanceRemoved)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("instance %s: events %v", inst, names)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow: %v", err)
	}
}

// TestDockerLogsAdopt: an instance left running across a daemon restart
// (--keep-instances) is adopted, and its capture goes on after the newest
// stored line: the lines it printed while no Wisp ran are kept, none twice.
func TestDockerLogsAdopt(t *testing.T) {
	t.Parallel() // mostly waiting: it overlaps the other waiting tests
	setup(t, "logs-adopt")
	dir := t.TempDir()
	w := startWisp(t, dir, func(c *config.Config) { c.KeepInstances = true })
	idle := core.Duration(time.Hour)
	w.deploy("logs-adopt", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: new(core.Duration)}, []string{"LOG_RATE=20"})
	if r := w.get("logs-adopt.localhost", "/"); r.status != 200 {
		t.Fatal(r)
	}
	before := w.waitLines("logs-adopt", "greeter: line", 10)
	w.stop()
	stoppedAt := time.Now()
	w2 := startWisp(t, dir, nil)
	// Lines printed from a second after the old daemon stopped: the new one
	// adopted the instance and captured what it printed meanwhile.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := w2.appLines("logs-adopt", "greeter: line")
		if n := len(got); n > 0 && got[n-1].Time.After(stoppedAt.Add(time.Second)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no line printed after the restart was captured")
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := w2.appLines("logs-adopt", "greeter: line")
	for i, e := range got {
		if e.Instance != before[0].Instance {
			t.Fatalf("line of instance %s, want only the adopted %s", e.Instance, before[0].Instance)
		}
		n, _ := strconv.Atoi(greeterLine.FindStringSubmatch(e.Message)[1])
		if n != i+1 {
			t.Fatalf("line %d is %q, want line %d: a line lost or kept twice across the restart", i, e.Message, i+1)
		}
	}
	t.Logf("%d lines before the restart, %d in all, none lost or twice", len(before), len(got))
}
