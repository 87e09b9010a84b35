package core_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
)

// versions returns an exists func for the given version numbers.
func versions(numbers ...int) func(int) bool {
	return func(n int) bool {
		for _, m := range numbers {
			if m == n {
				return true
			}
		}
		return false
	}
}

func w(pairs ...int) []core.Weight {
	out := []core.Weight{}
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, core.Weight{Version: pairs[i], Percent: pairs[i+1]})
	}
	return out
}

func entry(id int64, t core.Traffic) *core.TrafficEntry {
	return &core.TrafficEntry{ID: id, Service: "hello", Traffic: t.Normalize(), CreatedAt: time.Unix(1, 0)}
}

// wantErr checks err against a kind and a message fragment; a nil kind
// means no error.
func wantErr(t *testing.T, err, kind error, msg string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	if !errors.Is(err, kind) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got error %v, want kind %v containing %q", err, kind, msg)
	}
}

func TestCheckNewService(t *testing.T) {
	cases := []struct {
		name string
		sv   core.Service
		kind error
		msg  string
	}{
		{"valid", core.Service{Name: "hello", Policy: core.DefaultPolicy()}, nil, ""},
		{"bad name", core.Service{Name: "Hello", Policy: core.DefaultPolicy()}, core.ErrInvalid, "lowercase letter"},
		{"zero policy", core.Service{Name: "hello"}, core.ErrInvalid, "max_instances"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, core.CheckNewService(tc.sv), tc.kind, tc.msg) })
	}
}

func TestPatchPolicy(t *testing.T) {
	one, big, idle := 1, 100000, core.Duration(2*time.Second)
	cur := core.DefaultPolicy()
	want := cur
	want.MinInstances, want.IdleTimeout = 1, idle
	on, mib, small, huge := true, int64(1<<20), int64(1<<20-1), int64(10<<30+1)
	hour, short, long := core.Duration(time.Hour), core.Duration(59*time.Second), core.Duration(91*24*time.Hour)
	logs := cur
	logs.RequestLogs, logs.LogMaxBytes, logs.LogMaxAge = true, mib, hour
	if cur.RequestLogs || cur.LogMaxBytes != core.DefaultLogMaxBytes || cur.LogMaxAge.Std() != core.DefaultLogMaxAge {
		t.Fatalf("default policy %+v: want request logs off, 50 MiB and 168h", cur)
	}
	if cur.AsyncConcurrency != 10 || cur.MaxAttempts != 5 || cur.MinBackoff.Std() != time.Second ||
		cur.MaxBackoff.Std() != 5*time.Minute || cur.MaxAge.Std() != 24*time.Hour {
		t.Fatalf("default policy %+v: want async concurrency 10, 5 attempts, backoff 1s..5m, max age 24h", cur)
	}
	conc, attempts, minB, maxB, age := 50, 3, core.Duration(100*time.Millisecond), core.Duration(time.Minute), core.Duration(2*time.Hour)
	async := cur
	async.AsyncConcurrency, async.MaxAttempts, async.MinBackoff, async.MaxBackoff, async.MaxAge = conc, attempts, minB, maxB, age
	zero, tooMany, tooManyAttempts := 0, 1001, 101
	ms, twoHours, dayAndMore := core.Duration(9*time.Millisecond), core.Duration(2*time.Hour), core.Duration(24*time.Hour+1)
	halfSec, week, weekAndMore := core.Duration(500*time.Millisecond), core.Duration(7*24*time.Hour), core.Duration(7*24*time.Hour+1)
	weekAge := cur
	weekAge.MaxAge = week
	two, seventeen, negative, three := 2, 17, -1, 3
	standby := cur
	standby.Standby = 2
	standbyAll := cur
	standbyAll.Standby, standbyAll.MaxInstances = 3, 3
	cases := []struct {
		name  string
		patch core.PolicyPatch
		want  core.ScalingPolicy
		kind  error
		msg   string
	}{
		{"fields change", core.PolicyPatch{MinInstances: &one, IdleTimeout: &idle}, want, nil, ""},
		{"empty patch keeps the policy", core.PolicyPatch{}, cur, nil, ""},
		{"out of bounds", core.PolicyPatch{MaxInstances: &big}, cur, core.ErrInvalid, "max_instances must be between 1"},
		{"logs", core.PolicyPatch{RequestLogs: &on, LogMaxBytes: &mib, LogMaxAge: &hour}, logs, nil, ""},
		{"log bytes below 1 MiB", core.PolicyPatch{LogMaxBytes: &small}, cur, core.ErrInvalid, "log_max_bytes must be between 1 MiB"},
		{"log bytes above 10 GiB", core.PolicyPatch{LogMaxBytes: &huge}, cur, core.ErrInvalid, "log_max_bytes must be between 1 MiB"},
		{"log age below 1m", core.PolicyPatch{LogMaxAge: &short}, cur, core.ErrInvalid, "log_max_age must be between 1m"},
		{"log age above 90 days", core.PolicyPatch{LogMaxAge: &long}, cur, core.ErrInvalid, "log_max_age must be between 1m"},
		{"async", core.PolicyPatch{AsyncConcurrency: &conc, MaxAttempts: &attempts, MinBackoff: &minB, MaxBackoff: &maxB, MaxAge: &age}, async, nil, ""},
		{"standby", core.PolicyPatch{Standby: &two}, standby, nil, ""},
		{"standby equal to max_instances", core.PolicyPatch{Standby: &three, MaxInstances: &three}, standbyAll, nil, ""},
		{"standby negative", core.PolicyPatch{Standby: &negative}, cur, core.ErrInvalid, "standby must be between 0 and 16, got -1"},
		{"standby above 16", core.PolicyPatch{Standby: &seventeen}, cur, core.ErrInvalid, "standby must be between 0 and 16, got 17"},
		{"standby above max_instances", core.PolicyPatch{Standby: &three, MaxInstances: &two}, cur, core.ErrInvalid, "standby (3) must not exceed max_instances (2)"},
		{"max age of 7 days", core.PolicyPatch{MaxAge: &week}, weekAge, nil, ""},
		{"async concurrency 0", core.PolicyPatch{AsyncConcurrency: &zero}, cur, core.ErrInvalid, "async_concurrency must be between 1 and 1000, got 0"},
		{"async concurrency above 1000", core.PolicyPatch{AsyncConcurrency: &tooMany}, cur, core.ErrInvalid, "async_concurrency must be between 1 and 1000"},
		{"max attempts 0", core.PolicyPatch{MaxAttempts: &zero}, cur, core.ErrInvalid, "max_attempts must be between 1 and 100, got 0"},
		{"max attempts above 100", core.PolicyPatch{MaxAttempts: &tooManyAttempts}, cur, core.ErrInvalid, "max_attempts must be between 1 and 100"},
		{"min backoff below 10ms", core.PolicyPatch{MinBackoff: &ms}, cur, core.ErrInvalid, "min_backoff must be between 10ms and 1h"},
		{"min backoff above 1h", core.PolicyPatch{MinBackoff: &twoHours, MaxBackoff: &twoHours}, cur, core.ErrInvalid, "min_backoff must be between 10ms and 1h"},
		{"max backoff below 10ms", core.PolicyPatch{MaxBackoff: &ms}, cur, core.ErrInvalid, "max_backoff must be between 10ms and 24h"},
		{"max backoff above 24h", core.PolicyPatch{MaxBackoff: &dayAndMore}, cur, core.ErrInvalid, "max_backoff must be between 10ms and 24h"},
		{"max backoff under min backoff", core.PolicyPatch{MinBackoff: &maxB, MaxBackoff: &halfSec}, cur, core.ErrInvalid, "max_backoff (500ms) must not be below min_backoff (1m0s)"},
		{"max age below 1s", core.PolicyPatch{MaxAge: &halfSec}, cur, core.ErrInvalid, "max_age must be between 1s and 168h"},
		{"max age above 7 days", core.PolicyPatch{MaxAge: &weekAndMore}, cur, core.ErrInvalid, "max_age must be between 1s and 168h"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := core.PatchPolicy(cur, tc.patch)
			wantErr(t, err, tc.kind, tc.msg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("policy (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckDeploy(t *testing.T) {
	cases := []struct {
		name    string
		spec    core.VersionSpec
		percent int
		kind    error
		msg     string
	}{
		{"defaults", core.VersionSpec{Image: "hello:1"}, 0, nil, ""},
		{"all", core.VersionSpec{Image: "hello:1"}, 100, nil, ""},
		{"bad spec", core.VersionSpec{Image: "hello:1", Port: -1}, 0, core.ErrInvalid, "port must be between"},
		{"percent above 100", core.VersionSpec{Image: "hello:1"}, 101, core.ErrInvalid, "got 101"},
		{"negative percent", core.VersionSpec{Image: "hello:1"}, -1, core.ErrInvalid, "got -1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := core.CheckDeploy(tc.spec, tc.percent)
			wantErr(t, err, tc.kind, tc.msg)
			if err == nil && (spec.Port != core.DefaultPort || spec.Timeout != core.DefaultTimeout || spec.Env == nil) {
				t.Fatalf("defaults not filled in: %+v", spec)
			}
		})
	}
}

func TestDeployTraffic(t *testing.T) {
	split := core.Traffic{Weights: w(1, 60, 2, 40), Tags: map[string]int{"stable": 1}, Sticky: true}
	cases := []struct {
		name    string
		cur     *core.TrafficEntry
		number  int
		percent int
		message string
		exists  func(int) bool
		want    core.Traffic
		ok      bool
		kind    error
		msg     string
	}{
		{"first version gets 100% with the default message", nil, 1, 0, "", versions(1),
			core.Traffic{Weights: w(1, 100), Tags: map[string]int{}, Message: "first version v1 gets all traffic"}, true, nil, ""},
		{"first version keeps the caller's message", nil, 3, 10, "deploy build 7", versions(3),
			core.Traffic{Weights: w(3, 100), Tags: map[string]int{}, Message: "deploy build 7"}, true, nil, ""},
		{"not promoted leaves traffic", entry(5, split), 3, 0, "quiet", versions(1, 2, 3), core.Traffic{}, false, nil, ""},
		{"canary shifts the rest, keeps tags and stickiness", entry(5, split), 3, 10, "canary", versions(1, 2, 3),
			core.Traffic{Weights: w(1, 54, 2, 36, 3, 10), Tags: map[string]int{"stable": 1}, Sticky: true, Message: "canary"}, true, nil, ""},
		{"100% replaces the split", entry(5, split), 3, 100, "all", versions(1, 2, 3),
			core.Traffic{Weights: w(3, 100), Tags: map[string]int{"stable": 1}, Sticky: true, Message: "all"}, true, nil, ""},
		{"a split that names a missing version is refused", entry(5, split), 3, 10, "", versions(1, 3),
			core.Traffic{}, false, core.ErrInvalid, "has no version 2"},
		{"a message over the limit is refused", nil, 1, 0, strings.Repeat("m", 1025), versions(1),
			core.Traffic{}, false, core.ErrInvalid, "the limit is 1024"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := core.DeployTraffic("hello", tc.cur, tc.number, tc.percent, tc.message, tc.exists)
			wantErr(t, err, tc.kind, tc.msg)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("traffic (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckDeleteVersion(t *testing.T) {
	cur := entry(4, core.Traffic{Weights: w(1, 100, 2, 0), Tags: map[string]int{"canary": 3, "beta": 3}})
	cases := []struct {
		name   string
		cur    *core.TrafficEntry
		number int
		kind   error
		msg    string
	}{
		{"no traffic yet", nil, 1, nil, ""},
		{"0% and untagged", cur, 2, nil, ""},
		{"not in the split", cur, 7, nil, ""},
		{"carries traffic", cur, 1, core.ErrConflict, "carries 100% of traffic"},
		{"tagged", cur, 3, core.ErrConflict, "is tagged beta, canary"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, core.CheckDeleteVersion("hello", tc.number, tc.cur), tc.kind, tc.msg) })
	}
}

func TestCheckTraffic(t *testing.T) {
	got, err := core.CheckTraffic("hello", core.Traffic{Weights: w(1, 100)}, versions(1))
	if err != nil {
		t.Fatal(err)
	}
	if got.Tags == nil || got.Weights == nil {
		t.Fatalf("stored traffic must carry empty collections, not nil: %+v", got)
	}
	_, err = core.CheckTraffic("hello", core.Traffic{Weights: w(1, 50)}, versions(1))
	wantErr(t, err, core.ErrInvalid, "sum to exactly 100, got 50")
}

func TestCheckIfMatch(t *testing.T) {
	cur := entry(12, core.Traffic{Weights: w(1, 100)})
	cases := []struct {
		name    string
		ifEntry int64
		cur     *core.TrafficEntry
		kind    error
		msg     string
	}{
		{"no condition", 0, cur, nil, ""},
		{"no condition, no traffic", 0, nil, nil, ""},
		{"current entry", 12, cur, nil, ""},
		{"stale entry", 11, cur, core.ErrPreconditionFailed, "the current entry is 12, not 11"},
		{"entry of a service without traffic", 3, nil, core.ErrPreconditionFailed, "no traffic entry yet"},
		{"any entry", core.AnyEntry, cur, nil, ""},
		{"any entry, none yet", core.AnyEntry, nil, core.ErrPreconditionFailed, "If-Match: *"},
		{"negative", -7, cur, core.ErrInvalid, "got -7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, core.CheckIfMatch("hello", tc.ifEntry, tc.cur), tc.kind, tc.msg) })
	}
}

func TestRollbackTraffic(t *testing.T) {
	target := entry(3, core.Traffic{Weights: w(1, 90, 2, 10), Tags: map[string]int{"canary": 2}, Sticky: true, Message: "canary"})
	long := entry(3, core.Traffic{Weights: w(1, 100), Message: strings.Repeat("é", 510)}) // 1020 bytes, the most a stored entry may carry is 1024
	cur := entry(5, core.Traffic{Weights: w(2, 100)})
	cases := []struct {
		name   string
		toID   int64
		cur    *core.TrafficEntry
		target *core.TrafficEntry
		exists func(int) bool
		want   core.Traffic
		kind   error
		msg    string
	}{
		{"previous entry", 0, cur, target, versions(1, 2),
			core.Traffic{Weights: w(1, 90, 2, 10), Tags: map[string]int{"canary": 2}, Sticky: true, Message: "rollback to entry 3: canary"}, nil, ""},
		{"named entry without a message", 3, cur, entry(3, core.Traffic{Weights: w(1, 100)}), versions(1),
			core.Traffic{Weights: w(1, 100), Tags: map[string]int{}, Message: "rollback to entry 3"}, nil, ""},
		{"no earlier entry", 0, cur, nil, versions(1), core.Traffic{}, core.ErrConflict, "no earlier traffic entry"},
		{"unknown entry", 9, cur, nil, versions(1), core.Traffic{}, core.ErrNotFound, "no traffic entry 9"},
		{"negative entry", -1, cur, nil, versions(1), core.Traffic{}, core.ErrInvalid, "to_entry must be"},
		{"no traffic yet", 0, nil, nil, versions(1), core.Traffic{}, core.ErrNotFound, "has no traffic yet"},
		{"entry names a deleted version", 0, cur, target, versions(1), core.Traffic{}, core.ErrConflict, "cannot roll back service \"hello\" to traffic entry 3"},
		{"tag names a deleted version", 0, cur, entry(3, core.Traffic{Weights: w(1, 100), Tags: map[string]int{"canary": 2}}), versions(1),
			core.Traffic{}, core.ErrConflict, "has no version 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := core.RollbackTraffic("hello", tc.toID, tc.cur, tc.target, tc.exists)
			wantErr(t, err, tc.kind, tc.msg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("traffic (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a long message is cut to 1024 bytes on a rune boundary", func(t *testing.T) {
		got, err := core.RollbackTraffic("hello", 0, cur, long, versions(1))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Message) > 1024 || len(got.Message) < 1020 || !utf8.ValidString(got.Message) ||
			!strings.HasPrefix(got.Message, "rollback to entry 3: é") {
			t.Fatalf("message of %d bytes (valid UTF-8: %v): %.40q…", len(got.Message), utf8.ValidString(got.Message), got.Message)
		}
		if err := got.Validate("hello", versions(1)); err != nil {
			t.Fatalf("the cut message must be a valid entry: %v", err)
		}
	})
}

func TestStandbyCost(t *testing.T) {
	lim := func(n int, b core.ByteSize) core.Version {
		return core.Version{Number: n, VersionSpec: core.VersionSpec{MemoryLimit: b}}
	}
	cases := []struct {
		name     string
		standby  int
		versions []core.Version
		noPause  bool
		want     string
	}{
		{"none", 0, []core.Version{lim(1, 128<<20)}, false, "none (a version with no traffic for idle_timeout scales to zero)"},
		{"one version", 2, []core.Version{lim(3, 128<<20)}, false,
			"2 paused instance(s) per version with traffic: memory, not CPU; v3: up to 2 × 128Mi (its memory limit) = 256Mi"},
		{"two versions, in order", 1, []core.Version{lim(4, 1<<30), lim(2, 64<<20)}, false,
			"1 paused instance(s) per version with traffic: memory, not CPU; v2: up to 1 × 64Mi (its memory limit) = 64Mi; v4: up to 1 × 1Gi (its memory limit) = 1Gi; in all up to 1088Mi"},
		{"no limit", 1, []core.Version{lim(1, 0), lim(2, 64<<20)}, false,
			"1 paused instance(s) per version with traffic: memory, not CPU; v1: no memory limit, each keeps what it holds resident; v2: up to 1 × 64Mi (its memory limit) = 64Mi"},
		{"no traffic", 1, nil, false, "1 paused instance(s) per version with traffic: memory, not CPU; no version has traffic yet"},
		{"cannot pause", 1, []core.Version{lim(1, 64<<20)}, true,
			"1 paused instance(s) per version with traffic: memory, not CPU; no effect: the runtime cannot pause instances"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := core.StandbyCost(tc.standby, tc.versions, tc.noPause); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTrafficRoutable(t *testing.T) {
	tr := core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 0}, {Version: 2, Percent: 100}}, Tags: map[string]int{"canary": 3}}
	if diff := cmp.Diff(map[int]bool{2: true, 3: true}, tr.Routable()); diff != "" {
		t.Fatalf("routable (-want +got):\n%s", diff)
	}
}
