package core_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

func TestValidateServiceName(t *testing.T) {
	cases := []struct {
		name    string
		wantErr string
	}{
		{"hello", ""},
		{"a", ""},
		{"a1-b2", ""},
		{strings.Repeat("a", 63), ""},
		{"", "required"},
		{strings.Repeat("a", 64), "the limit is 63"},
		{"Hello", "lowercase letter"},
		{"1abc", "lowercase letter"},
		{"-abc", "lowercase letter"},
		{"abc-", "must not end"},
		{"a.b", "'.'"},
		{"a b", "' '"},
		{"héllo", "'é'"},
		{"a--b", `"--"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := core.ValidateServiceName(tc.name)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an invalid error containing %q", err, tc.wantErr)
			}
			if core.ErrorField(err) != "name" {
				t.Fatalf("got field %q, want name", core.ErrorField(err))
			}
		})
	}
}

func TestParseVersionNumber(t *testing.T) {
	for in, want := range map[string]int{"3": 3, "v3": 3, "v12": 12, "0": 0, "v0": 0, "-1": 0, "x": 0, "": 0, "v": 0, "3x": 0} {
		n, ok := core.ParseVersionNumber(in)
		if ok != (want > 0) || (ok && n != want) {
			t.Errorf("ParseVersionNumber(%q) = %d, %v; want %d", in, n, ok, want)
		}
	}
}

func TestValidateTagName(t *testing.T) {
	cases := []struct {
		tag, service, wantErr string
	}{
		{"canary", "hello", ""},
		{"v0", "hello", ""},
		{"v01", "hello", ""},
		{"v3", "hello", "reserved"},
		{"a--b", "hello", `"--"`},
		{strings.Repeat("t", 57), "hello", "too long"},
		{strings.Repeat("t", 56), "hello", ""},
		{"Canary", "hello", "lowercase"},
	}
	for _, tc := range cases {
		err := core.ValidateTagName(tc.tag, tc.service)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("ValidateTagName(%q, %q) = %v, want error containing %q", tc.tag, tc.service, err, tc.wantErr)
		}
	}
}

func TestVersionSpecValidate(t *testing.T) {
	ok := core.VersionSpec{Image: "hello:1"}.WithDefaults()
	cases := []struct {
		name  string
		edit  func(*core.VersionSpec)
		field string
	}{
		{"valid", func(*core.VersionSpec) {}, ""},
		{"registry with port and digest", func(s *core.VersionSpec) {
			s.Image = "registry.local:5000/team/hello@sha256:" + strings.Repeat("a", 64)
		}, ""},
		{"empty image", func(s *core.VersionSpec) { s.Image = "" }, "image"},
		{"uppercase repo", func(s *core.VersionSpec) { s.Image = "team/Hello" }, "image"},
		{"space in image", func(s *core.VersionSpec) { s.Image = "hello world" }, "image"},
		{"port 0 after defaults is 8080", func(s *core.VersionSpec) { s.Port = 0; *s = s.WithDefaults() }, ""},
		{"port 65536", func(s *core.VersionSpec) { s.Port = 65536 }, "port"},
		{"env dup", func(s *core.VersionSpec) { s.Env = []string{"A=1", "A=1"} }, "env"},
		{"env empty value ok", func(s *core.VersionSpec) { s.Env = []string{"A="} }, ""},
		{"env nul", func(s *core.VersionSpec) { s.Env = []string{"A=\x00"} }, "env"},
		{"command nul", func(s *core.VersionSpec) { s.Command = []string{"a\x00"} }, "command"},
		{"memory negative", func(s *core.VersionSpec) { s.MemoryLimit = -1 }, "memory_limit"},
		{"cpu tiny", func(s *core.VersionSpec) { s.CPULimit = 0.001 }, "cpu_limit"},
		{"timeout zero", func(s *core.VersionSpec) { s.Timeout = 0 }, "timeout"},
		{"readiness path with space", func(s *core.VersionSpec) { s.ReadinessPath = "/a b" }, "readiness_path"},
		{"description too long", func(s *core.VersionSpec) { s.Description = strings.Repeat("x", 1025) }, "description"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			s.Env = append([]string(nil), ok.Env...)
			tc.edit(&s)
			err := s.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, core.ErrInvalid) || core.ErrorField(err) != tc.field {
				t.Fatalf("got %v (field %q), want invalid %s", err, core.ErrorField(err), tc.field)
			}
		})
	}
}

func TestTrafficValidate(t *testing.T) {
	exists := func(n int) bool { return n >= 1 && n <= 3 }
	cases := []struct {
		name  string
		t     core.Traffic
		field string
	}{
		{"all on one", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}}, ""},
		{"split with zero", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}, {Version: 2, Percent: 0}}}, ""},
		{"canary", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 99}, {Version: 2, Percent: 1}}, Tags: map[string]int{"canary": 2}}, ""},
		{"none", core.Traffic{}, "weights"},
		{"short", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 99}}}, "weights"},
		{"missing version", core.Traffic{Weights: []core.Weight{{Version: 4, Percent: 100}}}, "weights[0].version"},
		{"version zero", core.Traffic{Weights: []core.Weight{{Version: 0, Percent: 100}}}, "weights[0].version"},
		{"over 100", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 101}, {Version: 2, Percent: -1}}}, "weights[0].percent"},
		{"duplicate", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 50}, {Version: 1, Percent: 50}}}, "weights[1].version"},
		{"tag missing version", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}, Tags: map[string]int{"x": 9}}, "tags.x"},
		{"long message", core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}, Message: strings.Repeat("m", 1025)}, "message"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate("hello", exists)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if core.ErrorField(err) != tc.field {
				t.Fatalf("got %v (field %q), want field %q", err, core.ErrorField(err), tc.field)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	if err := core.DefaultPolicy().Validate(); err != nil {
		t.Fatalf("default policy is invalid: %v", err)
	}
	p := core.DefaultPolicy()
	p.PauseAfter = 0
	p.IdleTimeout = core.Duration(time.Second)
	if err := p.Validate(); err != nil {
		t.Fatalf("pause disabled, 1s idle: %v", err)
	}
	p.IdleTimeout = core.Duration(999 * time.Millisecond)
	if core.ErrorField(p.Validate()) != "policy.idle_timeout" {
		t.Fatalf("idle below 1s accepted")
	}
}

func TestUnits(t *testing.T) {
	durations := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{`"30s"`, 30 * time.Second, false},
		{`"1m30s"`, 90 * time.Second, false},
		{`90`, 90 * time.Second, false},
		{`1.5`, 1500 * time.Millisecond, false},
		{`"2"`, 2 * time.Second, false},
		{`"soon"`, 0, true},
		{`true`, 0, true},
		{`1e300`, 0, true},
	}
	for _, tc := range durations {
		var d core.Duration
		err := json.Unmarshal([]byte(tc.in), &d)
		if tc.err != (err != nil) || (!tc.err && d.Std() != tc.want) {
			t.Errorf("Duration %s: got %v, %v; want %v, error %v", tc.in, d, err, tc.want, tc.err)
		}
	}
	sizes := []struct {
		in   string
		want int64
		err  bool
	}{
		{`"256Mi"`, 256 << 20, false},
		{`"512m"`, 512 << 20, false},
		{`"1G"`, 1 << 30, false},
		{`1048576`, 1 << 20, false},
		{`"64k"`, 64 << 10, false},
		{`"1.5Gi"`, 0, true},
		{`"lots"`, 0, true},
		{`"99999999999999Ti"`, 0, true},
	}
	for _, tc := range sizes {
		var b core.ByteSize
		err := json.Unmarshal([]byte(tc.in), &b)
		if tc.err != (err != nil) || (!tc.err && int64(b) != tc.want) {
			t.Errorf("ByteSize %s: got %d, %v; want %d, error %v", tc.in, b, err, tc.want, tc.err)
		}
	}
	out, _ := json.Marshal(core.ByteSize(256 << 20))
	if string(out) != `"256Mi"` {
		t.Errorf("ByteSize marshal: %s", out)
	}
}

// FuzzTrafficValidate: any split either fails with an invalid error that names
// a field, or really is valid (sums to 100, known versions, no duplicates).
func FuzzTrafficValidate(f *testing.F) {
	f.Add(1, 90, 2, 10, "canary", 2)
	f.Add(1, 50, 1, 50, "", 0)
	f.Add(3, 101, 2, -1, "v2", 2)
	f.Add(0, 100, 9, 0, "a--b", 1)
	f.Fuzz(func(t *testing.T, v1, p1, v2, p2 int, tag string, tv int) {
		tr := core.Traffic{Weights: []core.Weight{{Version: v1, Percent: p1}, {Version: v2, Percent: p2}}}
		if tag != "" {
			tr.Tags = map[string]int{tag: tv}
		}
		exists := func(n int) bool { return n >= 1 && n <= 5 }
		err := tr.Validate("hello", exists)
		if err != nil {
			if !errors.Is(err, core.ErrInvalid) || core.ErrorField(err) == "" || err.Error() == "" {
				t.Fatalf("error without kind, field or message: %#v", err)
			}
			return
		}
		if p1+p2 != 100 || p1 < 0 || p2 < 0 || v1 == v2 || !exists(v1) || !exists(v2) {
			t.Fatalf("accepted an invalid split: %+v", tr)
		}
		if tag != "" && (!exists(tv) || core.ValidateTagName(tag, "hello") != nil) {
			t.Fatalf("accepted an invalid tag: %+v", tr)
		}
	})
}
