package schedule

import (
	"math/big"
	"math/bits"
	"time"
)

// searchDays bounds Next. The Gregorian calendar repeats every 400 years
// (146097 days, a whole number of weeks), so a day pattern that matches at
// all matches within that span; the longest real gap, Feb 29 on a weekend
// across 2100, is about 40 years.
const searchDays = 146097

// Next returns the first fire time strictly after after, in loc (nil means
// UTC), or the zero time if there is none within 400 years (in practice,
// only for the zero Schedule). Cron schedules are evaluated on loc's wall
// clock with the daylight-saving rules of the package documentation: a
// specific time that a spring-forward gap skips fires at the end of the
// gap, * and */n times in the gap do not fire, and a wall time repeated by
// a fall-back fires at its first occurrence only. @every schedules fire at
// multiples of their interval since the Unix epoch and ignore loc except
// to express the result.
func (s Schedule) Next(after time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	if s.every > 0 {
		k := everyIndex(after, s.every)
		return everyTime(k.Add(k, big.NewInt(1)), s.every).In(loc)
	}
	if s.minute == 0 || s.hour == 0 || s.month == 0 || s.dom == 0 && s.dow == 0 {
		return time.Time{}
	}
	// Walk the civil days from after's local date. Mapping wall times to
	// instants (first occurrence, end of gap) keeps their order, so the first
	// candidate after after, in wall-clock order, is the answer.
	local := after.In(loc)
	y, m, d := local.Date()
	wd := int(local.Weekday())
	for n := 0; n <= searchDays; {
		last := daysIn(y, m)
		if s.month&(1<<m) == 0 {
			skip := last - d + 1 // to the 1st of the next month
			n, wd, d = n+skip, (wd+skip)%7, 1
			y, m = nextMonth(y, m)
			continue
		}
		if s.matchDay(d, wd) {
			if t, ok := s.firstOnDay(y, m, d, after, loc); ok {
				return t
			}
		}
		n, wd, d = n+1, (wd+1)%7, d+1
		if d > last {
			d = 1
			y, m = nextMonth(y, m)
		}
	}
	return time.Time{}
}

// NextN returns the next n fire times after after (fewer if Next runs out),
// for showing a schedule, as `wisp schedule next` does.
func (s Schedule) NextN(after time.Time, loc *time.Location, n int) []time.Time {
	var out []time.Time
	for t := after; len(out) < n; {
		t = s.Next(t, loc)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

func (s Schedule) matchDay(d, wd int) bool {
	domOK := s.dom&(1<<d) != 0
	dowOK := s.dow&(1<<wd) != 0
	if s.domStar || s.dowStar {
		return domOK && dowOK
	}
	return domOK || dowOK // the Vixie rule
}

// firstOnDay returns the first fire time after after among the day's wall
// times, if any.
func (s Schedule) firstOnDay(y int, m time.Month, d int, after time.Time, loc *time.Location) (time.Time, bool) {
	lastMin := 63 - bits.LeadingZeros64(s.minute)
	for h := 0; h < 24; h++ {
		if s.hour&(1<<h) == 0 {
			continue
		}
		// Skip the hour at once when its last time is not after after.
		if t, ok := s.resolve(y, m, d, h, lastMin, loc); ok && !t.After(after) {
			continue
		}
		for mi := 0; mi <= lastMin; mi++ {
			if s.minute&(1<<mi) == 0 {
				continue
			}
			if t, ok := s.resolve(y, m, d, h, mi, loc); ok && t.After(after) {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// resolve returns the instant at which the wall time fires in loc: itself,
// its first occurrence when a fall-back repeats it, or, when a
// spring-forward gap skips it, the end of the gap for a fixed-time schedule
// and nothing (ok false) for one with * in the minute or hour.
func (s Schedule) resolve(y int, m time.Month, d, h, mi int, loc *time.Location) (time.Time, bool) {
	t := time.Date(y, m, d, h, mi, 0, 0, loc)
	if ty, tm, td := t.Date(); ty == y && tm == m && td == d && t.Hour() == h && t.Minute() == mi {
		return firstOccurrence(t), true
	}
	if !s.fixedTime {
		return time.Time{}, false
	}
	return gapEnd(t, time.Date(y, m, d, h, mi, 0, 0, time.UTC)), true
}

// firstOccurrence returns the earliest instant with t's wall clock. For a
// wall time that a fall-back repeats, time.Date may return either
// occurrence (it returns the second in Europe/Paris and the first in
// America/New_York), so look just before the zone t is in.
func firstOccurrence(t time.Time) time.Time {
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return t
	}
	_, offBefore := start.Add(-time.Nanosecond).Zone()
	_, off := t.Zone()
	if offBefore <= off {
		return t // the zone began by moving clocks forward: nothing repeats
	}
	e := t.Add(-time.Duration(offBefore-off) * time.Second)
	if e.Before(start) && sameWall(e, t) {
		return e
	}
	return t
}

// gapEnd returns the first instant after the gap that skips the wall time
// want (given as UTC fields). time.Date normalised it to t, on one side of
// the transition: after it if the wall clock moved forward, before it
// otherwise; either way the transition is a bound of t's zone.
func gapEnd(t, want time.Time) time.Time {
	start, end := t.ZoneBounds()
	got := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
	switch {
	case got.After(want) && !start.IsZero():
		return start
	case !got.After(want) && !end.IsZero():
		return end
	}
	return t
}

func sameWall(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute() && a.Second() == b.Second()
}

func daysIn(y int, m time.Month) int {
	if m == time.February {
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return maxDays[m]
}

func nextMonth(y int, m time.Month) (int, time.Month) {
	if m == time.December {
		return y + 1, time.January
	}
	return y, m + 1
}

// everyIndex returns floor((t - Unix epoch) / d), exactly for any t:
// UnixNano covers only the years 1678 to 2262.
func everyIndex(t time.Time, d time.Duration) *big.Int {
	ns := new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(int64(time.Second)))
	ns.Add(ns, big.NewInt(int64(t.Nanosecond())))
	return ns.Div(ns, big.NewInt(int64(d))) // Euclidean: the floor, as d > 0
}

// everyTime returns the Unix epoch plus k times d.
func everyTime(k *big.Int, d time.Duration) time.Time {
	ns := new(big.Int).Mul(k, big.NewInt(int64(d)))
	sec, nsec := new(big.Int).DivMod(ns, big.NewInt(int64(time.Second)), new(big.Int))
	return time.Unix(sec.Int64(), nsec.Int64())
}
