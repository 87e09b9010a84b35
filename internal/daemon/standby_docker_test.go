package daemon_test

import (
	"maps"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// TestDockerStandby: a service with standby 1 gets a paused container as
// soon as its version has traffic, without a request; a request is answered
// by thawing it (no new container); idle again, it is paused again, not
// removed.
func TestDockerStandby(t *testing.T) {
	t.Parallel() // mostly waiting: it overlaps the other waiting tests
	setup(t, "standby-")
	w := startWisp(t, t.TempDir(), nil)
	one, idle, never := 1, core.Duration(2*time.Second), core.Duration(0)
	w.deploy("standby-warm", core.PolicyPatch{Standby: &one, IdleTimeout: &idle, PauseAfter: &never}, []string{"GREETING=standby"})

	waitPaused := func(what string) map[string]string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			c := containers(t, "standby-warm")
			if len(c) == 1 && onlyState(c) == "paused" {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: containers %v, want one paused", what, c)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	before := waitPaused("the standby after the deploy")
	list, err := w.c.Instances(t.Context(), "standby-warm")
	if err != nil || len(list) != 1 || list[0].State != core.InstancePaused {
		t.Fatalf("instances through the API: %+v, %v; want one paused", list, err)
	}

	start := time.Now()
	r := w.get("standby-warm.localhost", "/")
	t.Logf("a request to the standby answered in %s (cold-start header %sms)", time.Since(start).Round(100*time.Microsecond), r.cold)
	if r.status != 200 || r.body != "Hello, standby!\n" {
		t.Fatalf("from the standby: %+v", r)
	}
	after := containers(t, "standby-warm")
	if len(after) != 1 || onlyState(after) != "running" || !maps.Equal(keys(before), keys(after)) {
		t.Fatalf("after the request: %v, before %v: want the same container, running", after, before)
	}

	// Idle for idle_timeout: paused again, the same container, and kept.
	again := waitPaused("the standby after idle_timeout")
	if !maps.Equal(keys(before), keys(again)) {
		t.Fatalf("after idle: %v, want the first container %v paused", again, before)
	}
	time.Sleep(3 * time.Second) // past another idle_timeout and several reaps
	if still := containers(t, "standby-warm"); !maps.Equal(keys(before), keys(still)) || onlyState(still) != "paused" {
		t.Fatalf("the standby was not kept: %v", still)
	}
}

func keys(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
