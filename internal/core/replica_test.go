package core_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
)

func TestLoadReportValidate(t *testing.T) {
	ok := core.LoadReport{Replica: "wisp-0",
		Versions:  []core.ReportedVersion{{VersionID: 1, InFlight: 2, Waiting: 1, Requests: 10}, {VersionID: 2}},
		Instances: []core.ReportedInstance{{ID: "hello-v1-0a0b0c0d", InFlight: 2, IdleMS: 5}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a valid report: %v", err)
	}
	edit := func(f func(r *core.LoadReport)) core.LoadReport {
		r := ok
		r.Versions = append([]core.ReportedVersion(nil), ok.Versions...)
		r.Instances = append([]core.ReportedInstance(nil), ok.Instances...)
		f(&r)
		return r
	}
	cases := []struct {
		name  string
		r     core.LoadReport
		field string
	}{
		{"no replica", edit(func(r *core.LoadReport) { r.Replica = "" }), "replica"},
		{"replica with a space", edit(func(r *core.LoadReport) { r.Replica = "a b" }), "replica"},
		{"replica too long", edit(func(r *core.LoadReport) { r.Replica = strings.Repeat("r", core.MaxReplicaIDLen+1) }), "replica"},
		{"version id 0", edit(func(r *core.LoadReport) { r.Versions[0].VersionID = 0 }), "versions[0].version_id"},
		{"negative version id", edit(func(r *core.LoadReport) { r.Versions[1].VersionID = -3 }), "versions[1].version_id"},
		{"version twice", edit(func(r *core.LoadReport) { r.Versions[1].VersionID = 1 }), "versions[1].version_id"},
		{"negative in flight", edit(func(r *core.LoadReport) { r.Versions[0].InFlight = -1 }), "versions[0]"},
		{"negative waiting", edit(func(r *core.LoadReport) { r.Versions[0].Waiting = -1 }), "versions[0]"},
		{"empty instance id", edit(func(r *core.LoadReport) { r.Instances[0].ID = "" }), "instances[0].id"},
		{"instance id too long", edit(func(r *core.LoadReport) { r.Instances[0].ID = strings.Repeat("i", 64) }), "instances[0].id"},
		{"instance twice", edit(func(r *core.LoadReport) { r.Instances = append(r.Instances, r.Instances[0]) }), "instances[1].id"},
		{"negative idle", edit(func(r *core.LoadReport) { r.Instances[0].IdleMS = -1 }), "instances[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Validate()
			var ce *core.Error
			if !errors.Is(err, core.ErrInvalid) || !errors.As(err, &ce) {
				t.Fatalf("got %v, want an invalid error", err)
			}
			if ce.Field != tc.field {
				t.Fatalf("field %q, want %q (%v)", ce.Field, tc.field, err)
			}
		})
	}
}
