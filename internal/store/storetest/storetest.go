// Package storetest is the conformance suite of the store port: every store
// implementation runs Run unchanged, so they all keep the same contract.
package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// Opener returns an empty store for one test; the suite closes it. The store
// must prune its change log to at most 2×KeepChanges changes.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Services", testServices},
		{"ServiceErrors", testServiceErrors},
		{"Policy", testPolicy},
		{"Versions", testVersions},
		{"VersionErrors", testVersionErrors},
		{"VersionNumbersNeverReused", testVersionNumbersNeverReused},
		{"DeleteVersion", testDeleteVersion},
		{"Traffic", testTraffic},
		{"TrafficErrors", testTrafficErrors},
		{"Rollback", testRollback},
		{"TrafficRules", testTrafficRules},
		{"TrafficMirror", testTrafficMirror},
		{"DeleteServiceCascades", testDeleteServiceCascades},
		{"ConcurrentTraffic", testConcurrentTraffic},
		{"ConcurrentVersions", testConcurrentVersions},
		{"ConcurrentServiceCreates", testConcurrentServiceCreates},
		{"ConcurrentDeploys", testConcurrentDeploys},
		{"ConcurrentTrafficHistory", testConcurrentTrafficHistory},
		{"ConcurrentFeed", testConcurrentFeed},
		{"DeployVersion", testDeployVersion},
		{"Builds", testBuilds},
		{"IfMatch", testIfMatch},
		{"ConcurrentIfMatch", testConcurrentIfMatch},
		{"ChangeFeed", testChangeFeed},
		{"FailedWritesRecordNoChange", testFailedWritesRecordNoChange},
		{"ChangesSince", testChangesSince},
		{"Compacted", testCompacted},
		{"Watch", testWatch},
		{"WatchClose", testWatchClose},
		{"ServiceStates", testServiceStates},
		{"Leases", testLeases},
		{"Rollouts", testRollouts},
		{"RolloutErrors", testRolloutErrors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

func mustService(t testing.TB, s store.Store, name string) core.Service {
	t.Helper()
	sv, err := s.CreateService(t.Context(), core.Service{Name: name, Policy: core.DefaultPolicy()})
	if err != nil {
		t.Fatalf("CreateService(%q): %v", name, err)
	}
	return sv
}

func mustVersion(t testing.TB, s store.Store, service, image string, env ...string) core.Version {
	t.Helper()
	v, err := s.CreateVersion(t.Context(), core.Version{Service: service, VersionSpec: core.VersionSpec{Image: image, Env: env}})
	if err != nil {
		t.Fatalf("CreateVersion(%q, %q): %v", service, image, err)
	}
	return v
}

// The must* readers fail the test when the read fails, so that a check that
// compares two reads cannot pass because both failed.

func mustGetService(t testing.TB, s store.Store, name string) core.Service {
	t.Helper()
	sv, err := s.GetService(t.Context(), name)
	if err != nil {
		t.Fatalf("GetService(%q): %v", name, err)
	}
	return sv
}

func mustVersions(t testing.TB, s store.Store, service string) []core.Version {
	t.Helper()
	list, err := s.ListVersions(t.Context(), service)
	if err != nil {
		t.Fatalf("ListVersions(%q): %v", service, err)
	}
	return list
}

func mustTraffic(t testing.TB, s store.Store, service string) core.TrafficEntry {
	t.Helper()
	e, err := s.GetTraffic(t.Context(), service)
	if err != nil {
		t.Fatalf("GetTraffic(%q): %v", service, err)
	}
	return e
}

func mustHistory(t testing.TB, s store.Store, service string) []core.TrafficEntry {
	t.Helper()
	hist, err := s.TrafficHistory(t.Context(), service)
	if err != nil {
		t.Fatalf("TrafficHistory(%q): %v", service, err)
	}
	return hist
}

func wantKind(t testing.TB, err, kind error, what string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got error %v, want kind %v", what, err, kind)
	}
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Message == "" {
		t.Fatalf("%s: error %v carries no user message", what, err)
	}
}

func testServices(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := time.Now().Add(-time.Second)
	b := mustService(t, s, "beta")
	a := mustService(t, s, "alpha")
	if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
		t.Fatalf("IDs not assigned: alpha %d, beta %d", a.ID, b.ID)
	}
	if a.CreatedAt.Before(before) || a.UpdatedAt.IsZero() {
		t.Fatalf("times not set: %+v", a)
	}
	got, err := s.GetService(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got, cmpopts.EquateApproxTime(time.Millisecond)); diff != "" {
		t.Fatalf("GetService mismatch (-created +got):\n%s", diff)
	}
	list, err := s.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sv := range list {
		names = append(names, sv.Name)
	}
	if diff := cmp.Diff([]string{"alpha", "beta"}, names); diff != "" {
		t.Fatalf("ListServices order (-want +got):\n%s", diff)
	}
	if err := s.DeleteService(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetService(ctx, "alpha")
	wantKind(t, err, core.ErrNotFound, "GetService after delete")
}

func testServiceErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	_, err := s.CreateService(ctx, core.Service{Name: "hello", Policy: core.DefaultPolicy()})
	wantKind(t, err, core.ErrAlreadyExists, "duplicate CreateService")
	_, err = s.CreateService(ctx, core.Service{Name: "Bad_Name", Policy: core.DefaultPolicy()})
	wantKind(t, err, core.ErrInvalid, "CreateService with a bad name")
	_, err = s.CreateService(ctx, core.Service{Name: "nopolicy"})
	wantKind(t, err, core.ErrInvalid, "CreateService with a zero policy")
	_, err = s.GetService(ctx, "missing")
	wantKind(t, err, core.ErrNotFound, "GetService(missing)")
	wantKind(t, s.DeleteService(ctx, "missing"), core.ErrNotFound, "DeleteService(missing)")
	list, err := s.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("failed creates left records: got %d services, want 1", len(list))
	}
}

func testPolicy(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustVersion(t, s, "hello", "hello:1")
	one, idle, rps := 1, core.Duration(2*time.Second), 250
	sv, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{MinInstances: &one, IdleTimeout: &idle, TargetRPS: &rps})
	if err != nil {
		t.Fatal(err)
	}
	want := core.DefaultPolicy()
	want.MinInstances, want.IdleTimeout, want.TargetRPS = 1, idle, 250
	if diff := cmp.Diff(want, sv.Policy); diff != "" {
		t.Fatalf("policy after update (-want +got):\n%s", diff)
	}
	got, err := s.GetService(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got.Policy); diff != "" {
		t.Fatalf("stored policy (-want +got):\n%s", diff)
	}
	bad := 100000
	_, err = s.UpdatePolicy(ctx, "hello", core.PolicyPatch{MaxInstances: &bad})
	wantKind(t, err, core.ErrInvalid, "UpdatePolicy out of bounds")
	got = mustGetService(t, s, "hello")
	if diff := cmp.Diff(want, got.Policy); diff != "" {
		t.Fatalf("invalid update changed the policy (-want +got):\n%s", diff)
	}
	_, err = s.UpdatePolicy(ctx, "missing", core.PolicyPatch{MinInstances: &one})
	wantKind(t, err, core.ErrNotFound, "UpdatePolicy(missing)")

	// The log fields round-trip, through every read of a service.
	on, size, age := true, int64(3<<20), core.Duration(90*time.Minute)
	if _, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{RequestLogs: &on, LogMaxBytes: &size, LogMaxAge: &age}); err != nil {
		t.Fatal(err)
	}
	want.RequestLogs, want.LogMaxBytes, want.LogMaxAge = true, size, age
	if diff := cmp.Diff(want, mustGetService(t, s, "hello").Policy); diff != "" {
		t.Fatalf("stored log policy (-want +got):\n%s", diff)
	}
	all, err := s.ListServices(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("ListServices: %v, %v", all, err)
	}
	if diff := cmp.Diff(want, all[0].Policy); diff != "" {
		t.Fatalf("listed log policy (-want +got):\n%s", diff)
	}
	logged := core.DefaultPolicy()
	logged.RequestLogs, logged.LogMaxBytes, logged.LogMaxAge = true, 2<<20, core.Duration(time.Hour)
	created, err := s.CreateService(ctx, core.Service{Name: "logged", Policy: logged})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(logged, mustGetService(t, s, "logged").Policy); diff != "" || !cmp.Equal(created.Policy, logged) {
		t.Fatalf("created log policy (-want +got):\n%s", diff)
	}
	off, tiny := false, int64(1)
	_, err = s.UpdatePolicy(ctx, "hello", core.PolicyPatch{RequestLogs: &off, LogMaxBytes: &tiny})
	wantKind(t, err, core.ErrInvalid, "UpdatePolicy with log_max_bytes below 1 MiB")
	if got := mustGetService(t, s, "hello").Policy; !got.RequestLogs || got.LogMaxBytes != size {
		t.Fatalf("an invalid log policy update changed it: %+v", got)
	}
	if err := s.DeleteService(ctx, "logged"); err != nil {
		t.Fatal(err)
	}

	// The async call fields round-trip too, and the backoff bounds are
	// checked together.
	conc, attempts := 25, 8
	minB, maxB, maxAge := core.Duration(250*time.Millisecond), core.Duration(90*time.Second), core.Duration(36*time.Hour)
	if _, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{AsyncConcurrency: &conc, MaxAttempts: &attempts,
		MinBackoff: &minB, MaxBackoff: &maxB, MaxAge: &maxAge}); err != nil {
		t.Fatal(err)
	}
	want.AsyncConcurrency, want.MaxAttempts, want.MinBackoff, want.MaxBackoff, want.MaxAge = conc, attempts, minB, maxB, maxAge
	if diff := cmp.Diff(want, mustGetService(t, s, "hello").Policy); diff != "" {
		t.Fatalf("stored async policy (-want +got):\n%s", diff)
	}
	if all, err = s.ListServices(ctx); err != nil || len(all) != 1 {
		t.Fatalf("ListServices: %v, %v", all, err)
	}
	if diff := cmp.Diff(want, all[0].Policy); diff != "" {
		t.Fatalf("listed async policy (-want +got):\n%s", diff)
	}
	async := core.DefaultPolicy()
	async.AsyncConcurrency, async.MaxAttempts = 1000, 100
	async.MinBackoff, async.MaxBackoff, async.MaxAge = core.Duration(time.Hour), core.Duration(24*time.Hour), core.Duration(7*24*time.Hour)
	created, err = s.CreateService(ctx, core.Service{Name: "async", Policy: async})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(async, mustGetService(t, s, "async").Policy); diff != "" || !cmp.Equal(created.Policy, async) {
		t.Fatalf("created async policy (-want +got):\n%s", diff)
	}
	under := core.Duration(100 * time.Millisecond)
	_, err = s.UpdatePolicy(ctx, "hello", core.PolicyPatch{MaxBackoff: &under})
	wantKind(t, err, core.ErrInvalid, "UpdatePolicy with max_backoff below min_backoff")
	if got := mustGetService(t, s, "hello").Policy; got.MaxBackoff != maxB {
		t.Fatalf("an invalid async policy update changed it: %+v", got)
	}
	if err := s.DeleteService(ctx, "async"); err != nil {
		t.Fatal(err)
	}

	// Standby round-trips through an update, every read and a create, and
	// an invalid value changes nothing.
	two := 2
	if _, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{Standby: &two}); err != nil {
		t.Fatal(err)
	}
	want.Standby = 2
	if diff := cmp.Diff(want, mustGetService(t, s, "hello").Policy); diff != "" {
		t.Fatalf("stored standby (-want +got):\n%s", diff)
	}
	if all, err = s.ListServices(ctx); err != nil || len(all) != 1 {
		t.Fatalf("ListServices: %v, %v", all, err)
	}
	if diff := cmp.Diff(want, all[0].Policy); diff != "" {
		t.Fatalf("listed standby (-want +got):\n%s", diff)
	}
	warm := core.DefaultPolicy()
	warm.Standby = 3
	created, err = s.CreateService(ctx, core.Service{Name: "warm", Policy: warm})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(warm, mustGetService(t, s, "warm").Policy); diff != "" || !cmp.Equal(created.Policy, warm) {
		t.Fatalf("created standby policy (-want +got):\n%s", diff)
	}
	tooMany := 11 // above max_instances 10
	_, err = s.UpdatePolicy(ctx, "hello", core.PolicyPatch{Standby: &tooMany})
	wantKind(t, err, core.ErrInvalid, "UpdatePolicy with standby above max_instances")
	if got := mustGetService(t, s, "hello").Policy; got.Standby != 2 {
		t.Fatalf("an invalid standby update changed it: %+v", got)
	}
	if err := s.DeleteService(ctx, "warm"); err != nil {
		t.Fatal(err)
	}

	// keep_previous, min_instances_schedule and singleton (issue 15)
	// round-trip through an update, every read and a create; an empty
	// schedule removes it, and an invalid patch changes nothing.
	keep, sched := core.Duration(90*time.Second), []core.MinWindow{
		{Days: "mon-fri", From: "08:00", To: "18:00", TZ: "Europe/Paris", Min: 2},
		{Days: "sat", From: "22:00", To: "02:00", TZ: "UTC", Min: 1},
	}
	if _, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{KeepPrevious: &keep, MinInstancesSchedule: &sched}); err != nil {
		t.Fatal(err)
	}
	want.KeepPrevious, want.MinInstancesSchedule = keep, sched
	if diff := cmp.Diff(want, mustGetService(t, s, "hello").Policy); diff != "" {
		t.Fatalf("stored keep_previous and schedule (-want +got):\n%s", diff)
	}
	if all, err = s.ListServices(ctx); err != nil || len(all) != 1 {
		t.Fatalf("ListServices: %v, %v", all, err)
	}
	if diff := cmp.Diff(want, all[0].Policy); diff != "" {
		t.Fatalf("listed schedule (-want +got):\n%s", diff)
	}
	badZone := []core.MinWindow{{Days: "mon", From: "08:00", To: "09:00", TZ: "Mars/Olympus", Min: 1}}
	_, err = s.UpdatePolicy(ctx, "hello", core.PolicyPatch{MinInstancesSchedule: &badZone})
	wantKind(t, err, core.ErrInvalid, "UpdatePolicy with an unknown zone")
	none := []core.MinWindow{}
	if _, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{MinInstancesSchedule: &none}); err != nil {
		t.Fatal(err)
	}
	want.MinInstancesSchedule = nil
	if diff := cmp.Diff(want, mustGetService(t, s, "hello").Policy); diff != "" {
		t.Fatalf("schedule after removing it (-want +got):\n%s", diff)
	}
	single := core.DefaultPolicy()
	single.Singleton, single.MaxInstances, single.KeepPrevious = true, 1, 0
	single.MinInstancesSchedule = sched[:1]
	single.MinInstancesSchedule[0].Min = 1
	if created, err = s.CreateService(ctx, core.Service{Name: "single", Policy: single}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(single, mustGetService(t, s, "single").Policy); diff != "" || !cmp.Equal(created.Policy, single) {
		t.Fatalf("created singleton policy (-want +got):\n%s", diff)
	}
	ten := 10
	_, err = s.UpdatePolicy(ctx, "single", core.PolicyPatch{MaxInstances: &ten})
	wantKind(t, err, core.ErrInvalid, "UpdatePolicy of a singleton to max_instances 10")
	if got := mustGetService(t, s, "single").Policy; !got.Singleton || got.MaxInstances != 1 {
		t.Fatalf("an invalid singleton update changed it: %+v", got)
	}
	if err := s.DeleteService(ctx, "single"); err != nil {
		t.Fatal(err)
	}
	versions := mustVersions(t, s, "hello")
	if len(versions) != 1 {
		t.Fatalf("policy change created versions: got %d, want 1", len(versions))
	}
}

func testVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustService(t, s, "other")
	spec := core.VersionSpec{
		Image: "hello:1", Port: 9000, Env: []string{"Z=1", "A=2", "M=three=3"},
		Command: []string{"/server"}, Args: []string{"-v"}, MemoryLimit: 256 << 20, CPULimit: 0.5,
		MaxConcurrency: 10, Timeout: core.Duration(30 * time.Second), ReadinessPath: "/healthz", Description: "first",
		Liveness: &core.Probe{Path: "/live", Period: core.Duration(5 * time.Second), Timeout: core.Duration(500 * time.Millisecond), FailureThreshold: 2},
	}
	v1, err := s.CreateVersion(ctx, core.Version{Service: "hello", ImageID: "sha256:abc", VersionSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if v1.Number != 1 || v1.ID == 0 || v1.Service != "hello" || v1.CreatedAt.IsZero() {
		t.Fatalf("first version identity: %+v", v1)
	}
	if diff := cmp.Diff(spec, v1.VersionSpec); diff != "" {
		t.Fatalf("spec (-want +got):\n%s", diff)
	}
	got, err := s.GetVersion(ctx, "hello", 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v1, got, cmpopts.EquateApproxTime(time.Millisecond)); diff != "" {
		t.Fatalf("GetVersion (-created +got):\n%s", diff)
	}
	byID, err := s.GetVersionByID(ctx, v1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v1, byID, cmpopts.EquateApproxTime(time.Millisecond)); diff != "" {
		t.Fatalf("GetVersionByID (-created +got):\n%s", diff)
	}

	// The first version of a service gets 100%.
	tr, err := s.GetTraffic(ctx, "hello")
	if err != nil {
		t.Fatalf("first version got no traffic: %v", err)
	}
	if diff := cmp.Diff([]core.Weight{{Version: 1, Percent: 100}}, tr.Weights); diff != "" {
		t.Fatalf("initial traffic (-want +got):\n%s", diff)
	}

	// Defaults apply; later versions never change traffic.
	o1 := mustVersion(t, s, "other", "other:1")
	v2 := mustVersion(t, s, "hello", "hello:2")
	if v2.Number != 2 || v2.Port != core.DefaultPort || v2.Timeout != core.DefaultTimeout || v2.Liveness != nil {
		t.Fatalf("second version: number %d port %d timeout %s liveness %+v", v2.Number, v2.Port, v2.Timeout, v2.Liveness)
	}
	// A liveness probe given in part gets its defaults, stored as given.
	tcp, err := s.CreateVersion(ctx, core.Version{Service: "other", VersionSpec: core.VersionSpec{Image: "other:2", Liveness: &core.Probe{}}})
	if err != nil {
		t.Fatal(err)
	}
	wantProbe := core.Probe{Period: core.DefaultProbePeriod, Timeout: core.DefaultProbeTimeout, FailureThreshold: core.DefaultProbeThreshold}
	if got, err := s.GetVersion(ctx, "other", tcp.Number); err != nil || got.Liveness == nil || *got.Liveness != wantProbe {
		t.Fatalf("a TCP liveness probe with defaults came back as %+v, %v; want %+v", got.Liveness, err, wantProbe)
	}
	if o1.Number != 1 || o1.ID <= v1.ID || v2.ID <= o1.ID {
		t.Fatalf("global IDs must increase across services: v1 %d, other v1 %d, v2 %d", v1.ID, o1.ID, v2.ID)
	}
	hist, err := s.TrafficHistory(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 {
		t.Fatalf("creating v2 changed traffic: %d entries, want 1", len(hist))
	}
	list, err := s.ListVersions(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Number != 1 || list[1].Number != 2 {
		t.Fatalf("ListVersions: %+v", list)
	}
}

func testVersionErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	_, err := s.CreateVersion(ctx, core.Version{Service: "missing", VersionSpec: core.VersionSpec{Image: "x:1"}})
	wantKind(t, err, core.ErrNotFound, "CreateVersion of a missing service")
	_, err = s.CreateVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:1", Port: -1}})
	wantKind(t, err, core.ErrInvalid, "CreateVersion with port -1")
	_, err = s.CreateVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:1", Env: []string{"A=1", "A=2"}}})
	wantKind(t, err, core.ErrInvalid, "CreateVersion with duplicate env")
	list, err := s.ListVersions(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("failed creates left %d versions", len(list))
	}
	if _, err := s.GetTraffic(ctx, "hello"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("failed creates set traffic: %v", err)
	}
	// A failed create does not use up a number.
	if v := mustVersion(t, s, "hello", "x:1"); v.Number != 1 {
		t.Fatalf("number after failed creates: got %d, want 1", v.Number)
	}
	_, err = s.GetVersion(ctx, "hello", 7)
	wantKind(t, err, core.ErrNotFound, "GetVersion(7)")
	_, err = s.GetVersion(ctx, "missing", 1)
	wantKind(t, err, core.ErrNotFound, "GetVersion of a missing service")
	_, err = s.GetVersionByID(ctx, 999999)
	wantKind(t, err, core.ErrNotFound, "GetVersionByID(999999)")
	_, err = s.ListVersions(ctx, "missing")
	wantKind(t, err, core.ErrNotFound, "ListVersions of a missing service")
}

func testVersionNumbersNeverReused(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustVersion(t, s, "hello", "x:1")
	mustVersion(t, s, "hello", "x:2")
	if err := s.DeleteVersion(ctx, "hello", 2); err != nil {
		t.Fatal(err)
	}
	if v := mustVersion(t, s, "hello", "x:3"); v.Number != 3 {
		t.Fatalf("number after deleting v2: got %d, want 3", v.Number)
	}
}

func testDeleteVersion(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustVersion(t, s, "hello", "x:1")
	mustVersion(t, s, "hello", "x:2")
	mustVersion(t, s, "hello", "x:3")
	wantKind(t, s.DeleteVersion(ctx, "hello", 1), core.ErrConflict, "delete the version with 100%")
	if _, err := s.SetTraffic(ctx, "hello", core.Traffic{
		Weights: []core.Weight{{Version: 1, Percent: 100}, {Version: 2, Percent: 0}},
		Tags:    map[string]int{"canary": 3},
	}, 0); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.DeleteVersion(ctx, "hello", 3), core.ErrConflict, "delete a tagged version")
	if err := s.DeleteVersion(ctx, "hello", 2); err != nil {
		t.Fatalf("delete a 0%% version: %v", err)
	}
	wantKind(t, s.DeleteVersion(ctx, "hello", 2), core.ErrNotFound, "delete it again")
	wantKind(t, s.DeleteVersion(ctx, "missing", 1), core.ErrNotFound, "delete in a missing service")
	list := mustVersions(t, s, "hello")
	if len(list) != 2 {
		t.Fatalf("got %d versions, want 2", len(list))
	}
}

func testTraffic(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	for i := 1; i <= 3; i++ {
		mustVersion(t, s, "hello", fmt.Sprintf("x:%d", i))
	}
	want := core.Traffic{
		Weights: []core.Weight{{Version: 1, Percent: 10}, {Version: 2, Percent: 30}, {Version: 3, Percent: 60}},
		Tags:    map[string]int{"canary": 3, "stable": 1},
		Sticky:  true,
		Message: "split",
	}
	e, err := s.SetTraffic(ctx, "hello", want, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID == 0 || e.Service != "hello" || e.CreatedAt.IsZero() {
		t.Fatalf("entry identity: %+v", e)
	}
	if diff := cmp.Diff(want, e.Traffic); diff != "" {
		t.Fatalf("SetTraffic (-want +got):\n%s", diff)
	}
	cur, err := s.GetTraffic(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, cur, cmpopts.EquateApproxTime(time.Millisecond)); diff != "" {
		t.Fatalf("GetTraffic (-set +got):\n%s", diff)
	}
	hist, err := s.TrafficHistory(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].ID >= hist[1].ID || hist[1].ID != e.ID {
		t.Fatalf("history must be oldest first and end with the new entry: %+v", hist)
	}
	if hist[0].Tags == nil || hist[0].Weights == nil {
		t.Fatalf("entries must carry empty collections, not nil: %+v", hist[0])
	}
}

func testTrafficErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustService(t, s, "other")
	mustVersion(t, s, "hello", "x:1")
	mustVersion(t, s, "hello", "x:2")
	mustVersion(t, s, "other", "y:1")
	mustVersion(t, s, "other", "y:2")
	mustVersion(t, s, "other", "y:3")
	cases := []struct {
		name string
		t    core.Traffic
	}{
		{"sum below 100", core.Traffic{Weights: weights(1, 50, 2, 40)}},
		{"sum above 100", core.Traffic{Weights: weights(1, 60, 2, 50)}},
		{"negative", core.Traffic{Weights: weights(1, 110, 2, -10)}},
		{"version of another service", core.Traffic{Weights: weights(3, 100)}},
		{"duplicate", core.Traffic{Weights: weights(1, 50, 1, 50)}},
		{"empty", core.Traffic{}},
		{"tag to missing version", core.Traffic{Weights: weights(1, 100), Tags: map[string]int{"canary": 9}}},
		{"bad tag", core.Traffic{Weights: weights(1, 100), Tags: map[string]int{"Canary": 1}}},
	}
	for _, tc := range cases {
		_, err := s.SetTraffic(ctx, "hello", tc.t, 0)
		wantKind(t, err, core.ErrInvalid, tc.name)
	}
	hist := mustHistory(t, s, "hello")
	if len(hist) != 1 {
		t.Fatalf("invalid updates appended entries: got %d, want 1", len(hist))
	}
	_, err := s.SetTraffic(ctx, "missing", core.Traffic{Weights: weights(1, 100)}, 0)
	wantKind(t, err, core.ErrNotFound, "SetTraffic of a missing service")
	_, err = s.GetTraffic(ctx, "missing")
	wantKind(t, err, core.ErrNotFound, "GetTraffic of a missing service")
	_, err = s.TrafficHistory(ctx, "missing")
	wantKind(t, err, core.ErrNotFound, "TrafficHistory of a missing service")
	mustService(t, s, "empty")
	_, err = s.GetTraffic(ctx, "empty")
	wantKind(t, err, core.ErrNotFound, "GetTraffic of a service without versions")
}

func testRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustService(t, s, "other")
	mustVersion(t, s, "hello", "x:1")
	_, err := s.RollbackTraffic(ctx, "hello", 0, 0)
	wantKind(t, err, core.ErrConflict, "rollback with one entry")
	mustVersion(t, s, "hello", "x:2")
	mustVersion(t, s, "hello", "x:3")
	split, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 90, 2, 10), Tags: map[string]int{"canary": 2}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(2, 100)}, 0); err != nil {
		t.Fatal(err)
	}
	rb, err := s.RollbackTraffic(ctx, "hello", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(split.Weights, rb.Weights); diff != "" {
		t.Fatalf("rollback weights (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(split.Tags, rb.Tags); diff != "" {
		t.Fatalf("rollback tags (-want +got):\n%s", diff)
	}
	if rb.ID <= split.ID {
		t.Fatalf("rollback must append a new entry: got ID %d after %d", rb.ID, split.ID)
	}
	hist := mustHistory(t, s, "hello")
	first := hist[0]
	back, err := s.RollbackTraffic(ctx, "hello", first.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first.Weights, back.Weights); diff != "" {
		t.Fatalf("rollback to entry %d (-want +got):\n%s", first.ID, diff)
	}
	mustVersion(t, s, "other", "y:1")
	otherEntry := mustTraffic(t, s, "other")
	_, err = s.RollbackTraffic(ctx, "hello", otherEntry.ID, 0)
	wantKind(t, err, core.ErrNotFound, "rollback to another service's entry")

	// An entry that names a deleted version cannot come back.
	if _, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(3, 100)}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 100)}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVersion(ctx, "hello", 3); err != nil {
		t.Fatal(err)
	}
	before := mustHistory(t, s, "hello")
	_, err = s.RollbackTraffic(ctx, "hello", 0, 0)
	wantKind(t, err, core.ErrConflict, "rollback to an entry naming a deleted version")
	after := mustHistory(t, s, "hello")
	if len(after) != len(before) {
		t.Fatalf("failed rollback appended an entry")
	}
	_, err = s.RollbackTraffic(ctx, "missing", 0, 0)
	wantKind(t, err, core.ErrNotFound, "rollback of a missing service")
}

func testDeleteServiceCascades(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	v := mustVersion(t, s, "hello", "x:1")
	if err := s.DeleteService(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetVersionByID(ctx, v.ID)
	wantKind(t, err, core.ErrNotFound, "version of a deleted service")
	mustService(t, s, "hello")
	v2 := mustVersion(t, s, "hello", "x:1")
	if v2.Number != 1 || v2.ID == v.ID {
		t.Fatalf("recreated service: version number %d ID %d (old ID %d)", v2.Number, v2.ID, v.ID)
	}
	hist, err := s.TrafficHistory(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 {
		t.Fatalf("recreated service inherited history: %d entries", len(hist))
	}
}

// testConcurrentTraffic: 20 concurrent updates lose no entry and each is valid.
func testConcurrentTraffic(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	for i := 1; i <= 4; i++ {
		mustVersion(t, s, "hello", fmt.Sprintf("x:%d", i))
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := i * 5 % 101
			_, err := s.SetTraffic(ctx, "hello", core.Traffic{
				Weights: weights(1+i%4, a, 1+(i+1)%4, 100-a),
				Message: fmt.Sprintf("update %d", i),
			}, 0)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent SetTraffic: %v", err)
		}
	}
	hist, err := s.TrafficHistory(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != n+1 {
		t.Fatalf("history has %d entries, want %d", len(hist), n+1)
	}
	seen := map[string]bool{}
	for _, e := range hist[1:] {
		if err := e.Validate("hello", func(n int) bool { return n >= 1 && n <= 4 }); err != nil {
			t.Fatalf("entry %d is invalid: %v", e.ID, err)
		}
		seen[e.Message] = true
	}
	if len(seen) != n {
		t.Fatalf("got %d distinct updates, want %d", len(seen), n)
	}
}

func testConcurrentVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	const n = 10
	var wg sync.WaitGroup
	numbers := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.CreateVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: fmt.Sprintf("x:%d", i)}})
			if err != nil {
				t.Errorf("concurrent CreateVersion: %v", err)
				return
			}
			numbers <- v.Number
		}()
	}
	wg.Wait()
	close(numbers)
	seen := map[int]bool{}
	for num := range numbers {
		if seen[num] || num < 1 || num > n {
			t.Fatalf("number %d assigned twice or out of range", num)
		}
		seen[num] = true
	}
	hist := mustHistory(t, s, "hello")
	if len(hist) != 1 {
		t.Fatalf("concurrent first versions made %d initial entries, want 1", len(hist))
	}
}

// weights builds a weight list from version, percent pairs.
func weights(pairs ...int) []core.Weight {
	out := make([]core.Weight, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, core.Weight{Version: pairs[i], Percent: pairs[i+1]})
	}
	return out
}
