package core

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	// Zones are looked up by name (Europe/Paris) on machines without
	// /usr/share/zoneinfo too (a scratch container): the database is
	// embedded, about 450 KB.
	_ "time/tzdata"
)

// MinWindow is one window of policy.min_instances_schedule: on the given
// days, from From to To local time in zone TZ, a version with traffic keeps
// Min instances instead of min_instances.
//
// Days is a comma list of days (mon, tue, …, sun) and ranges (mon-fri; a
// range may wrap: fri-mon), or daily. From and To are HH:MM, To may be
// 24:00; a window whose To is before its From runs past midnight, into
// the next day (22:00-06:00 on fri is Friday 22:00 to Saturday 06:00).
// Times are wall-clock times of the zone, so a window keeps its local hours
// across daylight-saving changes; a From inside the hour skipped in spring
// begins when the clock reaches it, at the jump.
type MinWindow struct {
	Days string `json:"days"`
	From string `json:"from"`
	To   string `json:"to"`
	TZ   string `json:"tz"`
	Min  int    `json:"min"`
}

// MaxMinWindows bounds the windows of a schedule.
const MaxMinWindows = 16

// String returns the window in the CLI's syntax: "mon-fri 08:00-18:00 Europe/Paris=2".
func (w MinWindow) String() string {
	return fmt.Sprintf("%s %s-%s %s=%d", w.Days, w.From, w.To, w.TZ, w.Min)
}

// ParseMinWindow parses the CLI's syntax of a window, "DAYS HH:MM-HH:MM
// ZONE=MIN", and validates it (not against max_instances).
func ParseMinWindow(s string) (MinWindow, error) {
	bad := func(why string) (MinWindow, error) {
		return MinWindow{}, Invalidf("policy.min_instances_schedule",
			"min schedule %q: %s (want DAYS HH:MM-HH:MM ZONE=MIN, e.g. 'mon-fri 08:00-18:00 Europe/Paris=2')", s, why)
	}
	head, num, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return bad("no =MIN")
	}
	f := strings.Fields(head)
	if len(f) != 3 {
		return bad("want three parts before =")
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return bad("the hours must be HH:MM-HH:MM")
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil {
		return bad("MIN must be a whole number")
	}
	w := MinWindow{Days: f[0], From: from, To: to, TZ: f[2], Min: n}
	if _, err := w.compile(); err != nil {
		return MinWindow{}, err
	}
	return w, nil
}

// compiled is a MinWindow ready to be evaluated.
type compiled struct {
	days     [7]bool // by time.Weekday
	from, to int     // minutes since midnight; to may be 1440
	loc      *time.Location
	min      int
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

func (w MinWindow) compile() (compiled, error) {
	field := "policy.min_instances_schedule"
	var c compiled
	days := strings.ToLower(strings.TrimSpace(w.Days))
	if days == "daily" || days == "*" {
		for i := range c.days {
			c.days[i] = true
		}
	} else {
		if days == "" {
			return c, Invalidf(field, "window %q: no days (use mon-fri, sat,sun or daily)", w.String())
		}
		for _, part := range strings.Split(days, ",") {
			lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
			a, okA := dayNames[lo]
			b, okB := a, okA
			if isRange {
				b, okB = dayNames[hi]
			}
			if !okA || !okB {
				return c, Invalidf(field, "window %q: bad day %q (days are mon, tue, wed, thu, fri, sat, sun; ranges like mon-fri)", w.String(), part)
			}
			for d := a; ; d = (d + 1) % 7 {
				c.days[d] = true
				if d == b {
					break
				}
			}
		}
	}
	var err error
	if c.from, err = clockMinutes(w.From, false); err != nil {
		return c, Invalidf(field, "window %q: bad from time %q: %v", w.String(), w.From, err)
	}
	if c.to, err = clockMinutes(w.To, true); err != nil {
		return c, Invalidf(field, "window %q: bad to time %q: %v", w.String(), w.To, err)
	}
	if c.from == c.to {
		return c, Invalidf(field, "window %q: from and to are the same time", w.String())
	}
	if w.TZ == "" || w.TZ == "Local" {
		return c, Invalidf(field, "window %q: name a time zone (UTC, Europe/Paris, …)", w.String())
	}
	if c.loc, err = time.LoadLocation(w.TZ); err != nil {
		return c, Invalidf(field, "window %q: unknown time zone %q", w.String(), w.TZ)
	}
	if w.Min < 0 {
		return c, Invalidf(field, "window %q: min must be 0 or more, got %d", w.String(), w.Min)
	}
	c.min = w.Min
	return c, nil
}

// clockMinutes parses HH:MM into minutes since midnight; 24:00 only when
// allow24.
func clockMinutes(s string, allow24 bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("want HH:MM")
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	switch {
	case err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59:
		return 0, fmt.Errorf("want HH:MM")
	case hh == 24 && mm == 0 && allow24:
		return 24 * 60, nil
	case hh > 23:
		return 0, fmt.Errorf("hours are 00 to 23 (24:00 only as an end)")
	}
	return hh*60 + mm, nil
}

// active reports whether the window holds at t.
func (c compiled) active(t time.Time) bool {
	l := t.In(c.loc)
	mins := l.Hour()*60 + l.Minute()
	day := l.Weekday()
	if c.from < c.to {
		return c.days[day] && mins >= c.from && mins < c.to
	}
	// Past midnight: the evening of a listed day, or the morning after one.
	return c.days[day] && mins >= c.from || c.days[(day+6)%7] && mins < c.to
}

// MinInstancesAt returns the min_instances that applies at now: the highest
// Min of the schedule's windows that hold at now, or MinInstances when none
// does. A window that does not compile (the store holds only validated
// policies) is skipped.
func (p ScalingPolicy) MinInstancesAt(now time.Time) int {
	best, found := 0, false
	for _, w := range p.MinInstancesSchedule {
		c, err := w.compile()
		if err != nil || !c.active(now) {
			continue
		}
		if !found || c.min > best {
			best, found = c.min, true
		}
	}
	if !found {
		return p.MinInstances
	}
	return best
}

// MaxMinInstances returns the highest min_instances the policy ever asks
// for: MinInstances or a window's Min.
func (p ScalingPolicy) MaxMinInstances() int {
	n := p.MinInstances
	for _, w := range p.MinInstancesSchedule {
		n = max(n, w.Min)
	}
	return n
}

func validateSchedule(p ScalingPolicy) error {
	if len(p.MinInstancesSchedule) > MaxMinWindows {
		return Invalidf("policy.min_instances_schedule", "min_instances_schedule has %d windows, at most %d", len(p.MinInstancesSchedule), MaxMinWindows)
	}
	for _, w := range p.MinInstancesSchedule {
		if _, err := w.compile(); err != nil {
			return err
		}
		if w.Min > p.MaxInstances {
			return Invalidf("policy.min_instances_schedule", "window %q: min (%d) must not exceed max_instances (%d)", w.String(), w.Min, p.MaxInstances)
		}
	}
	return nil
}

// EncodeMinSchedule returns the schedule as the stores keep it: JSON, or
// "" for none.
func EncodeMinSchedule(s []MinWindow) string {
	if len(s) == 0 {
		return ""
	}
	b, _ := json.Marshal(s) // strings and ints only: cannot fail
	return string(b)
}

// DecodeMinSchedule reads what EncodeMinSchedule wrote.
func DecodeMinSchedule(s string) ([]MinWindow, error) {
	if s == "" {
		return nil, nil
	}
	var out []MinWindow
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("decode min_instances_schedule: %w", err)
	}
	return out, nil
}
