package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
	"github.com/wisp-run/wisp/internal/runtime"
)

// countingBuilder builds every image at once and counts the builds, so a
// test of wisp deploy needs no engine.
type countingBuilder struct{ builds atomic.Int32 }

func (b *countingBuilder) Build(context.Context, runtime.BuildRequest, func(string)) (string, error) {
	return "sha256:built" + strconv.Itoa(int(b.builds.Add(1))), nil
}
func (*countingBuilder) FindImage(context.Context, map[string]string) (string, bool, error) {
	return "", false, nil
}
func (*countingBuilder) InspectImage(context.Context, string) (runtime.ImageInfo, error) {
	return runtime.ImageInfo{}, core.NotFoundf("no such image")
}
func (*countingBuilder) TagImage(context.Context, string, string) error { return nil }

// sourceDir writes a Dockerfile whose content differs by n, so every deploy
// is a new build.
func sourceDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	body := "FROM scratch\nLABEL n=" + strconv.Itoa(n) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDeployRollout: wisp deploy --rollout checks its rollout flags before
// anything is built; a service's first version gets all traffic with a
// note and no rollout; a later one is deployed without traffic and its
// rollout starts with the flags' settings; a deploy --rollout while a
// rollout is active is refused before the build.
func TestDeployRollout(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	b := &countingBuilder{}
	e := startEnv(t, cfg, daemon.Options{Out: io.Discard, Runtime: newFake(), Builder: b})

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--steps", "50,25"}, "--steps 50,25: steps must increase strictly: steps[1] is 25 after 50"},
		{[]string{"--steps", "10,50"}, "--steps 10,50: the last step must be 100"},
		{[]string{"--steps", "ten,100"}, `--steps "ten,100": "ten" is not a whole percent`},
		{[]string{"--max-error-rate", "200%"}, "--max-error-rate 200%: max_error_rate must be a percent from 0 to 100, got 200"},
		{[]string{"--max-error-rate", "lots"}, `--max-error-rate "lots" is not a percent`},
		{[]string{"--interval", "2h"}, "--interval 2h: interval must be between 1s and 1h0m0s, got 2h0m0s"},
		{[]string{"--max-p99-ratio", "0.5"}, "--max-p99-ratio 0.5: max_p99_ratio must be 0 (no comparison) or between 1 and 100"},
		{[]string{"--min-requests", "-1"}, "--min-requests -1: min_requests must be between 1 and 1000000"},
		{[]string{"--canary", "10"}, "--rollout moves traffic itself: leave out --no-promote and --canary"},
	} {
		code, _, errOut := e.run(append([]string{"deploy", "hello", sourceDir(t, 1), "--rollout"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Fatalf("%v: exit %d %q, want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if n := b.builds.Load(); n != 0 {
		t.Fatalf("bad rollout flags built %d images, want none", n)
	}
	if code, _, errOut := e.run("service", "get", "hello"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("bad rollout flags created the service: exit %d %q", code, errOut)
	}

	// The first version: all traffic, a note, no rollout.
	code, out, errOut := e.run("deploy", "hello", sourceDir(t, 1), "--rollout", "--steps", "10,50,100")
	if code != 0 {
		t.Fatalf("first deploy: exit %d\n%s\n%s", code, out, errOut)
	}
	if want := "Note: v1 is the first version of hello and gets all traffic; there is nothing to roll out from"; !strings.Contains(errOut, want) {
		t.Fatalf("first deploy does not say %q:\n%s", want, errOut)
	}
	if !strings.Contains(out, "v1 100%") || !strings.Contains(out, "none: the first version gets all traffic") {
		t.Fatalf("first deploy's summary:\n%s", out)
	}
	if code, _, errOut := e.run("rollout", "get", "hello"); code != 1 || !strings.Contains(errOut, "service hello has no rollout") {
		t.Fatalf("the first version started a rollout: exit %d %q", code, errOut)
	}

	// The second: built, deployed without traffic, then rolled out with the
	// flags' settings.
	code, out, errOut = e.run("deploy", "hello", sourceDir(t, 2), "--rollout", "--steps", "10,50,100", "--interval", "2m",
		"--max-error-rate", "2.5%", "--max-p99", "300ms", "--max-p99-ratio", "2", "--min-requests", "50")
	if code != 0 {
		t.Fatalf("second deploy: exit %d\n%s\n%s", code, out, errOut)
	}
	if b.builds.Load() != 2 {
		t.Fatalf("%d builds, want 2", b.builds.Load())
	}
	if !strings.Contains(out, "step 1/3, 10%, steps 10,50,100 every 2m0s") || !strings.Contains(out, "v1 90%, v2 10%") {
		t.Fatalf("second deploy's summary does not show the rollout and its first step:\n%s", out)
	}
	var ro core.Rollout
	if err := json.Unmarshal([]byte(e.ok("rollout", "get", "hello", "-o", "json")), &ro); err != nil {
		t.Fatal(err)
	}
	if ro.To != 2 || ro.State != core.RolloutRunning || ro.Step != 1 || core.RolloutSteps(ro.Steps) != "10,50,100" ||
		ro.Interval != core.Duration(2*time.Minute) || *ro.MaxErrorRate != 2.5 || ro.MaxP99 != core.Duration(300*time.Millisecond) ||
		*ro.MaxP99Ratio != 2 || ro.MinRequests != 50 || len(ro.Replaces) != 1 || ro.Replaces[0] != 1 {
		t.Fatalf("rollout %+v, want to v2, running at step 1 with the flags' settings, replacing v1", ro)
	}
	hist := e.ok("traffic", "history", "hello")
	if !strings.Contains(hist, "rollout "+strconv.FormatInt(ro.ID, 10)+": step 1/3, 10% to version 2") {
		t.Fatalf("history does not show the rollout's first step:\n%s", hist)
	}

	// A third while that rollout runs: refused before the build.
	code, _, errOut = e.run("deploy", "hello", sourceDir(t, 3), "--rollout")
	if want := "service hello has rollout " + strconv.FormatInt(ro.ID, 10) + " running (to version 2, step 1/3); promote or abort it"; code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("deploy --rollout during a rollout: exit %d %q, want 1 and %q", code, errOut, want)
	}
	if b.builds.Load() != 2 {
		t.Fatalf("a refused deploy built: %d builds, want 2", b.builds.Load())
	}
	// Without --rollout a deploy still goes ahead (and changes the traffic
	// under the rollout, which then pauses: docs/rollouts.md).
	e.ok("deploy", "hello", sourceDir(t, 3), "--no-promote")
	if b.builds.Load() != 3 {
		t.Fatalf("%d builds, want 3", b.builds.Load())
	}
}

// TestRolloutStartFlags: wisp rollout start refuses bad flags itself,
// naming the flag, before it calls the daemon.
func TestRolloutStartFlags(t *testing.T) {
	e := newEnv(t)
	e.ok("service", "create", "hello")
	e.ok("version", "create", "hello", "--image", "hello:1")
	e.ok("version", "create", "hello", "--image", "hello:2")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--steps", "5,5,100"}, "--steps 5,5,100: steps must increase strictly"},
		{[]string{"--steps", "0,100"}, "--steps 0,100: steps[0] is 0; every step is a percent from 1 to 100"},
		{[]string{"--max-p99", "1h"}, "--max-p99 1h: max_p99 must be 0 (no bound) or between 1ms and 10m"},
		{[]string{"--interval", "0s"}, "--interval 0s: interval must be between 1s and 1h"},
	} {
		code, _, errOut := e.run(append([]string{"rollout", "start", "hello", "--to", "2"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Fatalf("%v: exit %d %q, want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if out := e.ok("rollout", "start", "hello", "--to", "2", "--steps", "20,100"); !strings.Contains(out, "1/2 (20%), steps 20,100") {
		t.Fatalf("rollout start:\n%s", out)
	}
}
