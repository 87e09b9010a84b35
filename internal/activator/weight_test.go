package activator

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"

	"github.com/wisp-run/wisp/internal/core"
)

// weighStub is the stub runtime that can also set CPU weights.
type weighStub struct{ *stub }

func (w weighStub) SetBackground(_ context.Context, id string, background bool) error {
	w.record(fmt.Sprintf("weigh %s %t", id, background))
	return nil
}

// TestMirrorOnlyVersionRunsInTheBackground: an instance of a version that
// only receives mirrored copies gets a low CPU weight once ready; giving
// the version traffic restores the default weight, and a version with
// traffic is never weighed.
func TestMirrorOnlyVersionRunsInTheBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStub()
		a, err := New(t.Context(), Config{}, weighStub{st}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a.prober, a.health = st, st.health
		t.Cleanup(func() { _ = a.Shutdown(context.WithoutCancel(t.Context())) })
		v1 := &core.Version{ID: 1, Service: "svc", Number: 1, ImageID: "sha256:stub",
			VersionSpec: core.VersionSpec{Image: "stub:1", Port: 8080, Timeout: core.DefaultTimeout}}
		v2 := *v1
		v2.ID, v2.Number = 2, 2
		svc := func(tr core.Traffic) core.ServiceState {
			return core.ServiceState{Service: core.Service{Name: "svc", Policy: core.DefaultPolicy()}, Versions: []core.Version{*v1, v2},
				Traffic: &core.TrafficEntry{Traffic: tr}}
		}
		mirrored := core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}, Mirror: &core.Mirror{Version: 2, Percent: 10}}
		a.Apply(svc(mirrored))
		acquire := func(v *core.Version) string {
			l, err := a.Acquire(t.Context(), v)
			if err != nil {
				t.Fatalf("Acquire version %d: %v", v.Number, err)
			}
			l.Release()
			return l.InstanceID
		}
		i1, i2 := acquire(v1), acquire(&v2)
		synctest.Wait()
		if st.count("weigh "+i2+" true") != 1 || st.countPrefix("weigh "+i1) != 0 {
			t.Fatalf("calls %v: want only %s (mirror only) weighed low", st.calls, i2)
		}

		// Traffic to version 2 too: it is a primary now.
		a.Apply(svc(core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 50}, {Version: 2, Percent: 50}}, Mirror: mirrored.Mirror}))
		synctest.Wait()
		if st.count("weigh "+i2+" false") != 1 {
			t.Fatalf("calls %v: want %s back to the default weight once it has traffic", st.calls, i2)
		}
		// A tag is traffic too; back to mirror only, then tagged.
		a.Apply(svc(mirrored))
		tagged := mirrored
		tagged.Tags = map[string]int{"next": 2}
		a.Apply(svc(tagged))
		synctest.Wait()
		if st.count("weigh "+i2+" true") != 2 || st.count("weigh "+i2+" false") != 2 {
			t.Fatalf("calls %v: want %s weighed low again, then back for its tag", st.calls, i2)
		}
		if st.countPrefix("weigh "+i1) != 0 {
			t.Fatalf("calls %v: the primary's instance was weighed", st.calls)
		}
	})
}

func TestMirrorOnly(t *testing.T) {
	m := &core.Mirror{Version: 2, Percent: 10}
	rule, err := core.ParseRequestRule("header:X-Beta=1 -> 2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tr   *core.Traffic
		want bool
	}{
		{"no traffic", nil, false},
		{"no mirror", &core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}}, false},
		{"mirror only", &core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}, {Version: 2, Percent: 0}}, Mirror: m}, true},
		{"mirror and weight", &core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 90}, {Version: 2, Percent: 10}}, Mirror: m}, false},
		{"mirror and tag", &core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}, Tags: map[string]int{"b": 2}, Mirror: m}, false},
		{"mirror and rule", &core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}, Rules: []core.RequestRule{rule}, Mirror: m}, false},
		{"another version mirrored", &core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}, Mirror: &core.Mirror{Version: 3, Percent: 10}}, false},
	} {
		s := core.ServiceState{}
		if tc.tr != nil {
			s.Traffic = &core.TrafficEntry{Traffic: *tc.tr}
		}
		if got := mirrorOnly(s, 2); got != tc.want {
			t.Errorf("%s: mirrorOnly = %t, want %t", tc.name, got, tc.want)
		}
	}
}
