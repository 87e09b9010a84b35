package logs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/logs"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/fake"
)

// start opens a store on dir and runs it until the test ends (or stop).
func start(t testing.TB, cfg logs.Config) (*logs.Logs, func()) {
	t.Helper()
	l, err := logs.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			_ = l.Close()
		})
	}
	t.Cleanup(stop)
	return l, stop
}

func all(t testing.TB, l *logs.Logs, q core.LogQuery) []core.LogEntry {
	t.Helper()
	var out []core.LogEntry
	if err := l.Query(t.Context(), q, func(e core.LogEntry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func messages(es []core.LogEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Message
	}
	return out
}

func TestAppendQuerySeqAndRestart(t *testing.T) {
	dir := t.TempDir()
	l, stop := start(t, logs.Config{Dir: dir})
	for i := range 5 {
		l.Append(core.LogEntry{Service: "a", Kind: core.LogApp, Instance: "i1", Message: fmt.Sprint("a", i)})
		l.Append(core.LogEntry{Service: "b", Kind: core.LogApp, Message: fmt.Sprint("b", i)})
	}
	// Queued entries are visible at once (the query flushes first).
	got := all(t, l, core.LogQuery{Service: "a"})
	if diff := cmp.Diff([]string{"a0", "a1", "a2", "a3", "a4"}, messages(got)); diff != "" {
		t.Fatalf("entries of a (-want +got):\n%s", diff)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Time.IsZero() {
			t.Errorf("entry %d: seq %d time %v, want seq %d and a time", i, e.Seq, e.Time, i+1)
		}
	}
	stop()

	// A torn last line (a crash mid-write) is cut off on Open.
	seg := filepath.Join(dir, "a", "1.seg")
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":6,"time":"2026-`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	l2, _ := start(t, logs.Config{Dir: dir})
	l2.Append(core.LogEntry{Service: "a", Message: "after"})
	got = all(t, l2, core.LogQuery{Service: "a"})
	if len(got) != 6 || got[5].Seq != 6 || got[5].Message != "after" || got[5].Kind != core.LogApp {
		t.Fatalf("after a restart: %+v, want six entries, the last seq 6 \"after\" of kind app", got)
	}
	if got := all(t, l2, core.LogQuery{Service: "a", Tail: 2}); cmp.Diff([]string{"a4", "after"}, messages(got)) != "" {
		t.Errorf("tail 2: %v", messages(got))
	}
	if got := all(t, l2, core.LogQuery{Service: "a", AfterSeq: 4}); cmp.Diff([]string{"a4", "after"}, messages(got)) != "" {
		t.Errorf("after seq 4: %v", messages(got))
	}
	if got := all(t, l2, core.LogQuery{Service: "nope"}); len(got) != 0 {
		t.Errorf("unknown service: %v", got)
	}
}

func TestFilters(t *testing.T) {
	l, _ := start(t, logs.Config{Dir: t.TempDir()})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := []core.LogEntry{
		{Time: t0, Kind: core.LogApp, Version: 1, Instance: "x", Message: "hello"},
		{Time: t0.Add(time.Second), Kind: core.LogPlatform, Version: 1, Instance: "x", Event: core.EventInstanceReady, Message: "ready"},
		{Time: t0.Add(2 * time.Second), Kind: core.LogApp, Version: 2, Instance: "y", Message: "hello again"},
		{Time: t0.Add(3 * time.Second), Kind: core.LogRequest, Version: 2, Instance: "y", Message: "GET /"},
	}
	for _, e := range in {
		e.Service = "f"
		l.Append(e)
	}
	tests := []struct {
		name string
		q    core.LogQuery
		want []string
	}{
		{"all", core.LogQuery{}, []string{"hello", "ready", "hello again", "GET /"}},
		{"version", core.LogQuery{Version: 2}, []string{"hello again", "GET /"}},
		{"instance", core.LogQuery{Instance: "x"}, []string{"hello", "ready"}},
		{"kinds", core.LogQuery{Kinds: []core.LogKind{core.LogApp, core.LogRequest}}, []string{"hello", "hello again", "GET /"}},
		{"since until", core.LogQuery{Since: t0.Add(time.Second), Until: t0.Add(3 * time.Second)}, []string{"ready", "hello again"}},
		{"contains", core.LogQuery{Contains: "again"}, []string{"hello again"}},
		{"tail of matches", core.LogQuery{Kinds: []core.LogKind{core.LogApp}, Tail: 1}, []string{"hello again"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Service = "f"
			if diff := cmp.Diff(tc.want, messages(all(t, l, tc.q))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestRetentionBytes writes past the bound: the oldest segments go first
// and the disk use stays within MaxBytes and one segment.
func TestRetentionBytes(t *testing.T) {
	dir := t.TempDir()
	l, _ := start(t, logs.Config{Dir: dir, Retention: core.LogRetention{MaxBytes: 4 << 20, MaxAge: time.Hour}})
	line := strings.Repeat("x", 1000)
	const n = 12000 // about 12 MiB, three times the bound
	for i := range n {
		l.Append(core.LogEntry{Service: "r", Message: fmt.Sprintf("%06d %s", i, line)})
		if i%1000 == 999 {
			all(t, l, core.LogQuery{Service: "r", Tail: 1}) // let the writer keep up
		}
	}
	got := all(t, l, core.LogQuery{Service: "r"})
	if len(got) == 0 || len(got) == n {
		t.Fatalf("%d entries kept of %d, want some removed", len(got), n)
	}
	if last := got[len(got)-1]; last.Seq != n {
		t.Errorf("last entry seq %d, want %d", last.Seq, n)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq != got[i-1].Seq+1 {
			t.Fatalf("gap between seq %d and %d: retention removed something but the oldest", got[i-1].Seq, got[i].Seq)
		}
	}
	// A tail read backwards across segments and chunks is the end of the
	// forward read.
	for _, n := range []int{1, 999, 3000} {
		tail := all(t, l, core.LogQuery{Service: "r", Tail: n})
		if diff := cmp.Diff(got[len(got)-n:], tail); diff != "" {
			t.Fatalf("tail %d differs from the forward read's end (-want +got):\n%s", n, diff)
		}
	}
	var disk int64
	files, _ := os.ReadDir(filepath.Join(dir, "r"))
	for _, f := range files {
		fi, _ := f.Info()
		disk += fi.Size()
	}
	const bound = 4<<20 + 1<<20 // MaxBytes and one segment (MaxBytes/8, at least 1 MiB)
	if disk > bound {
		t.Errorf("disk use %d bytes in %d files, want at most %d", disk, len(files), bound)
	}
	if disk < 3<<20 {
		t.Errorf("disk use %d bytes, want close to the bound (retention removed too much)", disk)
	}
	if u := l.DiskUsage("r"); u != disk {
		t.Errorf("DiskUsage %d, files hold %d", u, disk)
	}
}

func TestRetentionAgeAndRemove(t *testing.T) {
	dir := t.TempDir()
	l, _ := start(t, logs.Config{Dir: dir, RetentionInterval: 20 * time.Millisecond})
	l.SetRetention("old", core.LogRetention{MaxBytes: 1 << 20, MaxAge: time.Minute})
	l.Append(core.LogEntry{Service: "old", Time: time.Now().Add(-2 * time.Minute), Message: "stale"})
	l.Append(core.LogEntry{Service: "gone", Message: "bye"})
	all(t, l, core.LogQuery{Service: "old"})
	waitFor(t, "the stale segment removed", func() bool {
		_, err := os.Stat(filepath.Join(dir, "old", "1.seg"))
		return os.IsNotExist(err)
	})
	l.Append(core.LogEntry{Service: "old", Message: "fresh"})
	if got := messages(all(t, l, core.LogQuery{Service: "old"})); cmp.Diff([]string{"fresh"}, got) != "" {
		t.Errorf("after age retention: %v, want only fresh", got)
	}
	l.RemoveService("gone")
	all(t, l, core.LogQuery{Service: "old"}) // the removal is queued: sync behind it
	if _, err := os.Stat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Errorf("removed service's directory: %v, want gone", err)
	}
	if got := all(t, l, core.LogQuery{Service: "gone"}); len(got) != 0 {
		t.Errorf("removed service still has %v", got)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFollow(t *testing.T) {
	l, _ := start(t, logs.Config{Dir: t.TempDir(), FlushInterval: 10 * time.Millisecond})
	l.Append(core.LogEntry{Service: "f", Message: "0"})
	l.Append(core.LogEntry{Service: "f", Message: "1"})
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan core.LogEntry, 100)
	done := make(chan error, 1)
	go func() {
		done <- l.Query(ctx, core.LogQuery{Service: "f", Tail: 1, Follow: true, Contains: ""},
			func(e core.LogEntry) error { got <- e; return nil })
	}()
	if e := <-got; e.Message != "1" {
		t.Fatalf("first followed entry %q, want the tail 1", e.Message)
	}
	for i := 2; i < 50; i++ {
		l.Append(core.LogEntry{Service: "f", Message: fmt.Sprint(i)})
		l.Append(core.LogEntry{Service: "other", Message: "not this"})
	}
	for i := 2; i < 50; i++ {
		select {
		case e := <-got:
			if e.Message != fmt.Sprint(i) || e.Seq != uint64(i+1) {
				t.Fatalf("followed %q seq %d, want %d seq %d", e.Message, e.Seq, i, i+1)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("entry %d never followed", i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("follow ended with %v, want nil when its context ends", err)
	}
}

func TestDropWhenFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := logs.Open(logs.Config{Dir: t.TempDir(), QueueSize: 10, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() { // Run is not running: Append must not block
		for range 25 {
			l.Append(core.LogEntry{Service: "d", Message: "x"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Append blocked with a full queue")
	}
	if got := testutil.ToFloat64(findCounter(t, reg, "wisp_log_dropped_total")); got != 15 {
		t.Errorf("dropped %v, want 15", got)
	}
}

func findCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, m := range mf.GetMetric() {
					sum += m.GetCounter().GetValue()
				}
			}
		}
		return sum
	})
}

// collectorFunc turns a sum into a gauge testutil.ToFloat64 reads.
func collectorFunc(f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sum", Help: "sum"}, f)
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, _ := start(t, logs.Config{Dir: t.TempDir(), Registerer: reg})
	l.Append(core.PlatformEvent(core.EventInstanceReady, "m", 1, "i", "ready"))
	l.Append(core.PlatformEvent(core.EventInstanceReady, "m", 1, "j", "ready"))
	l.Append(core.LogEntry{Service: "m", Message: "app"})
	all(t, l, core.LogQuery{Service: "m"})
	want := `
# HELP wisp_log_entries_total Log entries stored, by kind (app, platform, request).
# TYPE wisp_log_entries_total counter
wisp_log_entries_total{kind="app"} 1
wisp_log_entries_total{kind="platform"} 2
# HELP wisp_platform_events_total Platform events (instance starting, ready, removed, …), by service and event.
# TYPE wisp_platform_events_total counter
wisp_platform_events_total{event="instance.ready",service="m"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wisp_platform_events_total", "wisp_log_entries_total"); err != nil {
		t.Error(err)
	}
}

// TestCaptureFake: an EventInstanceStarting entry starts a capture of the
// instance's output on the (fake) runtime; lines land as app entries of
// its service, version and instance; after a restart an adoption does not
// store a line twice.
func TestCaptureFake(t *testing.T) {
	rt := fake.New(fake.Config{Images: map[string]string{"img": "sha256:img"}, Behave: func(runtime.InstanceSpec) fake.Behavior {
		return fake.Behavior{Logs: "booting\nlistening\n"}
	}})
	dir := t.TempDir()
	l, stop := start(t, logs.Config{Dir: dir, Runtime: rt, FlushInterval: 10 * time.Millisecond})
	before := time.Now()
	inst, err := rt.Start(t.Context(), runtime.InstanceSpec{ID: "cap1", Image: "sha256:img", Service: "c", VersionNumber: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Stop(context.Background(), inst.ID, 0) //nolint:errcheck // cleanup
	ev := core.PlatformEvent(core.EventInstanceStarting, "c", 3, inst.ID, "starting", "reason", core.StartFirstRequest)
	ev.Time = before
	l.Append(ev)
	l.Append(ev) // deduped: one capture per instance
	rt.Print(inst.ID, runtime.Stderr, "oops, failing")
	// The fake prints "fake: listening on …" itself; the test's lines lack the prefix.
	app := core.LogQuery{Service: "c", Kinds: []core.LogKind{core.LogApp}, Contains: "i"}
	waitFor(t, "three captured lines", func() bool { return len(all(t, l, app)) >= 4 })
	got := all(t, l, app)
	if diff := cmp.Diff([]string{"booting", "listening", "fake: listening on " + inst.Addr, "oops, failing"}, messages(got)); diff != "" {
		t.Fatalf("captured (-want +got):\n%s", diff)
	}
	if e := got[3]; e.Version != 3 || e.Instance != inst.ID || e.Stream != runtime.Stderr || e.Service != "c" {
		t.Errorf("captured entry %+v, want version 3, instance %s, stream stderr", e, inst.ID)
	}
	stop()

	l2, _ := start(t, logs.Config{Dir: dir, Runtime: rt, FlushInterval: 10 * time.Millisecond})
	rt.Print(inst.ID, runtime.Stdout, "printed after restart")
	l2.Append(core.PlatformEvent(core.EventInstanceAdopted, "c", 3, inst.ID, "adopted"))
	waitFor(t, "the line printed after the restart", func() bool { return len(all(t, l2, app)) >= 5 })
	got = all(t, l2, app)
	if diff := cmp.Diff([]string{"booting", "listening", "fake: listening on " + inst.Addr, "oops, failing", "printed after restart"}, messages(got)); diff != "" {
		t.Errorf("after adopt (-want +got):\n%s", diff)
	}
}

// TestCaptureRetries: Logs fails until the instance exists; the capture
// retries and then reads it.
func TestCaptureRetries(t *testing.T) {
	rt := fake.New(fake.Config{Images: map[string]string{"img": "sha256:img"}})
	l, _ := start(t, logs.Config{Dir: t.TempDir(), Runtime: rt, FlushInterval: 10 * time.Millisecond})
	l.Append(core.PlatformEvent(core.EventInstanceStarting, "late", 1, "late1", "starting"))
	time.Sleep(120 * time.Millisecond) // not synchronisation: lets a few Logs calls fail first
	inst, err := rt.Start(t.Context(), runtime.InstanceSpec{ID: "late1", Image: "sha256:img", Service: "late", VersionNumber: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Stop(context.Background(), inst.ID, 0) //nolint:errcheck // cleanup
	rt.Print(inst.ID, runtime.Stdout, "finally")
	waitFor(t, "the line of an instance that came late", func() bool {
		return len(all(t, l, core.LogQuery{Service: "late", Kinds: []core.LogKind{core.LogApp}, Contains: "finally"})) == 1
	})
}

func TestConcurrentAppend(t *testing.T) {
	l, _ := start(t, logs.Config{Dir: t.TempDir()})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				l.Append(core.LogEntry{Service: "cc", Instance: fmt.Sprint(g), Message: fmt.Sprint(i)})
			}
		}()
	}
	wg.Wait()
	got := all(t, l, core.LogQuery{Service: "cc"})
	if len(got) != 4000 {
		t.Fatalf("%d entries, want 4000", len(got))
	}
	seqs := make([]int, len(got))
	for i, e := range got {
		seqs[i] = int(e.Seq)
	}
	if !sort.IntsAreSorted(seqs) || seqs[0] != 1 || seqs[len(seqs)-1] != 4000 {
		t.Errorf("seqs not 1..4000 in order")
	}
}

// TestQueryWithoutRun: after Close, a query reads what is on disk and
// returns (it does not wait for a writer that will never run).
func TestQueryWithoutRun(t *testing.T) {
	dir := t.TempDir()
	l, stop := start(t, logs.Config{Dir: dir})
	l.Append(core.LogEntry{Service: "q", Message: "kept"})
	all(t, l, core.LogQuery{Service: "q"})
	stop()
	l2, err := logs.Open(logs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_ = l2.Close()
	done := make(chan []core.LogEntry, 1)
	go func() { done <- all(t, l2, core.LogQuery{Service: "q", Follow: true}) }()
	select {
	case got := <-done:
		if cmp.Diff([]string{"kept"}, messages(got)) != "" {
			t.Errorf("got %v, want [kept]", messages(got))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a query of a closed store hung")
	}
}

// TestTailLongLines: lines longer than the backward read's chunk.
func TestTailLongLines(t *testing.T) {
	l, _ := start(t, logs.Config{Dir: t.TempDir()})
	long := strings.Repeat("y", 600<<10)
	want := []string{"a", long, "b", long + "2", "c"}
	for _, m := range want {
		l.Append(core.LogEntry{Service: "long", Message: m})
	}
	for n := 1; n <= len(want)+1; n++ {
		got := messages(all(t, l, core.LogQuery{Service: "long", Tail: n}))
		w := want[max(len(want)-n, 0):]
		if len(got) != len(w) {
			t.Fatalf("tail %d: %d entries, want %d", n, len(got), len(w))
		}
		for i := range w {
			if got[i] != w[i] {
				t.Fatalf("tail %d: entry %d differs", n, i)
			}
		}
	}
}
