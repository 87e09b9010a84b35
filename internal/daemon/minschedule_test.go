package daemon_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
)

// TestMinScheduleCrossesAWindow: the whole daemon (fake runtime) with a
// clock the test moves: before the window the version has no instance;
// once the clock enters it, the autoscaler brings it to the window's
// min of 2 without a request; past the window the reaper removes them.
func TestMinScheduleCrossesAWindow(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	friday := time.Date(2026, 3, 6, 7, 0, 0, 0, time.UTC) // 08:00 in Paris
	clock.Store(friday.UnixNano())
	rt := newFake()
	d, _ := runDaemon(t, t.TempDir(), func(c *config.Config) { c.ReapInterval = 50 * time.Millisecond },
		daemon.Options{Runtime: rt, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	c := apiclient.New(d.AdminAddr().String(), d.Token())
	idle := core.Duration(time.Second)
	sched := []core.MinWindow{{Days: "mon-fri", From: "09:00", To: "18:00", TZ: "Europe/Paris", Min: 2}}
	if _, err := c.CreateService(t.Context(), "sched", core.PolicyPatch{IdleTimeout: &idle, MinInstancesSchedule: &sched}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVersion(t.Context(), "sched", core.VersionSpec{Image: "hello:1"}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		list, err := c.Instances(t.Context(), "sched")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, in := range list {
			if in.State == core.InstanceReady || in.State == core.InstancePaused {
				n++
			}
		}
		return n
	}
	waitCount := func(what string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for count() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d instances, want %d", what, count(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a tick or more of the autoscaler
	if n := count(); n != 0 {
		t.Fatalf("before the window: %d instances, want 0", n)
	}
	clock.Store(friday.Add(time.Hour).UnixNano()) // 09:00 in Paris
	waitCount("in the window", 2)
	clock.Store(time.Date(2026, 3, 6, 17, 0, 0, 0, time.UTC).UnixNano()) // 18:00 in Paris
	waitCount("past the window", 0)
}
