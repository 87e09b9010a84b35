package router

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
)

func svcState(name string, versions ...int) core.ServiceState {
	st := core.ServiceState{Service: core.Service{Name: name, Policy: core.DefaultPolicy()}}
	for _, n := range versions {
		st.Versions = append(st.Versions, core.Version{ID: int64(n), Service: name, Number: n})
	}
	if len(versions) > 0 {
		st.Traffic = &core.TrafficEntry{Traffic: core.Traffic{Weights: []core.Weight{{Version: versions[0], Percent: 100}}}}
	}
	return st
}

// TestSnapshotCopyOnWrite: a change of one service shares every other
// service's route and every shard but its own with the snapshot before.
func TestSnapshotCopyOnWrite(t *testing.T) {
	var states []core.ServiceState
	for i := range 2000 {
		states = append(states, svcState(fmt.Sprintf("s%d", i), 1))
	}
	old := NewSnapshot(states)
	next := old.with([]*serviceRoute{newRoute(svcState("s7", 1, 2))}, []string{"s9"})
	changed := map[int]bool{shardOf("s7"): true, shardOf("s9"): true}
	for i := range next.shards {
		if same := next.shards[i] == old.shards[i]; same == changed[i] {
			t.Errorf("shard %d: shared=%v, want shared only when untouched", i, same)
		}
	}
	for i := range 2000 {
		name := fmt.Sprintf("s%d", i)
		switch name {
		case "s9":
			if next.lookup(name) != nil {
				t.Error("s9 was dropped but is still routed")
			}
		case "s7":
			if sr := next.lookup(name); sr == nil || len(sr.versions) != 2 || old.lookup(name) == sr {
				t.Errorf("s7 = %+v, want its new route with 2 versions", sr)
			}
		default:
			if next.lookup(name) != old.lookup(name) || next.lookup(name) == nil {
				t.Errorf("%s: the route was not shared", name)
			}
		}
	}
	if old.lookup("s9") == nil || len(old.lookup("s7").versions) != 1 {
		t.Error("the old snapshot changed: it must stay as it was for requests that hold it")
	}
}

// TestApplyForgetsDeletedVersions: the series of a version deleted by a
// change of its service, or with its service, are deleted.
func TestApplyForgetsDeletedVersions(t *testing.T) {
	r := &Router{}
	var err error
	if r.metrics, err = newMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	r.snap.Store(NewSnapshot(nil))
	r.Apply(svcState("a", 1, 2), svcState("b", 3))
	if len(r.metrics.versions) != 0 {
		t.Fatalf("%d versions have metric children before any request; want them made on a version's first request", len(r.metrics.versions))
	}
	for _, name := range []string{"a", "b"} { // as requests do
		sr := r.snap.Load().lookup(name)
		for _, v := range sr.versions {
			sr.metrics[v].get(r.metrics, v, name)
		}
	}
	for _, id := range []int64{1, 2, 3} {
		if r.metrics.versions[id] == nil {
			t.Fatalf("version %d has no metrics", id)
		}
	}
	r.Apply(svcState("a", 2))
	if r.metrics.versions[1] != nil || r.metrics.versions[2] == nil {
		t.Fatal("after deleting version 1: its metrics remain, or version 2's went")
	}
	r.Remove("b")
	if r.metrics.versions[3] != nil {
		t.Fatal("the metrics of a deleted service's version remain")
	}
	if r.snap.Load().lookup("b") != nil || r.snap.Load().lookup("a") == nil {
		t.Fatal("Remove dropped the wrong service")
	}
}
