package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

func testDeployVersion(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	src := &core.Source{BuildID: 7, Digest: "sha256:abc", GitCommit: "0123456789abcdef0123456789abcdef01234567", GitDescribe: "v1.0.0-2-g0123456"}

	// A first version gets 100% even when not promoted.
	v1, err := s.DeployVersion(ctx, core.Version{Service: "hello", ImageID: "sha256:1", Source: src,
		VersionSpec: core.VersionSpec{Image: "hello:a"}}, 0, "deploy a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(src, v1.Source); diff != "" {
		t.Fatalf("returned source (-want +got):\n%s", diff)
	}
	got, err := s.GetVersion(ctx, "hello", v1.Number)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(src, got.Source); diff != "" {
		t.Fatalf("stored source (-want +got):\n%s", diff)
	}
	wantTraffic(t, s, "hello", weights(1, 100), "deploy a")

	// A canary of 10 scales the rest; tags and stickiness stay.
	if _, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 100), Tags: map[string]int{"stable": 1}, Sticky: true}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "hello:b"}}, 10, "canary b"); err != nil {
		t.Fatal(err)
	}
	cur := wantTraffic(t, s, "hello", weights(1, 90, 2, 10), "canary b")
	if !cur.Sticky || cur.Tags["stable"] != 1 {
		t.Fatalf("tags and stickiness must stay: %+v", cur)
	}
	// Not promoted: traffic unchanged, no new entry.
	before := mustHistory(t, s, "hello")
	v3, err := s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "hello:c"}}, 0, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	if v3.Source != nil {
		t.Fatalf("a version without a source must have none, got %+v", v3.Source)
	}
	after := mustHistory(t, s, "hello")
	if len(after) != len(before) {
		t.Fatalf("an unpromoted deploy appended traffic: %d entries, had %d", len(after), len(before))
	}
	// 100%: all of it.
	if _, err := s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "hello:d"}}, 100, "all d"); err != nil {
		t.Fatal(err)
	}
	wantTraffic(t, s, "hello", weights(4, 100), "all d")

	// Failures change nothing.
	_, err = s.DeployVersion(ctx, core.Version{Service: "nope", VersionSpec: core.VersionSpec{Image: "x:1"}}, 100, "")
	wantKind(t, err, core.ErrNotFound, "deploy to a missing service")
	_, err = s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:1", Port: -1}}, 100, "")
	wantKind(t, err, core.ErrInvalid, "deploy an invalid spec")
	_, err = s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:1"}}, 101, "")
	wantKind(t, err, core.ErrInvalid, "deploy with 101%")
	list := mustVersions(t, s, "hello")
	if len(list) != 4 {
		t.Fatalf("failed deploys must create no version: %d versions", len(list))
	}
}

func wantTraffic(t *testing.T, s store.Store, service string, want []core.Weight, message string) core.TrafficEntry {
	t.Helper()
	cur, err := s.GetTraffic(t.Context(), service)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, cur.Weights); diff != "" || cur.Message != message {
		t.Fatalf("traffic (-want +got):\n%s\nmessage %q, want %q", diff, cur.Message, message)
	}
	return cur
}

func testBuilds(t *testing.T, s store.Store) {
	ctx := t.Context()
	b, err := s.CreateBuild(ctx, core.Build{Service: "hello", Runtime: "go", Promote: 10,
		Source: core.Source{GitCommit: "0123456789abcdef0123456789abcdef01234567", GitDescribe: "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if b.ID == 0 || b.Status != core.BuildQueued || b.CreatedAt.IsZero() || b.StartedAt != nil || b.FinishedAt != nil {
		t.Fatalf("new build: %+v", b)
	}
	other, err := s.CreateBuild(ctx, core.Build{Service: "other", Runtime: "node", Promote: 100})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Truncate(time.Millisecond)
	b.Status, b.StartedAt, b.Digest = core.BuildRunning, &start, "sha256:d"
	if err := s.UpdateBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	end := start.Add(1500 * time.Millisecond)
	b.Status, b.FinishedAt, b.Image, b.ImageID, b.Reused, b.Version = core.BuildSucceeded, &end, "hello:v1", "sha256:i", true, 3
	if err := s.UpdateBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetBuild(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, got); diff != "" {
		t.Fatalf("GetBuild (-want +got):\n%s", diff)
	}
	if d := got.Duration(time.Now()); d != 1500*time.Millisecond {
		t.Fatalf("duration %s, want 1.5s", d)
	}
	// A finished build never changes.
	b.Status = core.BuildFailed
	wantKind(t, s.UpdateBuild(ctx, b), core.ErrConflict, "update a finished build")
	wantKind(t, s.UpdateBuild(ctx, core.Build{ID: 999, Status: core.BuildRunning}), core.ErrNotFound, "update a missing build")
	_, err = s.GetBuild(ctx, 999)
	wantKind(t, err, core.ErrNotFound, "get a missing build")

	// Logs.
	if err := s.SetBuildLog(ctx, b.ID, []byte("Step 1/2 : FROM scratch\n")); err != nil {
		t.Fatal(err)
	}
	log, err := s.BuildLog(ctx, b.ID)
	if err != nil || string(log) != "Step 1/2 : FROM scratch\n" {
		t.Fatalf("BuildLog = %q, %v", log, err)
	}
	if log, err := s.BuildLog(ctx, other.ID); err != nil || len(log) != 0 {
		t.Fatalf("a build without output has an empty log: %q, %v", log, err)
	}
	wantKind(t, s.SetBuildLog(ctx, 999, nil), core.ErrNotFound, "log of a missing build")
	_, err = s.BuildLog(ctx, 999)
	wantKind(t, err, core.ErrNotFound, "read the log of a missing build")

	// Lists, newest first.
	all, err := s.ListBuilds(ctx, "", 0)
	if err != nil || len(all) != 2 || all[0].ID != other.ID {
		t.Fatalf("ListBuilds(all) = %+v, %v", all, err)
	}
	mine, err := s.ListBuilds(ctx, "hello", 10)
	if err != nil || len(mine) != 1 || mine[0].ID != b.ID {
		t.Fatalf("ListBuilds(hello) = %+v, %v", mine, err)
	}
	if one, err := s.ListBuilds(ctx, "", 1); err != nil || len(one) != 1 {
		t.Fatalf("ListBuilds with limit 1 = %+v, %v; want one build", one, err)
	}

	// A restart fails what was left unfinished, and only that.
	n, err := s.FailUnfinishedBuilds(ctx, "the daemon stopped during the build")
	if err != nil || n != 1 {
		t.Fatalf("FailUnfinishedBuilds = %d, %v; want 1", n, err)
	}
	o, err := s.GetBuild(ctx, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != core.BuildFailed || o.Error != "the daemon stopped during the build" || o.FinishedAt == nil {
		t.Fatalf("unfinished build after restart: %+v", o)
	}
	if again, err := s.GetBuild(ctx, b.ID); err != nil || again.Status != core.BuildSucceeded {
		t.Fatalf("a finished build changed: %+v, %v", again, err)
	}
}
