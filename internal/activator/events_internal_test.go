package activator

import (
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

type recorder struct {
	mu  sync.Mutex
	all []core.LogEntry
}

func (r *recorder) Append(e core.LogEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, e)
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.all {
		out = append(out, e.Event+"@"+e.Instance)
	}
	return out
}

// TestFollowerEmitsNothing: what a follower mirrors (ready, frozen,
// exited, killed for memory) is the leader's to report; a replica that
// becomes leader reports the instances it takes over once, as adopted.
func TestFollowerEmitsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := sharedStub()
		rec := &recorder{}
		a, _ := newStubActivator(t, Config{Events: rec}, st)
		st.run("i1", 1)
		a.handleEvent(readyEvent("i1"))
		st.run("i2", 1)
		a.handleEvent(readyEvent("i2"))
		a.handleEvent(runtime.Event{Kind: runtime.EventPaused, InstanceID: "i2"})
		a.handleEvent(runtime.Event{Kind: runtime.EventOOM, InstanceID: "i1"})
		a.handleEvent(runtime.Event{Kind: runtime.EventDied, InstanceID: "i1", ExitCode: 137})
		a.Reap(time.Now().Add(24 * time.Hour))
		synctest.Wait()
		if got := rec.events(); len(got) != 0 {
			t.Fatalf("a follower emitted %v, want nothing", got)
		}
		if err := a.Lead(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// i2 it mirrored (paused); i1 the runtime still lists (the stub
		// keeps it running), so the re-list adopts and probes it.
		got := rec.events()
		sort.Strings(got)
		if want := "instance.adopted@i1 instance.adopted@i2 instance.ready@i1"; strings.Join(got, " ") != want {
			t.Fatalf("on leading: %q, want %q", got, want)
		}
	})
}

func TestRemovalReason(t *testing.T) {
	for why, want := range map[string]string{
		"idle for 5m0s": removedIdle,
		"scaled down":   removedScaleDown,
		"scaled down; 2 request(s) still in flight":  removedDrained,
		"its version was deleted":                    removedVersionDeleted,
		"shutdown":                                   removedShutdown,
		"it failed a request (timeout) and no":       removedSuspect,
		"its liveness probe failed 3 times in a row": removedLiveness,
		"its process exited with code 1":             removedExited,
		"start failed: boom":                         removedStartFailed,
		"something new":                              removedOther,
	} {
		if got := removalReason(why); got != want {
			t.Errorf("removalReason(%q) = %q, want %q", why, got, want)
		}
	}
}

// TestSeconds: event messages print durations as a person writes them,
// never with the float noise of Duration.Seconds (1.1400000000000001).
func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1140 * time.Millisecond:                      "1.14",
		1815 * time.Millisecond:                      "1.815",
		2 * time.Second:                              "2",
		1059*time.Millisecond + 400*time.Microsecond: "1.059",
		10*time.Minute + 300*time.Millisecond:        "600.3",
		0:                                            "0",
	} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%v) = %q, want %q", d, got, want)
		}
	}
}
