package schedule_test

import (
	"fmt"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has installed

	"github.com/google/go-cmp/cmp"
)

func zone(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

func at(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// TestNextDST covers the daylight-saving rules of the package
// documentation. In 2026 Europe/Paris springs forward on 29 March
// (02:00 CET → 03:00 CEST) and falls back on 25 October (03:00 CEST →
// 02:00 CET); America/New_York on 8 March (02:00 EST → 03:00 EDT) and
// 1 November (02:00 EDT → 01:00 EST).
func TestNextDST(t *testing.T) {
	cases := []struct {
		name, spec, zone, after string
		want                    []string // RFC 3339, in the zone
	}{
		// Spring forward: specific times in the gap fire once, at 03:00.
		{"paris gap: a daily 02:30 fires at 03:00", "30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"paris gap: two times in the gap fire once", "0,30 2 * * *", "Europe/Paris", "2026-03-29T00:00:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"paris gap: a time in the gap and 03:00 fire once", "0 2,3 * * *", "Europe/Paris", "2026-03-29T00:00:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"}},
		{"paris gap: the time after the gap still fires", "30 2,3 * * *", "Europe/Paris", "2026-03-29T00:00:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"paris gap: every 30 minutes skips the missing hour", "*/30 * * * *", "Europe/Paris", "2026-03-29T01:00:00+01:00",
			[]string{"2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"}},
		{"paris gap: * in the hour skips the missing hour", "30 * * * *", "Europe/Paris", "2026-03-29T01:00:00+01:00",
			[]string{"2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"}},
		{"paris gap: */n in the minute skips the missing hour", "*/20 2 * * *", "Europe/Paris", "2026-03-29T00:00:00+01:00",
			[]string{"2026-03-30T02:00:00+02:00", "2026-03-30T02:20:00+02:00", "2026-03-30T02:40:00+02:00"}},
		{"paris gap: @hourly has no 02:00", "@hourly", "Europe/Paris", "2026-03-29T00:30:00+01:00",
			[]string{"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"}},
		{"new york gap: a daily 02:30 fires at 03:00", "30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"new york gap: two times in the gap fire once", "15,45 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:15:00-04:00"}},
		{"new york gap: every 30 minutes skips the missing hour", "*/30 * * * *", "America/New_York", "2026-03-08T01:00:00-05:00",
			[]string{"2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"}},
		{"new york gap: from inside the gap's end", "30 2 * * *", "America/New_York", "2026-03-08T03:00:00-04:00",
			[]string{"2026-03-09T02:30:00-04:00"}},

		// Fall back: a repeated wall time fires at its first occurrence only.
		{"paris overlap: a daily 02:30 fires once, in summer time", "30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00+02:00",
			[]string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
		{"paris overlap: not again at the second 02:30", "30 2 * * *", "Europe/Paris", "2026-10-25T02:30:00+02:00",
			[]string{"2026-10-26T02:30:00+01:00"}},
		{"paris overlap: every 30 minutes pauses for the repeated hour", "*/30 * * * *", "Europe/Paris", "2026-10-25T01:45:00+02:00",
			[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T03:00:00+01:00"}},
		{"paris overlap: from inside the second pass", "*/30 * * * *", "Europe/Paris", "2026-10-25T02:10:00+01:00",
			[]string{"2026-10-25T03:00:00+01:00"}},
		{"paris overlap: @hourly", "@hourly", "Europe/Paris", "2026-10-25T01:30:00+02:00",
			[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00"}},
		{"new york overlap: a daily 01:30 fires once, in summer time", "30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00",
			[]string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"new york overlap: every 30 minutes pauses for the repeated hour", "*/30 * * * *", "America/New_York", "2026-11-01T00:45:00-04:00",
			[]string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:00:00-05:00"}},
		{"new york overlap: from inside the second pass", "0 1 * * *", "America/New_York", "2026-11-01T01:10:00-05:00",
			[]string{"2026-11-02T01:00:00-05:00"}},

		// Other zones and the edges of the rule.
		{"santiago: midnight is skipped, @daily fires at 01:00", "@daily", "America/Santiago", "2026-09-05T12:00:00-04:00",
			[]string{"2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"}},
		{"apia skipped 30 December 2011: noon fires when the day after begins", "0 12 * * *", "Pacific/Apia", "2011-12-29T13:00:00-10:00",
			[]string{"2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"}},
		{"@every ignores the zone", "@every 1h", "Europe/Paris", "2026-03-29T01:30:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00", "2026-03-29T05:00:00+02:00"}},
		{"@every through the overlap", "@every 30m", "America/New_York", "2026-11-01T01:40:00-04:00",
			[]string{"2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00"}},
		{"a zone with a half-hour offset", "0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z",
			[]string{"2026-01-01T09:00:00+05:30", "2026-01-02T09:00:00+05:30"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, loc := mustParse(t, tc.spec), zone(t, tc.zone)
			var got []string
			for _, f := range s.NextN(at(t, tc.after), loc, len(tc.want)) {
				got = append(got, f.Format(time.RFC3339))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("fire times (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNextIsStrictlyAfter(t *testing.T) {
	cases := []struct{ name, spec, after string }{
		{"exactly on a fire time", "*/5 * * * *", "2026-01-01T00:05:00Z"},
		{"a nanosecond before", "*/5 * * * *", "2026-01-01T00:04:59.999999999Z"},
		{"@every exactly on a multiple", "@every 10s", "2026-01-01T00:00:10Z"},
		{"@every a nanosecond before", "@every 10s", "2026-01-01T00:00:09.999999999Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := at(t, tc.after)
			got := mustParse(t, tc.spec).Next(after, time.UTC)
			if !got.After(after) {
				t.Fatalf("Next(%s) = %s, not after", after, got)
			}
			if want := after.Truncate(5 * time.Minute).Add(5 * time.Minute); tc.spec == "*/5 * * * *" && !got.Equal(want) {
				t.Fatalf("Next(%s) = %s, want %s", after, got, want)
			}
			if want := after.Truncate(10 * time.Second).Add(10 * time.Second); tc.spec == "@every 10s" && !got.Equal(want) {
				t.Fatalf("Next(%s) = %s, want %s", after, got, want)
			}
		})
	}
}

func TestNextNilLocationIsUTC(t *testing.T) {
	s := mustParse(t, "0 9 * * *")
	got, want := s.Next(t0, nil), time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestNextRare checks schedules whose fire times are years apart, and that
// Next finds them quickly.
func TestNextRare(t *testing.T) {
	cases := []struct {
		name, spec, after, want string
	}{
		{"leap day across 2100, which is not a leap year", "0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},
		{"leap day on a weekend", "0 0 29 2 */6", "2026-01-01T00:00:00Z", "2032-02-29T00:00:00Z"},
		{"leap day on a weekend, across 2100", "0 0 29 2 */6", "2088-03-01T00:00:00Z", "2116-02-29T00:00:00Z"},
		{"1 February on a Monday", "0 0 */30 2 1", "2027-02-02T00:00:00Z", "2038-02-01T00:00:00Z"},
		{"far in the future", "@yearly", "9999-06-01T00:00:00Z", "10000-01-01T00:00:00Z"},
		{"@every before 1678 (beyond UnixNano)", "@every 1h", "1600-01-01T00:30:00Z", "1600-01-01T01:00:00Z"},
		{"@every after 2262 (beyond UnixNano)", "@every 7s", "3000-01-01T00:00:00Z", "3000-01-01T00:00:06Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, tc.spec)
			after := parseWide(t, tc.after)
			start := time.Now()
			got := s.Next(after, time.UTC)
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("Next took %s", took)
			}
			if want := parseWide(t, tc.want); !got.Equal(want) {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}

// parseWide parses RFC 3339 in UTC with a year of any length.
func parseWide(tb testing.TB, s string) time.Time {
	tb.Helper()
	var y, mo, d, h, mi, sec int
	if _, err := fmt.Sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &sec); err != nil {
		tb.Fatalf("%q: %v", s, err)
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
}

func TestNextN(t *testing.T) {
	s := mustParse(t, "0 9 * * mon")
	got := fmtTimes(s.NextN(t0, time.UTC, 5))
	want := []string{"2026-01-05 09:00:00 Mon +00:00", "2026-01-12 09:00:00 Mon +00:00", "2026-01-19 09:00:00 Mon +00:00",
		"2026-01-26 09:00:00 Mon +00:00", "2026-02-02 09:00:00 Mon +00:00"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := s.NextN(t0, time.UTC, 0); len(got) != 0 {
		t.Errorf("NextN(0) = %v, want none", got)
	}
}

// TestNextEveryIsStable checks that @every fire times do not depend on
// when the question is asked: two replicas, one restarted, agree.
func TestNextEveryIsStable(t *testing.T) {
	s := mustParse(t, "@every 37s")
	a := s.NextN(t0, time.UTC, 20)
	b := s.NextN(a[4].Add(-time.Millisecond), zone(t, "Asia/Tokyo"), 15)
	for i := range b {
		if !b[i].Equal(a[i+4]) {
			t.Fatalf("fire %d: %s from one start, %s from another", i, a[i+4], b[i])
		}
		if a[i].Unix()%37 != 0 {
			t.Fatalf("fire time %s is not a multiple of 37s since the epoch", a[i])
		}
	}
}
