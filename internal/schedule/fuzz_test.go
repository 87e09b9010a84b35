package schedule_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/schedule"
)

// FuzzParse checks that Parse never panics, fails only with a *core.Error,
// round-trips through String, and yields a Next strictly after its input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"* * * * *", "*/15 * * * *", "0,30 9-10 * * *", "1-30/10 * * * *", "0 9 * * mon-fri",
		"0 0 * * SAT-7", "0 0 * * fri-sun", "0 12 * JAN,Jul *", "0 0 13 * fri", "0 0 */2 * mon",
		"0 0 29 2 *", "0 0 29 2 */6", "30 2 * * *", "*/20 2 * * *", "@yearly", "@annually", "@monthly",
		"@weekly", "@daily", "@midnight", "@hourly", "@every 90m", "@every 1s", "@every 1.5s",
		"", "* * *", "*/0 * * * *", "60 * * * *", "0 0 30 2 *", "@daly", "@every 500ms", "5/15 * * * *",
		"1,,2 * * * *", "- * * * *", "*/ * * * *", "7-0 * * * 7-0",
	} {
		f.Add(s, int64(1767225600))
	}
	zones := []*time.Location{time.UTC, zone(f, "Europe/Paris"), zone(f, "America/New_York"), zone(f, "Australia/Lord_Howe")}
	const span = 200 * 365 * 24 * 3600 // 1970 to about 2170
	f.Fuzz(func(t *testing.T, spec string, unix int64) {
		s, err := schedule.Parse(spec)
		if err != nil {
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Field != "cron" {
				t.Fatalf("Parse(%q): got %T %v, want a *core.Error for field cron", spec, err, err)
			}
			return
		}
		again, err := schedule.Parse(s.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", spec, s, err)
		}
		if diff := cmp.Diff(s, again, cmp.AllowUnexported(schedule.Schedule{})); diff != "" {
			t.Fatalf("Parse(%q).String() = %q parses differently (-first +again):\n%s", spec, s, diff)
		}
		after := time.Unix((unix%span+span)%span, unix&0x3fffffff)
		for _, loc := range zones {
			next := s.Next(after, loc)
			if !next.After(after) {
				t.Fatalf("%q in %s: Next(%s) = %s, want a time after it", s, loc, after, next)
			}
		}
	})
}
