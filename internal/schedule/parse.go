package schedule

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Schedule is a parsed cron spec or @every interval. It is a comparable
// value; the zero Schedule never fires.
type Schedule struct {
	spec  string        // normalised, as String returns it
	every time.Duration // > 0 for @every

	// Bit v is set when value v matches. dow holds 0..6 (7 is folded into 0).
	minute, hour, dom, month, dow uint64
	// domStar and dowStar: the field begins with * (the Vixie rule).
	domStar, dowStar bool
	// fixedTime: neither the minute nor the hour field begins with *, so a
	// time missing in a spring-forward gap fires at the end of the gap.
	fixedTime bool
}

// String returns the normalised spec: lower case, fields separated by one
// space, @annually and @midnight as @yearly and @daily, and @every with
// its duration as time.Duration prints it (@every 1h30m0s). Parse of it
// gives the same Schedule.
func (s Schedule) String() string { return s.spec }

type fieldSpec struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
	kind     string   // what a name is, for errors
	note     string   // appended to out-of-range errors
}

var cronFields = [5]fieldSpec{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day-of-month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, kind: "month name (jan..dec)",
		names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day-of-week", min: 0, max: 7, kind: "weekday name (sun..sat)", note: " (0 and 7 are Sunday)",
		names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

var descriptors = []struct{ name, canonical, expr string }{
	{"@yearly", "@yearly", "0 0 1 1 *"},
	{"@annually", "@yearly", "0 0 1 1 *"},
	{"@monthly", "@monthly", "0 0 1 * *"},
	{"@weekly", "@weekly", "0 0 * * 0"},
	{"@daily", "@daily", "0 0 * * *"},
	{"@midnight", "@daily", "0 0 * * *"},
	{"@hourly", "@hourly", "0 * * * *"},
}

const knownDescriptors = "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>"

// MinEvery is the shortest @every interval.
const MinEvery = time.Second

// maxDays is the longest each month can be; February counts its leap day.
var maxDays = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// Parse parses a cron spec (five fields or a descriptor; see the package
// documentation). Its errors are *core.Error of kind core.ErrInvalid for
// field "cron" and say what is wrong, for example:
//
//	cron "*/0 * * * *": minute field "*/0": step must be at least 1
func Parse(spec string) (Schedule, error) {
	orig := strings.Fields(spec)
	if len(orig) > 0 && strings.HasPrefix(orig[0], "@") {
		return parseDescriptor(spec, orig)
	}
	if len(orig) != len(cronFields) {
		return Schedule{}, core.Invalidf("cron", "cron %q: want 5 fields (minute hour day-of-month month day-of-week) or a descriptor like @hourly, got %d", spec, len(orig))
	}
	low := make([]string, len(orig))
	var sets [5]uint64
	for i, f := range cronFields {
		low[i] = strings.ToLower(orig[i])
		set, err := f.parse(low[i])
		if err != nil {
			return Schedule{}, core.Invalidf("cron", "cron %q: %s field %q: %s", spec, f.name, orig[i], err)
		}
		sets[i] = set
	}
	s := Schedule{
		spec:   strings.Join(low, " "),
		minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3],
		dow:     (sets[4] | sets[4]>>7) & (1<<7 - 1), // 7 is Sunday too
		domStar: strings.HasPrefix(low[2], "*"), dowStar: strings.HasPrefix(low[4], "*"),
		fixedTime: !strings.HasPrefix(low[0], "*") && !strings.HasPrefix(low[1], "*"),
	}
	// Only a restricted day-of-month with an unrestricted day-of-week can
	// miss every day: * and */n include the 1st, and a restricted
	// day-of-week (either rule) meets every weekday in every month.
	if !s.domStar && s.dowStar {
		longest := 0
		for m := 1; m <= 12; m++ {
			if s.month&(1<<m) != 0 {
				longest = max(longest, maxDays[m])
			}
		}
		if s.dom&(1<<(longest+1)-1) == 0 {
			why := fmt.Sprintf("none of those months has more than %d days", longest)
			if s.month&(s.month-1) == 0 { // one month
				why = fmt.Sprintf("%s has at most %d days", cronFields[3].names[bits.TrailingZeros64(s.month)-1], longest)
			}
			return Schedule{}, core.Invalidf("cron", "cron %q: never fires: day-of-month %q does not occur in month %q (%s)", spec, orig[2], orig[3], why)
		}
	}
	return s, nil
}

func parseDescriptor(spec string, orig []string) (Schedule, error) {
	name := strings.ToLower(orig[0])
	if name == "@every" {
		if len(orig) != 2 {
			return Schedule{}, core.Invalidf("cron", "cron %q: @every takes one duration, e.g. @every 30s or @every 1h30m", spec)
		}
		d, err := time.ParseDuration(strings.ToLower(orig[1]))
		if err != nil {
			return Schedule{}, core.Invalidf("cron", "cron %q: %q is not a duration (want Go syntax such as 30s, 5m or 1h30m)", spec, orig[1])
		}
		if d < MinEvery {
			return Schedule{}, core.Invalidf("cron", "cron %q: interval %s is below the minimum of %s", spec, d, MinEvery)
		}
		return Schedule{spec: "@every " + d.String(), every: d}, nil
	}
	for _, dsc := range descriptors {
		if dsc.name != name {
			continue
		}
		if len(orig) != 1 {
			return Schedule{}, core.Invalidf("cron", "cron %q: %s takes no fields, got %d", spec, orig[0], len(orig)-1)
		}
		s, err := Parse(dsc.expr)
		if err != nil {
			panic("schedule: descriptor " + dsc.name + ": " + err.Error()) // the table above is wrong
		}
		s.spec = dsc.canonical
		return s, nil
	}
	return Schedule{}, core.Invalidf("cron", "cron %q: unknown descriptor %q; known: %s", spec, orig[0], knownDescriptors)
}

// parse returns the set of values a (lower-case) field matches.
func (f fieldSpec) parse(text string) (uint64, error) {
	items := strings.Split(text, ",")
	var set uint64
	for _, it := range items {
		b, err := f.parseItem(it)
		if err != nil {
			if len(items) > 1 && it != "" {
				return 0, fmt.Errorf("in %q: %w", it, err)
			}
			return 0, err
		}
		set |= b
	}
	return set, nil
}

func (f fieldSpec) parseItem(it string) (uint64, error) {
	if it == "" {
		return 0, errors.New("empty list element")
	}
	rng, stepText, hasStep := strings.Cut(it, "/")
	lo, hi := f.min, f.max
	star := rng == "*"
	switch {
	case star:
		if f.name == "day-of-week" {
			hi = 6 // 7 repeats Sunday
		}
	case rng == "":
		return 0, errors.New("missing value before /")
	default:
		a, b, isRange := strings.Cut(rng, "-")
		var err error
		if lo, err = f.value(a); err != nil {
			return 0, err
		}
		hi = lo
		if isRange {
			if hi, err = f.value(b); err != nil {
				return 0, err
			}
			if f.name == "day-of-week" && b == "sun" && lo > 0 {
				hi = 7 // fri-sun
			}
			if lo > hi {
				return 0, fmt.Errorf("range %s goes backwards (%d is after %d; ranges do not wrap around)", rng, lo, hi)
			}
		} else if hasStep {
			return 0, fmt.Errorf("a step needs a range or *, e.g. %d-%d/%s or */%s", lo, f.max, stepText, stepText)
		}
	}
	step := 1
	if hasStep {
		n, ok := atoi(stepText)
		switch {
		case stepText == "":
			return 0, errors.New("missing step after /")
		case !ok:
			return 0, fmt.Errorf("step %q is not a number", stepText)
		case n < 1:
			return 0, errors.New("step must be at least 1")
		case star && n > hi-lo:
			hint := ""
			switch f.name {
			case "minute":
				hint = fmt.Sprintf("; for every %s minutes use @every %sm", stepText, stepText)
			case "hour":
				hint = fmt.Sprintf("; for every %s hours use @every %sh", stepText, stepText)
			}
			return 0, fmt.Errorf("step %s is larger than the range %d-%d, so it matches only %d%s", stepText, lo, hi, lo, hint)
		}
		step = n
	}
	var set uint64
	for v := lo; v <= hi; v += step {
		set |= 1 << v
	}
	return set, nil
}

// value parses a number or a name.
func (f fieldSpec) value(text string) (int, error) {
	if text == "" {
		return 0, errors.New("missing value in range")
	}
	if n, ok := atoi(text); ok {
		if n < f.min || n > f.max {
			return 0, fmt.Errorf("%s is out of range %d-%d%s", text, f.min, f.max, f.note)
		}
		return n, nil
	}
	for i, name := range f.names {
		if text == name {
			return f.min + i, nil
		}
	}
	if f.kind != "" {
		return 0, fmt.Errorf("%q is not a number or a %s", text, f.kind)
	}
	return 0, fmt.Errorf("%q is not a number", text)
}

// atoi parses an unsigned decimal number; ok is false for anything else,
// signs included. A number too long for any field is returned as tooLarge.
func atoi(s string) (int, bool) {
	if !isDigits(s) {
		return 0, false
	}
	if len(s) > 6 {
		return tooLarge, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

const tooLarge = 1 << 30

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
