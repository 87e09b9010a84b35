package schedule_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/schedule"
)

// t0 is a Thursday.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fmtTimes renders fire times for cmp.Diff, weekday and offset included.
func fmtTimes(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Format("2006-01-02 15:04:05 Mon -07:00")
	}
	return out
}

func mustParse(tb testing.TB, spec string) schedule.Schedule {
	tb.Helper()
	s, err := schedule.Parse(spec)
	if err != nil {
		tb.Fatalf("Parse(%q): %v", spec, err)
	}
	return s
}

func TestParse(t *testing.T) {
	cases := []struct {
		name, spec, want string
		next             []string // the next three fire times after t0, in UTC
	}{
		{"every minute", "* * * * *", "* * * * *",
			[]string{"2026-01-01 00:01:00 Thu +00:00", "2026-01-01 00:02:00 Thu +00:00", "2026-01-01 00:03:00 Thu +00:00"}},
		{"step on star", "*/15 * * * *", "*/15 * * * *",
			[]string{"2026-01-01 00:15:00 Thu +00:00", "2026-01-01 00:30:00 Thu +00:00", "2026-01-01 00:45:00 Thu +00:00"}},
		{"list and range", "0,30 9-10 * * *", "0,30 9-10 * * *",
			[]string{"2026-01-01 09:00:00 Thu +00:00", "2026-01-01 09:30:00 Thu +00:00", "2026-01-01 10:00:00 Thu +00:00"}},
		{"step on range", "1-30/10 * * * *", "1-30/10 * * * *",
			[]string{"2026-01-01 00:01:00 Thu +00:00", "2026-01-01 00:11:00 Thu +00:00", "2026-01-01 00:21:00 Thu +00:00"}},
		{"weekday names", "0 9 * * mon-fri", "0 9 * * mon-fri",
			[]string{"2026-01-01 09:00:00 Thu +00:00", "2026-01-02 09:00:00 Fri +00:00", "2026-01-05 09:00:00 Mon +00:00"}},
		{"sunday is 0", "0 0 * * 0", "0 0 * * 0",
			[]string{"2026-01-04 00:00:00 Sun +00:00", "2026-01-11 00:00:00 Sun +00:00", "2026-01-18 00:00:00 Sun +00:00"}},
		{"sunday is 7", "0 0 * * 7", "0 0 * * 7",
			[]string{"2026-01-04 00:00:00 Sun +00:00", "2026-01-11 00:00:00 Sun +00:00", "2026-01-18 00:00:00 Sun +00:00"}},
		{"range to 7", "0 0 * * SAT-7", "0 0 * * sat-7",
			[]string{"2026-01-03 00:00:00 Sat +00:00", "2026-01-04 00:00:00 Sun +00:00", "2026-01-10 00:00:00 Sat +00:00"}},
		{"sun ends a range as 7", "0 0 * * Fri-Sun", "0 0 * * fri-sun",
			[]string{"2026-01-02 00:00:00 Fri +00:00", "2026-01-03 00:00:00 Sat +00:00", "2026-01-04 00:00:00 Sun +00:00"}},
		{"month names, any case", "0 12 * JAN,Jul *", "0 12 * jan,jul *",
			[]string{"2026-01-01 12:00:00 Thu +00:00", "2026-01-02 12:00:00 Fri +00:00", "2026-01-03 12:00:00 Sat +00:00"}},
		{"month range by name", "0 0 1 mar-may *", "0 0 1 mar-may *",
			[]string{"2026-03-01 00:00:00 Sun +00:00", "2026-04-01 00:00:00 Wed +00:00", "2026-05-01 00:00:00 Fri +00:00"}},
		{"day-of-month or day-of-week when both are restricted", "0 0 13 * fri", "0 0 13 * fri",
			[]string{"2026-01-02 00:00:00 Fri +00:00", "2026-01-09 00:00:00 Fri +00:00", "2026-01-13 00:00:00 Tue +00:00"}},
		{"both must match when day-of-month begins with *", "0 0 */2 * mon", "0 0 */2 * mon",
			[]string{"2026-01-05 00:00:00 Mon +00:00", "2026-01-19 00:00:00 Mon +00:00", "2026-02-09 00:00:00 Mon +00:00"}},
		{"both must match when day-of-week begins with *", "0 0 13 * */6", "0 0 13 * */6",
			[]string{"2026-06-13 00:00:00 Sat +00:00", "2026-09-13 00:00:00 Sun +00:00", "2026-12-13 00:00:00 Sun +00:00"}},
		{"leap day", "0 0 29 2 *", "0 0 29 2 *",
			[]string{"2028-02-29 00:00:00 Tue +00:00", "2032-02-29 00:00:00 Sun +00:00", "2036-02-29 00:00:00 Fri +00:00"}},
		{"last minute of the year", "59 23 31 12 *", "59 23 31 12 *",
			[]string{"2026-12-31 23:59:00 Thu +00:00", "2027-12-31 23:59:00 Fri +00:00", "2028-12-31 23:59:00 Sun +00:00"}},
		{"extra whitespace", "  0\t5  *  *  *  ", "0 5 * * *",
			[]string{"2026-01-01 05:00:00 Thu +00:00", "2026-01-02 05:00:00 Fri +00:00", "2026-01-03 05:00:00 Sat +00:00"}},
		{"leading zeros", "05 09 * * *", "05 09 * * *",
			[]string{"2026-01-01 09:05:00 Thu +00:00", "2026-01-02 09:05:00 Fri +00:00", "2026-01-03 09:05:00 Sat +00:00"}},
		{"step larger than its range matches its start", "0-10/20 * * * *", "0-10/20 * * * *",
			[]string{"2026-01-01 01:00:00 Thu +00:00", "2026-01-01 02:00:00 Thu +00:00", "2026-01-01 03:00:00 Thu +00:00"}},
		{"@yearly", "@yearly", "@yearly",
			[]string{"2027-01-01 00:00:00 Fri +00:00", "2028-01-01 00:00:00 Sat +00:00", "2029-01-01 00:00:00 Mon +00:00"}},
		{"@annually is @yearly", "@Annually", "@yearly",
			[]string{"2027-01-01 00:00:00 Fri +00:00", "2028-01-01 00:00:00 Sat +00:00", "2029-01-01 00:00:00 Mon +00:00"}},
		{"@monthly", "@monthly", "@monthly",
			[]string{"2026-02-01 00:00:00 Sun +00:00", "2026-03-01 00:00:00 Sun +00:00", "2026-04-01 00:00:00 Wed +00:00"}},
		{"@weekly", "@weekly", "@weekly",
			[]string{"2026-01-04 00:00:00 Sun +00:00", "2026-01-11 00:00:00 Sun +00:00", "2026-01-18 00:00:00 Sun +00:00"}},
		{"@daily", "@daily", "@daily",
			[]string{"2026-01-02 00:00:00 Fri +00:00", "2026-01-03 00:00:00 Sat +00:00", "2026-01-04 00:00:00 Sun +00:00"}},
		{"@midnight is @daily", "@midnight", "@daily",
			[]string{"2026-01-02 00:00:00 Fri +00:00", "2026-01-03 00:00:00 Sat +00:00", "2026-01-04 00:00:00 Sun +00:00"}},
		{"@hourly", "@hourly", "@hourly",
			[]string{"2026-01-01 01:00:00 Thu +00:00", "2026-01-01 02:00:00 Thu +00:00", "2026-01-01 03:00:00 Thu +00:00"}},
		{"@every, normalised", "@every 90m", "@every 1h30m0s",
			[]string{"2026-01-01 01:30:00 Thu +00:00", "2026-01-01 03:00:00 Thu +00:00", "2026-01-01 04:30:00 Thu +00:00"}},
		{"@every counts from the Unix epoch", "@EVERY 1h7m", "@every 1h7m0s",
			[]string{"2026-01-01 00:43:00 Thu +00:00", "2026-01-01 01:50:00 Thu +00:00", "2026-01-01 02:57:00 Thu +00:00"}},
		{"@every 1s", "@every 1s", "@every 1s",
			[]string{"2026-01-01 00:00:01 Thu +00:00", "2026-01-01 00:00:02 Thu +00:00", "2026-01-01 00:00:03 Thu +00:00"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, tc.spec)
			if got := s.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if diff := cmp.Diff(tc.next, fmtTimes(s.NextN(t0, time.UTC, 3))); diff != "" {
				t.Errorf("next fire times (-want +got):\n%s", diff)
			}
			again := mustParse(t, s.String())
			if diff := cmp.Diff(s, again, cmp.AllowUnexported(schedule.Schedule{})); diff != "" {
				t.Errorf("Parse(String()) differs (-first +again):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ name, spec, want string }{
		{"empty", "", `cron "": want 5 fields (minute hour day-of-month month day-of-week) or a descriptor like @hourly, got 0`},
		{"too few fields", "* * *", `cron "* * *": want 5 fields (minute hour day-of-month month day-of-week) or a descriptor like @hourly, got 3`},
		{"six fields (seconds are not supported)", "0 * * * * *", `cron "0 * * * * *": want 5 fields (minute hour day-of-month month day-of-week) or a descriptor like @hourly, got 6`},
		{"step 0", "*/0 * * * *", `cron "*/0 * * * *": minute field "*/0": step must be at least 1`},
		{"step on a range 0", "0-30/0 * * * *", `cron "0-30/0 * * * *": minute field "0-30/0": step must be at least 1`},
		{"missing step", "*/ * * * *", `cron "*/ * * * *": minute field "*/": missing step after /`},
		{"step not a number", "*/x * * * *", `cron "*/x * * * *": minute field "*/x": step "x" is not a number`},
		{"step on star too large for minutes", "*/90 * * * *", `cron "*/90 * * * *": minute field "*/90": step 90 is larger than the range 0-59, so it matches only 0; for every 90 minutes use @every 90m`},
		{"step on star too large for hours", "0 */24 * * *", `cron "0 */24 * * *": hour field "*/24": step 24 is larger than the range 0-23, so it matches only 0; for every 24 hours use @every 24h`},
		{"step on star too large for weekdays", "0 0 * * */7", `cron "0 0 * * */7": day-of-week field "*/7": step 7 is larger than the range 0-6, so it matches only 0`},
		{"step on a single value", "5/15 * * * *", `cron "5/15 * * * *": minute field "5/15": a step needs a range or *, e.g. 5-59/15 or */15`},
		{"minute out of range", "60 * * * *", `cron "60 * * * *": minute field "60": 60 is out of range 0-59`},
		{"hour out of range", "0 24 * * *", `cron "0 24 * * *": hour field "24": 24 is out of range 0-23`},
		{"day-of-month 0", "0 0 0 * *", `cron "0 0 0 * *": day-of-month field "0": 0 is out of range 1-31`},
		{"day-of-month 32", "0 0 32 * *", `cron "0 0 32 * *": day-of-month field "32": 32 is out of range 1-31`},
		{"month 13", "0 0 1 13 *", `cron "0 0 1 13 *": month field "13": 13 is out of range 1-12`},
		{"weekday 8", "0 0 * * 8", `cron "0 0 * * 8": day-of-week field "8": 8 is out of range 0-7 (0 and 7 are Sunday)`},
		{"huge number", "99999999999 * * * *", `cron "99999999999 * * * *": minute field "99999999999": 99999999999 is out of range 0-59`},
		{"negative number", "-1 * * * *", `cron "-1 * * * *": minute field "-1": missing value in range`},
		{"unknown month name", "0 0 1 foo *", `cron "0 0 1 foo *": month field "foo": "foo" is not a number or a month name (jan..dec)`},
		{"weekday name in the month field", "0 0 1 mon *", `cron "0 0 1 mon *": month field "mon": "mon" is not a number or a month name (jan..dec)`},
		{"full weekday name", "0 0 * * monday", `cron "0 0 * * monday": day-of-week field "monday": "monday" is not a number or a weekday name (sun..sat)`},
		{"name in a numeric field", "0 noon * * *", `cron "0 noon * * *": hour field "noon": "noon" is not a number`},
		{"range backwards", "0 0 * * fri-mon", `cron "0 0 * * fri-mon": day-of-week field "fri-mon": range fri-mon goes backwards (5 is after 1; ranges do not wrap around)`},
		{"range open-ended", "5- * * * *", `cron "5- * * * *": minute field "5-": missing value in range`},
		{"empty list element", "1,,2 * * * *", `cron "1,,2 * * * *": minute field "1,,2": empty list element`},
		{"error inside a list names the element", "0 1,2,25 * * *", `cron "0 1,2,25 * * *": hour field "1,2,25": in "25": 25 is out of range 0-23`},
		{"missing value before a step", "/5 * * * *", `cron "/5 * * * *": minute field "/5": missing value before /`},
		{"question mark is not supported", "0 0 ? * *", `cron "0 0 ? * *": day-of-month field "?": "?" is not a number`},
		{"february 30 never fires", "0 0 30 2 *", `cron "0 0 30 2 *": never fires: day-of-month "30" does not occur in month "2" (feb has at most 29 days)`},
		{"31st of short months never fires", "0 0 31 apr,jun,sep,nov *", `cron "0 0 31 apr,jun,sep,nov *": never fires: day-of-month "31" does not occur in month "apr,jun,sep,nov" (none of those months has more than 30 days)`},
		{"unknown descriptor", "@daly", `cron "@daly": unknown descriptor "@daly"; known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>`},
		{"descriptor with fields", "@daily 0 0", `cron "@daily 0 0": @daily takes no fields, got 2`},
		{"@every without duration", "@every", `cron "@every": @every takes one duration, e.g. @every 30s or @every 1h30m`},
		{"@every with two durations", "@every 1m 2m", `cron "@every 1m 2m": @every takes one duration, e.g. @every 30s or @every 1h30m`},
		{"@every bad duration", "@every 5x", `cron "@every 5x": "5x" is not a duration (want Go syntax such as 30s, 5m or 1h30m)`},
		{"@every without unit", "@every 30", `cron "@every 30": "30" is not a duration (want Go syntax such as 30s, 5m or 1h30m)`},
		{"@every below 1s", "@every 500ms", `cron "@every 500ms": interval 500ms is below the minimum of 1s`},
		{"@every zero", "@every 0s", `cron "@every 0s": interval 0s is below the minimum of 1s`},
		{"@every negative", "@every -5s", `cron "@every -5s": interval -5s is below the minimum of 1s`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := schedule.Parse(tc.spec)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error %q", tc.spec, s, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			var ce *core.Error
			if !errors.As(err, &ce) || !errors.Is(err, core.ErrInvalid) || ce.Field != "cron" {
				t.Errorf("got %T %v, want a *core.Error of kind ErrInvalid for field cron", err, err)
			}
			if s != (schedule.Schedule{}) {
				t.Errorf("got schedule %q with the error, want the zero Schedule", s)
			}
		})
	}
}

func TestZeroScheduleNeverFires(t *testing.T) {
	var s schedule.Schedule
	if got := s.Next(t0, time.UTC); !got.IsZero() {
		t.Fatalf("got %v, want the zero time", got)
	}
	if got := s.NextN(t0, time.UTC, 5); len(got) != 0 {
		t.Fatalf("got %v, want none", got)
	}
	if fire, missed, ok := schedule.Due(s, time.UTC, t0, t0.Add(time.Hour), schedule.MisfireRunOnce, time.Second); ok || missed != 0 || !fire.IsZero() {
		t.Fatalf("Due: got %v %d %v, want nothing due", fire, missed, ok)
	}
}
