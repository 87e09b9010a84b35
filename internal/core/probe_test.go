package core

import (
	"strings"
	"testing"
	"time"
)

func TestProbeDefaultsAndBounds(t *testing.T) {
	if got, want := (Probe{}).WithDefaults(), (Probe{Period: DefaultProbePeriod, Timeout: DefaultProbeTimeout, FailureThreshold: DefaultProbeThreshold}); got != want {
		t.Fatalf("defaults: %+v, want %+v", got, want)
	}
	if got := (Probe{Period: Duration(time.Second)}).WithDefaults(); got.Timeout != Duration(time.Second) {
		t.Fatalf("a 1s period gets a %s timeout, want 1s", got.Timeout)
	}
	cases := []struct {
		name  string
		p     Probe
		field string
	}{
		{"period too short", Probe{Period: Duration(500 * time.Millisecond)}, "liveness.period"},
		{"period too long", Probe{Period: Duration(2 * time.Hour)}, "liveness.period"},
		{"timeout above the period", Probe{Period: Duration(2 * time.Second), Timeout: Duration(3 * time.Second)}, "liveness.timeout"},
		{"timeout too short", Probe{Timeout: Duration(time.Millisecond)}, "liveness.timeout"},
		{"threshold too high", Probe{FailureThreshold: 101}, "liveness.failure_threshold"},
		{"negative threshold", Probe{FailureThreshold: -1}, "liveness.failure_threshold"},
		{"relative path", Probe{Path: "healthz"}, "liveness.path"},
		{"path with a space", Probe{Path: "/a b"}, "liveness.path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.WithDefaults().Validate("liveness")
			if ErrorField(err) != tc.field || !strings.Contains(err.Error(), strings.TrimPrefix(tc.field, "liveness.")) {
				t.Fatalf("got %v (field %q), want an error naming %s", err, ErrorField(err), tc.field)
			}
		})
	}
	for _, ok := range []Probe{{}, {Path: "/healthz"}, {Path: "/live?deep=1", Period: Duration(time.Minute), FailureThreshold: 100}} {
		if err := ok.WithDefaults().Validate("liveness"); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	spec := VersionSpec{Image: "hello:1", Liveness: &Probe{Path: "nope"}}.WithDefaults()
	if err := spec.Validate(); ErrorField(err) != "liveness.path" {
		t.Fatalf("a version with a bad liveness probe: %v, want liveness.path", err)
	}
}
