package core_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestMinInstancesAt: window edges (from included, to excluded), days,
// windows past midnight, overlaps (the highest wins), the plain value
// outside, and daylight-saving changes (wall-clock hours are kept).
func TestMinInstancesAt(t *testing.T) {
	paris := mustZone(t, "Europe/Paris")
	at := func(y int, m time.Month, d, hh, mm int) time.Time { return time.Date(y, m, d, hh, mm, 0, 0, paris) }
	work := core.MinWindow{Days: "mon-fri", From: "08:00", To: "18:00", TZ: "Europe/Paris", Min: 2}
	night := core.MinWindow{Days: "fri", From: "22:00", To: "06:00", TZ: "Europe/Paris", Min: 1}
	peak := core.MinWindow{Days: "wed", From: "12:00", To: "14:00", TZ: "Europe/Paris", Min: 5}
	low := core.MinWindow{Days: "sun", From: "00:00", To: "24:00", TZ: "UTC", Min: 0}
	p := core.DefaultPolicy()
	p.MinInstances = 1
	p.MinInstancesSchedule = []core.MinWindow{work, night, peak, low}
	// 2026-03-02 is a Monday.
	cases := []struct {
		name string
		at   time.Time
		want int
	}{
		{"monday before the window", at(2026, 3, 2, 7, 59), 1},
		{"monday at from", at(2026, 3, 2, 8, 0), 2},
		{"monday just before to", at(2026, 3, 2, 17, 59), 2},
		{"monday at to", at(2026, 3, 2, 18, 0), 1},
		{"saturday midday", at(2026, 3, 7, 12, 0), 1},
		{"wednesday overlap: the highest wins", at(2026, 3, 4, 13, 0), 5},
		{"wednesday past the peak", at(2026, 3, 4, 14, 0), 2},
		{"friday evening past midnight window", at(2026, 3, 6, 23, 0), 1},
		{"saturday morning: the night window of friday", at(2026, 3, 7, 5, 59), 1},
		{"sunday: a window asking for fewer than min_instances", at(2026, 3, 8, 12, 0), 0},
		{"thursday night: no window", at(2026, 3, 5, 23, 0), 1},
		// 2026-03-29: Paris goes from +01:00 to +02:00 at 02:00.
		{"monday after spring forward at 08:00 local", at(2026, 3, 30, 8, 0), 2},
		{"monday after spring forward at 07:00 UTC (09:00 local)", time.Date(2026, 3, 30, 7, 0, 0, 0, time.UTC), 2},
		{"monday after spring forward at 06:30 UTC (08:30 local)", time.Date(2026, 3, 30, 6, 30, 0, 0, time.UTC), 2},
		{"monday after spring forward at 05:59 UTC (07:59 local)", time.Date(2026, 3, 30, 5, 59, 0, 0, time.UTC), 1},
		// 2026-10-25: back to +01:00. 07:00 UTC is 08:00 local on the Monday.
		{"monday after fall back at 07:00 UTC", time.Date(2026, 10, 26, 7, 0, 0, 0, time.UTC), 2},
		{"monday after fall back at 06:59 UTC", time.Date(2026, 10, 26, 6, 59, 0, 0, time.UTC), 1},
		{"a UTC window: saturday 23:30 UTC is not sunday", time.Date(2026, 3, 7, 23, 30, 0, 0, time.UTC), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.MinInstancesAt(tc.at); got != tc.want {
				t.Fatalf("MinInstancesAt(%s) = %d, want %d", tc.at, got, tc.want)
			}
		})
	}
}

// TestMinScheduleSpringGap: a window that begins inside the hour skipped
// in spring begins at the jump, when the clock reads 03:00.
func TestMinScheduleSpringGap(t *testing.T) {
	p := core.DefaultPolicy()
	p.MinInstancesSchedule = []core.MinWindow{{Days: "sun", From: "02:30", To: "04:00", TZ: "Europe/Paris", Min: 3}}
	before := time.Date(2026, 3, 29, 0, 59, 0, 0, time.UTC) // 01:59 local, +01:00
	after := time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)   // 03:00 local, +02:00
	if got := p.MinInstancesAt(before); got != 0 {
		t.Fatalf("before the jump: got %d, want 0", got)
	}
	if got := p.MinInstancesAt(after); got != 3 {
		t.Fatalf("at the jump: got %d, want 3", got)
	}
}

func TestParseMinWindow(t *testing.T) {
	cases := []struct {
		in      string
		want    core.MinWindow
		wantErr string
	}{
		{in: "mon-fri 08:00-18:00 Europe/Paris=2", want: core.MinWindow{Days: "mon-fri", From: "08:00", To: "18:00", TZ: "Europe/Paris", Min: 2}},
		{in: " sat,sun 22:00-24:00 UTC = 0 ", want: core.MinWindow{Days: "sat,sun", From: "22:00", To: "24:00", TZ: "UTC", Min: 0}},
		{in: "daily 00:00-06:00 America/New_York=1", want: core.MinWindow{Days: "daily", From: "00:00", To: "06:00", TZ: "America/New_York", Min: 1}},
		{in: "mon-fri 08:00-18:00 Europe/Paris", wantErr: "no =MIN"},
		{in: "mon-fri 08:00-18:00=2", wantErr: "want three parts"},
		{in: "mon-fry 08:00-18:00 UTC=2", wantErr: `bad day "mon-fry"`},
		{in: "funday 08:00-18:00 UTC=2", wantErr: `bad day "funday"`},
		{in: "mon 8:00-18:00 UTC=2", wantErr: `bad from time "8:00"`},
		{in: "mon 08:00-25:00 UTC=2", wantErr: `bad to time "25:00"`},
		{in: "mon 24:00-02:00 UTC=2", wantErr: `bad from time "24:00"`},
		{in: "mon 08:60-09:00 UTC=2", wantErr: `bad from time "08:60"`},
		{in: "mon 0800-1800 UTC=2", wantErr: `bad from time "0800"`},
		{in: "mon 08:00 UTC=2", wantErr: "HH:MM-HH:MM"},
		{in: "mon 08:00-08:00 UTC=2", wantErr: "the same time"},
		{in: "mon 08:00-18:00 Mars/Olympus=2", wantErr: `unknown time zone "Mars/Olympus"`},
		{in: "mon 08:00-18:00 Local=2", wantErr: "name a time zone"},
		{in: "mon 08:00-18:00 UTC=-1", wantErr: "min must be 0 or more"},
		{in: "mon 08:00-18:00 UTC=two", wantErr: "whole number"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := core.ParseMinWindow(tc.in)
			if tc.wantErr != "" {
				if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an invalid error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
			if back, err := core.ParseMinWindow(got.String()); err != nil || back != got {
				t.Fatalf("String round trip: %q gives %+v, %v", got.String(), back, err)
			}
		})
	}
}

// TestPolicyIssue15: keep_previous bounds, schedule bounds and singleton
// combinations, through PatchPolicy.
func TestPolicyIssue15(t *testing.T) {
	cur := core.DefaultPolicy()
	d := func(x time.Duration) *core.Duration { v := core.Duration(x); return &v }
	i := func(x int) *int { return &x }
	yes := true
	sched := func(ws ...core.MinWindow) *[]core.MinWindow { return &ws }
	ok := core.MinWindow{Days: "mon-fri", From: "08:00", To: "18:00", TZ: "Europe/Paris", Min: 2}
	big := ok
	big.Min = 11
	many := make([]core.MinWindow, core.MaxMinWindows+1)
	for k := range many {
		many[k] = ok
	}
	cases := []struct {
		name    string
		patch   core.PolicyPatch
		check   func(core.ScalingPolicy) bool
		wantErr string
	}{
		{"default keep_previous is 10m", core.PolicyPatch{}, func(p core.ScalingPolicy) bool { return p.KeepPrevious == core.DefaultKeepPrevious }, ""},
		{"keep_previous 0 turns it off", core.PolicyPatch{KeepPrevious: d(0)}, func(p core.ScalingPolicy) bool { return p.KeepPrevious == 0 }, ""},
		{"keep_previous 24h", core.PolicyPatch{KeepPrevious: d(24 * time.Hour)}, nil, ""},
		{"keep_previous above 24h", core.PolicyPatch{KeepPrevious: d(24*time.Hour + time.Second)}, nil, "keep_previous must be between 0 (off) and 24h"},
		{"keep_previous negative", core.PolicyPatch{KeepPrevious: d(-time.Second)}, nil, "keep_previous must be between"},
		{"schedule", core.PolicyPatch{MinInstancesSchedule: sched(ok)}, func(p core.ScalingPolicy) bool { return len(p.MinInstancesSchedule) == 1 }, ""},
		{"schedule min above max_instances", core.PolicyPatch{MinInstancesSchedule: sched(big)}, nil, "min (11) must not exceed max_instances (10)"},
		{"too many windows", core.PolicyPatch{MinInstancesSchedule: &many}, nil, "at most 16"},
		{"singleton forces max_instances 1", core.PolicyPatch{Singleton: &yes}, func(p core.ScalingPolicy) bool { return p.Singleton && p.MaxInstances == 1 }, ""},
		{"singleton with max_instances 3", core.PolicyPatch{Singleton: &yes, MaxInstances: i(3)}, nil, "policy.singleton and policy.max_instances conflict"},
		{"singleton with standby", core.PolicyPatch{Singleton: &yes, Standby: i(1)}, nil, "policy.singleton and policy.standby conflict"},
		{"singleton with min_instances 2", core.PolicyPatch{Singleton: &yes, MinInstances: i(2)}, nil, "min_instances (2) must not exceed max_instances (1)"},
		{"singleton with a window of 2", core.PolicyPatch{Singleton: &yes, MinInstancesSchedule: sched(ok)}, nil, "min (2) must not exceed max_instances (1)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := core.PatchPolicy(cur, tc.patch)
			if tc.wantErr != "" {
				if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an invalid error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil && !tc.check(got) {
				t.Fatalf("unexpected policy %+v", got)
			}
		})
	}
	// A stored singleton refuses a later max_instances above 1.
	single, err := core.PatchPolicy(cur, core.PolicyPatch{Singleton: &yes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.PatchPolicy(single, core.PolicyPatch{MaxInstances: i(2)}); err == nil || !strings.Contains(err.Error(), "policy.singleton") {
		t.Fatalf("max_instances 2 on a singleton: got %v, want a conflict naming policy.singleton", err)
	}
}
