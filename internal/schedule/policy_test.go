package schedule_test

import (
	"errors"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/schedule"
)

func TestDue(t *testing.T) {
	noon := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	paris := zone(t, "Europe/Paris")
	cases := []struct {
		name      string
		spec      string
		loc       *time.Location
		last, now time.Time
		misfire   schedule.Misfire
		grace     time.Duration
		fire      time.Time
		missed    int
		ok        bool
	}{
		{"on time", "*/5 * * * *", time.UTC, noon.Add(-5 * time.Minute), noon.Add(300 * ms), schedule.MisfireSkip, time.Second,
			noon, 0, true},
		{"exactly at the fire time", "*/5 * * * *", time.UTC, noon.Add(-5 * time.Minute), noon, schedule.MisfireSkip, time.Second,
			noon, 0, true},
		{"late within grace", "*/5 * * * *", time.UTC, noon.Add(-5 * time.Minute), noon.Add(time.Second), schedule.MisfireSkip, time.Second,
			noon, 0, true},
		{"just past grace, run-once runs it", "*/5 * * * *", time.UTC, noon.Add(-5 * time.Minute), noon.Add(1001 * ms), schedule.MisfireRunOnce, time.Second,
			noon, 1, true},
		{"just past grace, skip does not", "*/5 * * * *", time.UTC, noon.Add(-5 * time.Minute), noon.Add(1001 * ms), schedule.MisfireSkip, time.Second,
			noon, 1, false},
		{"several missed, run-once runs the latest once", "*/5 * * * *", time.UTC, noon.Add(-time.Hour), noon.Add(3 * time.Minute), schedule.MisfireRunOnce, time.Second,
			noon, 12, true},
		{"several missed, skip runs none", "*/5 * * * *", time.UTC, noon.Add(-time.Hour), noon.Add(3 * time.Minute), schedule.MisfireSkip, time.Second,
			noon, 12, false},
		{"several missed but the latest on time, skip runs it", "*/5 * * * *", time.UTC, noon.Add(-time.Hour), noon.Add(200 * ms), schedule.MisfireSkip, time.Second,
			noon, 11, true},
		{"several missed but the latest on time, run-once runs it", "*/5 * * * *", time.UTC, noon.Add(-time.Hour), noon.Add(200 * ms), schedule.MisfireRunOnce, time.Second,
			noon, 11, true},
		{"nothing due", "*/5 * * * *", time.UTC, noon, noon.Add(5*time.Minute - ms), schedule.MisfireRunOnce, time.Second,
			time.Time{}, 0, false},
		{"last is now", "*/5 * * * *", time.UTC, noon, noon, schedule.MisfireRunOnce, time.Second,
			time.Time{}, 0, false},
		{"last after now (the clock stepped back)", "*/5 * * * *", time.UTC, noon.Add(time.Hour), noon, schedule.MisfireRunOnce, time.Second,
			time.Time{}, 0, false},
		{"never ran: the creation time is last", "*/5 * * * *", time.UTC, noon.Add(-2 * time.Minute), noon.Add(100 * ms), schedule.MisfireRunOnce, time.Second,
			noon, 0, true},
		{"never ran: created after the last fire time", "*/5 * * * *", time.UTC, noon.Add(time.Second), noon.Add(2 * time.Second), schedule.MisfireRunOnce, time.Second,
			time.Time{}, 0, false},
		{"zero last: a run on time fires", "*/5 * * * *", time.UTC, time.Time{}, noon.Add(500 * ms), schedule.MisfireRunOnce, time.Second,
			noon, 0, true},
		{"zero last: a late run does not", "*/5 * * * *", time.UTC, time.Time{}, noon.Add(3 * time.Minute), schedule.MisfireRunOnce, time.Second,
			time.Time{}, 0, false},
		{"zero grace: only the exact instant is on time", "*/5 * * * *", time.UTC, noon.Add(-5 * time.Minute), noon.Add(ms), schedule.MisfireSkip, 0,
			noon, 1, false},
		{"negative grace is zero", "*/5 * * * *", time.UTC, noon.Add(-5 * time.Minute), noon, schedule.MisfireSkip, -time.Second,
			noon, 0, true},
		{"zero misfire is run-once", "*/5 * * * *", time.UTC, noon.Add(-time.Hour), noon.Add(3 * time.Minute), "", time.Second,
			noon, 12, true},
		{"unknown misfire is skip", "*/5 * * * *", time.UTC, noon.Add(-time.Hour), noon.Add(3 * time.Minute), "later", time.Second,
			noon, 12, false},
		{"a year down, every minute: missed is capped", "* * * * *", time.UTC, noon.AddDate(-1, 0, 0), noon.Add(30 * time.Second), schedule.MisfireRunOnce, time.Second,
			noon, schedule.MaxMissed, true},
		{"years down, daily: missed is capped, fire is the latest", "0 3 * * *", time.UTC, noon.AddDate(-6, 0, 0), noon, schedule.MisfireSkip, time.Second,
			noon.Add(-9 * time.Hour), schedule.MaxMissed, false},
		{"in a zone: the daily 02:30 fires at 03:00 on spring-forward day", "30 2 * * *", paris,
			at(t, "2026-03-28T02:30:00+01:00"), at(t, "2026-03-29T03:00:00.5+02:00"), schedule.MisfireSkip, time.Second,
			at(t, "2026-03-29T03:00:00+02:00"), 0, true},
		{"in a zone: the second 02:30 of fall-back day is not due", "30 2 * * *", paris,
			at(t, "2026-10-25T02:30:00+02:00"), at(t, "2026-10-25T02:30:00.5+01:00"), schedule.MisfireRunOnce, time.Second,
			time.Time{}, 0, false},
		{"@every 2s on time", "@every 2s", time.UTC, noon, noon.Add(2*time.Second + 300*ms), schedule.MisfireSkip, time.Second,
			noon.Add(2 * time.Second), 0, true},
		{"@every 2s between fire times", "@every 2s", time.UTC, noon.Add(2 * time.Second), noon.Add(3*time.Second + 900*ms), schedule.MisfireRunOnce, time.Second,
			time.Time{}, 0, false},
		{"@every 2s, several missed, the latest on time", "@every 2s", time.UTC, noon, noon.Add(10*time.Second + 500*ms), schedule.MisfireSkip, time.Second,
			noon.Add(10 * time.Second), 4, true},
		{"@every 2s, late, run-once", "@every 2s", time.UTC, noon, noon.Add(11*time.Second + 500*ms), schedule.MisfireRunOnce, time.Second,
			noon.Add(10 * time.Second), 5, true},
		{"@every 2s, late, skip", "@every 2s", time.UTC, noon, noon.Add(11*time.Second + 500*ms), schedule.MisfireSkip, time.Second,
			noon.Add(10 * time.Second), 5, false},
		{"@every 2s, last off the grid", "@every 2s", time.UTC, noon.Add(time.Second), noon.Add(2*time.Second + 100*ms), schedule.MisfireSkip, time.Second,
			noon.Add(2 * time.Second), 0, true},
		{"@every 2s, a day down: missed is capped", "@every 2s", time.UTC, noon.AddDate(0, 0, -1), noon.Add(time.Minute), schedule.MisfireRunOnce, time.Second,
			noon.Add(time.Minute), schedule.MaxMissed, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fire, missed, ok := schedule.Due(mustParse(t, tc.spec), tc.loc, tc.last, tc.now, tc.misfire, tc.grace)
			if !fire.Equal(tc.fire) || missed != tc.missed || ok != tc.ok {
				t.Fatalf("got fire %v, missed %d, ok %v; want fire %v, missed %d, ok %v", fire, missed, ok, tc.fire, tc.missed, tc.ok)
			}
		})
	}
}

// TestDueLoop plays a scheduler loop, ticking every second and recording
// fire as last as the daemon does, through an outage.
func TestDueLoop(t *testing.T) {
	s := mustParse(t, "* * * * *")
	start := time.Date(2026, 1, 1, 12, 0, 30, 0, time.UTC)
	for _, tc := range []struct {
		misfire schedule.Misfire
		want    []string // fire times of the runs started
	}{
		{schedule.MisfireRunOnce, []string{"12:01:00", "12:02:00", "12:07:00", "12:08:00", "12:09:00"}},
		{schedule.MisfireSkip, []string{"12:01:00", "12:02:00", "12:08:00", "12:09:00"}},
	} {
		t.Run(string(tc.misfire), func(t *testing.T) {
			last := start // the creation time
			var runs []string
			for now := start; now.Before(start.Add(9 * time.Minute)); now = now.Add(time.Second) {
				if now.After(start.Add(2*time.Minute)) && now.Before(start.Add(7*time.Minute)) {
					continue // the daemon is down from 12:02:30 to 12:07:30
				}
				fire, _, ok := schedule.Due(s, time.UTC, last, now, tc.misfire, time.Second)
				if ok {
					runs = append(runs, fire.Format("15:04:05"))
				}
				if !fire.IsZero() {
					last = fire
				}
			}
			if len(runs) != len(tc.want) {
				t.Fatalf("got runs %v, want %v", runs, tc.want)
			}
			for i := range runs {
				if runs[i] != tc.want[i] {
					t.Fatalf("got runs %v, want %v", runs, tc.want)
				}
			}
		})
	}
}

func TestAdmit(t *testing.T) {
	cases := []struct {
		name       string
		policy     schedule.Concurrency
		running    int
		start      bool
		cancelPrev bool
	}{
		{"allow, none running", schedule.ConcurrencyAllow, 0, true, false},
		{"allow, some running", schedule.ConcurrencyAllow, 3, true, false},
		{"forbid, none running", schedule.ConcurrencyForbid, 0, true, false},
		{"forbid, one running", schedule.ConcurrencyForbid, 1, false, false},
		{"replace, none running", schedule.ConcurrencyReplace, 0, true, false},
		{"replace, some running", schedule.ConcurrencyReplace, 2, true, true},
		{"zero value is allow", "", 2, true, false},
		{"unknown is forbid, none running", "sometimes", 0, true, false},
		{"unknown is forbid, one running", "sometimes", 1, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start, cancel := schedule.Admit(tc.policy, tc.running)
			if start != tc.start || cancel != tc.cancelPrev {
				t.Fatalf("got start %v cancel %v, want start %v cancel %v", start, cancel, tc.start, tc.cancelPrev)
			}
		})
	}
}

func TestParseMisfire(t *testing.T) {
	cases := []struct {
		in, err string
		want    schedule.Misfire
	}{
		{"skip", "", schedule.MisfireSkip},
		{"run-once", "", schedule.MisfireRunOnce},
		{"", "", schedule.DefaultMisfire},
		{"Skip", `misfire "Skip": want "skip" or "run-once" (default "run-once")`, ""},
		{"run_once", `misfire "run_once": want "skip" or "run-once" (default "run-once")`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := schedule.ParseMisfire(tc.in)
			checkPolicyErr(t, err, tc.err, "misfire")
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if schedule.DefaultMisfire != schedule.MisfireRunOnce {
		t.Fatalf("default misfire %q, want run-once", schedule.DefaultMisfire)
	}
}

func TestParseConcurrency(t *testing.T) {
	cases := []struct {
		in, err string
		want    schedule.Concurrency
	}{
		{"allow", "", schedule.ConcurrencyAllow},
		{"forbid", "", schedule.ConcurrencyForbid},
		{"replace", "", schedule.ConcurrencyReplace},
		{"", "", schedule.DefaultConcurrency},
		{"queue", `concurrency "queue": want "allow", "forbid" or "replace" (default "allow")`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := schedule.ParseConcurrency(tc.in)
			checkPolicyErr(t, err, tc.err, "concurrency")
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func checkPolicyErr(tb testing.TB, err error, want, field string) {
	tb.Helper()
	switch {
	case want == "" && err != nil:
		tb.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		tb.Fatalf("got no error, want %q", want)
	case want != "":
		var ce *core.Error
		if err.Error() != want || !errors.As(err, &ce) || !errors.Is(err, core.ErrInvalid) || ce.Field != field {
			tb.Fatalf("got %T %q, want a *core.Error for field %s: %q", err, err, field, want)
		}
	}
}
