package autoscaler_test

import (
	"context"
	"log/slog"
	"sync"
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

// TestEarlyScalesUpOnly: an early look meets a burst at once, but never
// scales down, and never from zero.
func TestEarlyScalesUpOnly(t *testing.T) {
	p := core.DefaultPolicy()
	p.MaxInstances = 20
	src := &source{load: core.VersionLoad{VersionID: 1, Service: "s", Version: 1, Policy: p, Instances: 1, Concurrency: 200}}
	a, err := autoscaler.New(autoscaler.Config{}, src, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.Early(t0)
	if len(src.scaled) != 1 || src.scaled[0] != 20 {
		t.Fatalf("200 waiting for one instance: scaled %v, want [20] at once", src.scaled)
	}
	src.load.Concurrency = 0
	a.Early(t0.Add(time.Minute))
	if len(src.scaled) != 1 {
		t.Fatalf("no load: an early look scaled %v; scale-downs are for the ticks", src.scaled)
	}
	src.load.Instances, src.load.Concurrency = 0, 200
	a.Early(t0.Add(2 * time.Minute))
	if len(src.scaled) != 1 {
		t.Fatalf("no instance: an early look scaled %v; the first instance comes from a request", src.scaled)
	}
}

// lockedSource is source for a test that runs Run in a goroutine.
type lockedSource struct {
	mu sync.Mutex
	s  source
}

func (l *lockedSource) Load() []core.VersionLoad {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Load()
}

func (l *lockedSource) Scale(id int64, n int) core.ScaleResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Scale(id, n)
}

func (l *lockedSource) scaled() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.s.scaled...)
}

// TestRunPokes: a poke brings an early look before the next tick; one
// within EarlyGap of the last look is not lost but waits for the gap.
func TestRunPokes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := core.DefaultPolicy()
		p.MaxInstances = 20
		src := &lockedSource{s: source{load: core.VersionLoad{VersionID: 1, Service: "s", Version: 1, Policy: p, Instances: 1, Concurrency: 200}}}
		a, err := autoscaler.New(autoscaler.Config{}, src, nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		a.Poke()
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if len(src.scaled()) != 1 || src.scaled()[0] != 20 {
			t.Fatalf("1 ms after a poke (the tick is 1 s): scaled %v, want [20]", src.scaled())
		}
		src.mu.Lock()
		src.s.load.Instances = 2 // say the instances went away meanwhile
		src.mu.Unlock()
		a.Poke()
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		if len(src.scaled()) != 1 {
			t.Fatalf("a poke 1 ms after the last look: scaled %v at once, want it held for the gap", src.scaled())
		}
		time.Sleep(100 * time.Millisecond) // past the gap of 100 ms, before the first tick
		synctest.Wait()
		if len(src.scaled()) != 2 || src.scaled()[1] != 20 {
			t.Fatalf("after the gap: scaled %v, want [20 20]", src.scaled())
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
