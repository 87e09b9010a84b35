package activator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// The roles of several replicas (replicas.go), over the stub runtime in
// shared mode, in a synctest bubble.

func sharedStub() *stub {
	st := newStub()
	st.shared = true
	return st
}

// readyEvent is the runtime's report that instance id of version 1 is ready.
func readyEvent(id string) runtime.Event {
	return runtime.Event{Kind: runtime.EventReady, InstanceID: id,
		Instance: runtime.Instance{ID: id, VersionID: 1, Addr: "stub-" + id, State: runtime.StateRunning}}
}

// TestFollowerNeverTouchesTheRuntime: a follower's requests wait for the
// leader (and tell it at once), use what the runtime reports ready, and
// nothing a follower does — a refused connection, the reaper, a scale, a
// deleted version, shutdown — starts, stops, pauses or thaws an instance.
func TestFollowerNeverTouchesTheRuntime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := sharedStub()
		a, v := newStubActivator(t, Config{}, st)
		if a.Leading() {
			t.Fatal("an activator over a shared runtime leads before it is told to")
		}
		got := make(chan *Lease, 1)
		go func() {
			l, err := a.Acquire(t.Context(), v)
			if err != nil {
				t.Errorf("Acquire: %v", err)
			}
			got <- l
		}()
		select {
		case <-a.Demand():
		case <-time.After(time.Second):
			t.Fatal("a request waiting for a version with nothing ready did not signal demand")
		}
		synctest.Wait()
		if len(got) != 0 {
			t.Fatal("a follower handed out an instance before one was ready")
		}
		st.run("i1", 1)
		a.handleEvent(readyEvent("i1"))
		l := <-got
		if l == nil || l.InstanceID != "i1" || l.Addr != "stub-i1" {
			t.Fatalf("got lease %+v, want instance i1 at stub-i1", l)
		}
		l.Fail() // refused: dropped here, but not stopped
		if n := len(a.Instances("svc")); n != 0 {
			t.Fatalf("%d instances after a refused connection, want the mirror dropped", n)
		}

		st.run("i2", 1)
		a.handleEvent(readyEvent("i2"))
		a.Reap(time.Now().Add(24 * time.Hour))
		if res := a.Scale(1, 5); res != (core.ScaleResult{}) {
			t.Fatalf("a follower's Scale did %+v, want nothing", res)
		}
		a.handleEvent(runtime.Event{Kind: runtime.EventPaused, InstanceID: "i2"})
		if _, err := a.Acquire(ctxFor(t, 100*time.Millisecond), v); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire with the only instance frozen: got %v, want a wait (the leader thaws)", err)
		}
		a.Apply(core.ServiceState{Service: core.Service{Name: "svc", Policy: core.DefaultPolicy()}}) // version deleted
		if n := len(a.Instances("svc")); n != 0 {
			t.Fatalf("%d instances of a deleted version", n)
		}
		synctest.Wait()
		if n := st.callCount(); n != 0 {
			t.Fatalf("a follower made %d runtime calls (%v), want none", n, st.calls)
		}
	})
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestFollowerAppliesReplies: the leader's reply withholds instances it is
// removing, and makes requests for a version whose starts back off fail at
// once with the leader's reason; its ready list is mirrored.
func TestFollowerAppliesReplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := sharedStub()
		a, v := newStubActivator(t, Config{}, st)
		a.ApplyReply(core.LoadReply{Ready: []core.ReadyInstance{{ID: "i1", VersionID: 1, Addr: "stub-i1"}}})
		l, err := a.Acquire(t.Context(), v)
		if err != nil || l.InstanceID != "i1" {
			t.Fatalf("Acquire after a reply listed i1 ready: %v, %v", l, err)
		}
		l.Release()

		a.ApplyReply(core.LoadReply{Withheld: []string{"i1"}})
		if _, err := a.Acquire(ctxFor(t, 100*time.Millisecond), v); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire of a withheld instance: got %v, want a wait", err)
		}
		if info := a.Instances("svc"); len(info) != 1 || !strings.Contains(info[0].Message, "leader") {
			t.Fatalf("instances view of a withheld instance: %+v", info)
		}

		a.ApplyReply(core.LoadReply{Withheld: []string{"i1"}, Backoffs: []core.VersionBackoff{
			{VersionID: 1, Failures: 3, LastFailure: "exec format error", RetryInMS: 4000}}})
		began := time.Now()
		_, err = a.Acquire(t.Context(), v)
		var re *retryError
		if !errors.As(err, &re) || re.RetryAfter() != 4*time.Second || !strings.Contains(err.Error(), "exec format error") {
			t.Fatalf("Acquire during the leader's backoff: got %v, want a retry error in 4s naming the failure", err)
		}
		if time.Since(began) != 0 {
			t.Fatal("a request for a version in backoff waited")
		}

		a.ApplyReply(core.LoadReply{}) // neither withheld nor backing off any more
		l, err = a.Acquire(t.Context(), v)
		if err != nil || l.InstanceID != "i1" {
			t.Fatalf("Acquire after the reply lifted both: %v, %v", l, err)
		}
		l.Release()
		if n := st.callCount(); n != 0 {
			t.Fatalf("runtime calls: %v", st.calls)
		}
	})
}

// TestLeaderStartsOnceForEveryReplica: requests waiting on the leader and
// on two followers at once start one instance, and a later report is told
// where it is.
func TestLeaderStartsOnceForEveryReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := sharedStub()
		st.startDelay = 100 * time.Millisecond
		a, v := newStubActivator(t, Config{}, st)
		if _, err := a.ReceiveLoad(core.LoadReport{Replica: "b"}); !errors.Is(err, core.ErrConflict) {
			t.Fatalf("a report to a follower: got %v, want a conflict", err)
		}
		if err := a.Lead(t.Context()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			l, err := a.Acquire(t.Context(), v)
			if err == nil {
				l.Release()
			}
			done <- err
		}()
		for _, r := range []string{"b", "c"} {
			reply, err := a.ReceiveLoad(core.LoadReport{Replica: r, Versions: []core.ReportedVersion{{VersionID: 1, Waiting: 2}, {VersionID: 99, Waiting: 1}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(reply.IgnoredVersions) != 1 || reply.IgnoredVersions[0] != 99 {
				t.Fatalf("ignored versions %v, want [99]", reply.IgnoredVersions)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := st.countPrefix("start "); n != 1 {
			t.Fatalf("%d starts for one version asked for by three replicas, want 1", n)
		}
		reply, err := a.ReceiveLoad(core.LoadReport{Replica: "b", Versions: []core.ReportedVersion{{VersionID: 1, Waiting: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(reply.Ready) != 1 || reply.Ready[0].VersionID != 1 || reply.Ready[0].Addr == "" {
			t.Fatalf("reply to a replica still waiting: ready %+v, want the instance", reply.Ready)
		}
		if n := st.countPrefix("start "); n != 1 {
			t.Fatalf("%d starts after the instance was ready, want 1", n)
		}
	})
}

// TestLeaderSumsTheReplicasLoad: the autoscaler's load is the leader's own
// plus every report that still counts; the request count only grows.
func TestLeaderSumsTheReplicasLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := sharedStub()
		a, v := newStubActivator(t, Config{ReportTTL: 3 * time.Second}, st)
		if err := a.Lead(t.Context()); err != nil {
			t.Fatal(err)
		}
		l, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		report := func(replica string, inflight, waiting int64, requests uint64) {
			t.Helper()
			if _, err := a.ReceiveLoad(core.LoadReport{Replica: replica,
				Versions: []core.ReportedVersion{{VersionID: 1, InFlight: inflight, Waiting: waiting, Requests: requests}}}); err != nil {
				t.Fatal(err)
			}
		}
		check := func(wantConc int64, wantReq uint64) {
			t.Helper()
			load := a.Load()
			if len(load) != 1 || load[0].Concurrency != wantConc || load[0].Requests != wantReq {
				t.Fatalf("load %+v, want concurrency %d and requests %d", load, wantConc, wantReq)
			}
		}
		check(1, 1)
		report("b", 3, 2, 100) // the first count is a baseline
		check(6, 1)
		time.Sleep(time.Second)
		report("b", 1, 0, 130)
		report("c", 2, 0, 7)
		check(4, 31)
		time.Sleep(time.Second)
		report("c", 0, 0, 9)
		check(2, 33)
		time.Sleep(2500 * time.Millisecond) // b's report is 3.5 s old: b is gone
		check(1, 33)
		time.Sleep(time.Second)
		check(1, 33)
	})
}

// TestReapAndDrainAcrossReplicas: the leader does not reap an instance
// another replica is using, and removes an idle one only after every
// replica has been told to stop using it and has nothing in flight on it.
func TestReapAndDrainAcrossReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := sharedStub()
		a, v := newStubActivator(t, Config{ReportTTL: 3 * time.Second, StopGrace: time.Minute}, st)
		pol := core.DefaultPolicy()
		pol.IdleTimeout = core.Duration(10 * time.Second)
		a.Apply(core.ServiceState{Service: core.Service{Name: "svc", Policy: pol}, Versions: []core.Version{*v},
			Traffic: &core.TrafficEntry{Traffic: core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}}}})
		if err := a.Lead(t.Context()); err != nil {
			t.Fatal(err)
		}
		l, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		id := l.InstanceID
		l.Release()
		report := func(inflight int64, idle time.Duration) core.LoadReply {
			t.Helper()
			r := core.LoadReport{Replica: "b"}
			if inflight > 0 || idle >= 0 {
				r.Instances = []core.ReportedInstance{{ID: id, InFlight: inflight, IdleMS: idle.Milliseconds()}}
			}
			reply, err := a.ReceiveLoad(r)
			if err != nil {
				t.Fatal(err)
			}
			return reply
		}
		// Busy on b for 12 s: not reaped, though idle here.
		for range 12 {
			report(1, 0)
			time.Sleep(time.Second)
			a.Reap(time.Now())
		}
		if got := a.states(); len(got) != 1 || got[0] != Ready {
			t.Fatalf("states %v, want the instance b uses still ready", got)
		}
		// Idle on b too; b keeps reporting (nothing about the instance).
		// Its last request there was at the end of the busy spell.
		lastUse := time.Now().Add(-time.Second)
		for a.states()[0] == Ready {
			report(0, -1)
			time.Sleep(time.Second)
			a.Reap(time.Now())
		}
		if idle := time.Since(lastUse); idle != 10*time.Second {
			t.Fatalf("reaped after %s idle on b, want the idle timeout of 10s", idle)
		}
		if got := a.states(); len(got) != 1 || got[0] != Draining {
			t.Fatalf("states %v, want the idle instance draining while b may still use it", got)
		}
		if reply := report(0, -1); len(reply.Withheld) != 1 || reply.Withheld[0] != id {
			t.Fatalf("withheld %v, want [%s]", reply.Withheld, id)
		}
		time.Sleep(time.Second)
		report(1, 0) // b handed it one more before it applied the reply
		time.Sleep(time.Second)
		synctest.Wait()
		if n := st.count("stop " + id); n != 0 {
			t.Fatal("stopped while another replica had a request in flight on it")
		}
		report(0, 0) // told, and done
		synctest.Wait()
		if n := st.count("stop " + id); n != 1 {
			t.Fatalf("%d stops of the drained instance, want 1", n)
		}
	})
}

// TestLeadAdoptsAndFollowKeeps: a follower mirrors what the runtime runs
// and removes nothing; when it leads it adopts the rest (removing orphans);
// when it follows again it drops its queued starts and stops nothing.
func TestLeadAdoptsAndFollowKeeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := sharedStub()
		st.run("x", 1)      // started by an earlier leader
		st.run("orphan", 9) // of a version nobody knows
		a, _ := newStubActivator(t, Config{ParallelStarts: 1}, st)
		if err := a.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := a.states(); len(got) != 1 || got[0] != Ready {
			t.Fatalf("follower's mirror: %v, want x ready", got)
		}
		if n := st.callCount(); n != 0 {
			t.Fatalf("a follower's re-list made runtime calls: %v", st.calls)
		}
		if err := a.Lead(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st.count("stop orphan") != 1 || st.count("stop x") != 0 {
			t.Fatalf("calls after leading: %v, want the orphan stopped and x kept", st.calls)
		}
		st.set(func(s *stub) { s.startDelay = time.Hour })
		if res := a.Scale(1, 3); res.Queued != 2 {
			t.Fatalf("leader's Scale: %+v, want 2 queued", res)
		}
		synctest.Wait()
		a.Follow()
		if a.Leading() {
			t.Fatal("still leading after Follow")
		}
		got := a.states()
		if len(got) != 2 || got[0] != Ready || got[1] != Starting {
			t.Fatalf("after Follow: %v, want x ready and the start in progress (the queued one dropped)", got)
		}
		if st.count("stop x") != 0 {
			t.Fatal("Follow stopped an instance")
		}
	})
}

// TestDrainEndsWhenReplicasGoAway: a drain that waits for another replica
// ends at the next reap once that replica's reports stop counting (it went
// away), not only at the stop grace.
func TestDrainEndsWhenReplicasGoAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := sharedStub()
		a, v := newStubActivator(t, Config{ReportTTL: 3 * time.Second, StopGrace: time.Hour}, st)
		if err := a.Lead(t.Context()); err != nil {
			t.Fatal(err)
		}
		l, err := a.Acquire(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		id := l.InstanceID
		l.Release()
		if _, err := a.ReceiveLoad(core.LoadReport{Replica: "b", Instances: []core.ReportedInstance{{ID: id, InFlight: 1}}}); err != nil {
			t.Fatal(err)
		}
		vs := a.lookup(1)
		vs.mu.Lock()
		if !a.busy(vs.instances[0], time.Now()) {
			t.Error("an instance with a request in flight on another replica is not busy")
		}
		a.drain(vs.instances[0], "scaled down")
		vs.mu.Unlock()
		time.Sleep(2 * time.Second)
		a.Reap(time.Now())
		synctest.Wait()
		if st.count("stop "+id) != 0 {
			t.Fatal("stopped while b's report (a request in flight on it) still counts")
		}
		time.Sleep(2 * time.Second) // b's report is 4 s old: b is gone
		a.Reap(time.Now())
		synctest.Wait()
		if st.count("stop "+id) != 1 {
			t.Fatalf("calls %v: want the drained instance stopped once b went away", st.calls)
		}
	})
}

// TestLeadTakesTheSingletonToken: a replica that becomes leader holds a
// singleton's token for the instance it already knew from the runtime's
// events (an earlier leader started it), so its first start of another
// version waits until that instance is removed.
func TestLeadTakesTheSingletonToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := sharedStub()
		a, v1 := newStubActivator(t, Config{}, st)
		pol := core.DefaultPolicy()
		pol.Singleton, pol.MaxInstances = true, 1
		v2 := *v1
		v2.ID, v2.Number = 2, 2
		svc := func(to int) core.ServiceState {
			return core.ServiceState{Service: core.Service{Name: "svc", Policy: pol}, Versions: []core.Version{*v1, v2},
				Traffic: &core.TrafficEntry{Traffic: core.Traffic{Weights: []core.Weight{{Version: to, Percent: 100}}}}}
		}
		a.Apply(svc(1))
		st.run("x", 1)
		a.handleEvent(readyEvent("x")) // known as a follower
		if err := a.Lead(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		a.Apply(svc(2))
		got := make(chan error, 1)
		go func() {
			l, err := a.Acquire(t.Context(), &v2)
			if err == nil {
				l.Release()
			}
			got <- err
		}()
		synctest.Wait()
		if err := <-got; err != nil {
			t.Fatalf("Acquire version 2: %v", err)
		}
		st.mu.Lock()
		calls := slices.Clone(st.calls)
		st.mu.Unlock()
		stopX, start := slices.Index(calls, "stop x"), slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, "start ") })
		if stopX < 0 || start < 0 || start < stopX {
			t.Fatalf("runtime calls %v: want x stopped before version 2 starts", calls)
		}
	})
}
