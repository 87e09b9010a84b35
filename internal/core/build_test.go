package core_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
)

func TestShift(t *testing.T) {
	w := func(pairs ...int) []core.Weight {
		var out []core.Weight
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, core.Weight{Version: pairs[i], Percent: pairs[i+1]})
		}
		return out
	}
	tests := []struct {
		name    string
		from    []core.Weight
		number  int
		percent int
		want    []core.Weight
	}{
		{"all", w(1, 100), 2, 100, w(2, 100)},
		{"canary", w(1, 100), 2, 10, w(1, 90, 2, 10)},
		{"canary over a split", w(1, 50, 2, 50), 3, 10, w(1, 45, 2, 45, 3, 10)},
		{"remainders", w(1, 34, 2, 33, 3, 33), 4, 1, w(1, 33, 2, 33, 3, 33, 4, 1)},
		{"rounding keeps 100", w(1, 1, 2, 99), 3, 50, w(1, 1, 2, 49, 3, 50)},
		{"zero weights dropped", w(1, 0, 2, 100), 3, 20, w(2, 80, 3, 20)},
		{"nothing else carries traffic", w(1, 0), 2, 5, w(2, 100)},
		{"no weights", nil, 1, 30, w(1, 100)},
		{"a share rounds to nothing", w(1, 1, 2, 99), 3, 99, w(2, 1, 3, 99)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from := core.Traffic{Weights: tc.from, Tags: map[string]int{"stable": 1}, Sticky: true}
			got := from.Shift(tc.number, tc.percent, "msg")
			if diff := cmp.Diff(tc.want, got.Weights); diff != "" {
				t.Fatalf("weights (-want +got):\n%s", diff)
			}
			sum := 0
			for _, x := range got.Weights {
				sum += x.Percent
			}
			if sum != 100 || !got.Sticky || got.Tags["stable"] != 1 || got.Message != "msg" {
				t.Fatalf("sum %d, traffic %+v", sum, got)
			}
		})
	}
}

func TestBuildRequestValidate(t *testing.T) {
	pct := func(n int) *int { return &n }
	neg := -1
	ok := core.BuildRequest{Service: "hello", Version: core.VersionSpec{Port: 8080}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	commit := "0123456789abcdef0123456789abcdef01234567"
	bad := []struct {
		name  string
		req   core.BuildRequest
		field string
	}{
		{"no service", core.BuildRequest{}, "service"},
		{"bad service", core.BuildRequest{Service: "Hello!"}, "service"},
		{"image set", core.BuildRequest{Service: "a", Version: core.VersionSpec{Image: "x:1"}}, "version.image"},
		{"bad port", core.BuildRequest{Service: "a", Version: core.VersionSpec{Port: 70000}}, "version.port"},
		{"bad env", core.BuildRequest{Service: "a", Version: core.VersionSpec{Env: []string{"1A=b"}}}, "version.env"},
		{"absolute dockerfile", core.BuildRequest{Service: "a", Dockerfile: "/etc/Dockerfile"}, "dockerfile"},
		{"escaping dockerfile", core.BuildRequest{Service: "a", Dockerfile: "x/../../Dockerfile"}, "dockerfile"},
		{"promote over 100", core.BuildRequest{Service: "a", Promote: pct(101)}, "promote"},
		{"promote negative", core.BuildRequest{Service: "a", Promote: pct(-1)}, "promote"},
		{"bad policy", core.BuildRequest{Service: "a", Policy: &core.PolicyPatch{MinInstances: &neg}}, "policy.min_instances"},
		{"short commit", core.BuildRequest{Service: "a", Git: &core.GitInfo{Commit: "abc"}}, "git.commit"},
		{"bad tag", core.BuildRequest{Service: "a", Git: &core.GitInfo{Commit: commit, Tag: "-x"}}, "git.tag"},
		{"bad describe", core.BuildRequest{Service: "a", Git: &core.GitInfo{Commit: commit, Describe: "a\nb"}}, "git.describe"},
	}
	for _, tc := range bad {
		err := tc.req.Validate()
		if !errors.Is(err, core.ErrInvalid) || core.ErrorField(err) != tc.field {
			t.Errorf("%s: got %v (field %q), want invalid %s", tc.name, err, core.ErrorField(err), tc.field)
		}
	}
}

func TestImageTag(t *testing.T) {
	commit := "0123456789abcdef0123456789abcdef01234567"
	digest := "sha256:fedcba9876543210fedcba9876543210"
	for _, tc := range []struct {
		git  *core.GitInfo
		want string
	}{
		{nil, "src-fedcba987654"},
		{&core.GitInfo{Commit: commit}, "0123456789ab"},
		{&core.GitInfo{Commit: commit, Tag: "v1.2.0"}, "v1.2.0"},
		{&core.GitInfo{Commit: commit, Tag: "v1.2.0", Dirty: true}, "src-fedcba987654"},
	} {
		if got := (core.BuildRequest{Git: tc.git}).ImageTag(digest); got != tc.want {
			t.Errorf("ImageTag(%+v) = %q, want %q", tc.git, got, tc.want)
		}
	}
}
