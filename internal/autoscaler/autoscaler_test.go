package autoscaler_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wisp-run/wisp/internal/autoscaler"
	"github.com/wisp-run/wisp/internal/core"
)

// source is a fake activator: a version whose concurrency the test sets.
type source struct {
	load   core.VersionLoad
	scaled []int
}

func (s *source) Load() []core.VersionLoad { return []core.VersionLoad{s.load} }
func (s *source) Scale(_ int64, n int) core.ScaleResult {
	s.scaled = append(s.scaled, n)
	s.load.Instances = n
	return core.ScaleResult{}
}

type observer struct{ decisions, counts, forgets atomic.Int32 }

func (o *observer) Decided(core.VersionLoad, autoscaler.Decision, core.ScaleResult) {
	o.decisions.Add(1)
}
func (o *observer) Counts(core.VersionLoad, autoscaler.Decision) { o.counts.Add(1) }
func (o *observer) Forget(core.VersionLoad)                      { o.forgets.Add(1) }

func TestTickScalesAndCountsDecisions(t *testing.T) {
	p := core.DefaultPolicy()
	p.MaxInstances = 20
	src := &source{load: core.VersionLoad{VersionID: 1, Service: "s", Version: 1, Policy: p, Instances: 1}}
	obs := &observer{}
	a, err := autoscaler.New(autoscaler.Config{StableWindow: 10 * time.Second, PanicWindow: 2 * time.Second, ScaleDownDelay: 2 * time.Second},
		src, obs, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	tick := func(c int64, n int) {
		for range n {
			now = now.Add(time.Second)
			src.load.Concurrency = c
			a.Tick(now)
		}
	}
	tick(200, 1) // 200 waiting for one instance: panic to 20 at once
	if src.load.Instances != 20 {
		t.Fatalf("after a burst of 200: %d instances (scaled %v)", src.load.Instances, src.scaled)
	}
	tick(200, 5)
	tick(0, 40) // load gone: back to one, gradually
	if src.load.Instances != 1 {
		t.Fatalf("after the load stopped: %d instances (scaled %v)", src.load.Instances, src.scaled)
	}
	for i := 1; i < len(src.scaled); i++ {
		if prev, n := src.scaled[i-1], src.scaled[i]; n < prev && n < (prev+1)/2 {
			t.Fatalf("dropped from %d to %d at once (scaled %v)", prev, n, src.scaled)
		}
	}
	if int(obs.decisions.Load()) != len(src.scaled) || int(obs.decisions.Load()) < 3 {
		t.Fatalf("%d decisions observed for %d changes", int(obs.decisions.Load()), len(src.scaled))
	}
}

// TestRunForgetsWhenItEnds: a run (a leader's term) ends by forgetting its
// versions and their series, so the next term starts from fresh samples.
func TestRunForgetsWhenItEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &source{load: core.VersionLoad{VersionID: 1, Service: "s", Version: 1, Policy: core.DefaultPolicy(), Instances: 1}}
		obs := &observer{}
		a, err := autoscaler.New(autoscaler.Config{}, src, obs, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		time.Sleep(3500 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if obs.counts.Load() != 3 || obs.forgets.Load() != 1 {
			t.Fatalf("after a run of 3 ticks: %d counts and %d forgets, want 3 and 1", obs.counts.Load(), obs.forgets.Load())
		}
	})
}
