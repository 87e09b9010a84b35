package schedule

import (
	"math/big"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Misfire says what to do with fire times missed while no scheduler ran
// (the daemon was down, or a leader failover took longer than the grace).
type Misfire string

// Misfire policies.
const (
	// MisfireSkip drops missed fire times: the job next runs at its next
	// scheduled time. For jobs whose late run does harm or no good (send
	// the 09:00 digest at 15:00?).
	MisfireSkip Misfire = "skip"
	// MisfireRunOnce runs a job once for all the fire times it missed,
	// stamped with the latest of them, as soon as a scheduler is back.
	MisfireRunOnce Misfire = "run-once"
)

// DefaultMisfire is run-once: a nightly backup due during a restart or an
// upgrade still happens, which is what users of Kubernetes CronJobs (with
// startingDeadlineSeconds unset) and of anacron expect, and a long outage
// still costs one run, not a burst. Jobs for which late is wrong say skip.
const DefaultMisfire = MisfireRunOnce

// ParseMisfire parses a misfire policy; "" is DefaultMisfire.
func ParseMisfire(s string) (Misfire, error) {
	switch m := Misfire(s); m {
	case "":
		return DefaultMisfire, nil
	case MisfireSkip, MisfireRunOnce:
		return m, nil
	}
	return "", core.Invalidf("misfire", "misfire %q: want %q or %q (default %q)", s, MisfireSkip, MisfireRunOnce, DefaultMisfire)
}

// Concurrency says whether a run starts while earlier runs of the same job
// still run.
type Concurrency string

// Concurrency policies.
const (
	// ConcurrencyAllow starts every run, however many still run.
	ConcurrencyAllow Concurrency = "allow"
	// ConcurrencyForbid starts a run only when none still runs; the due
	// time is dropped otherwise.
	ConcurrencyForbid Concurrency = "forbid"
	// ConcurrencyReplace cancels the runs still running and starts the new one.
	ConcurrencyReplace Concurrency = "replace"
)

// DefaultConcurrency is allow, the default of Kubernetes CronJobs and of
// Nomad periodic jobs, so that a job behaves as users of either expect;
// jobs that must not overlap say forbid.
const DefaultConcurrency = ConcurrencyAllow

// ParseConcurrency parses a concurrency policy; "" is DefaultConcurrency.
func ParseConcurrency(s string) (Concurrency, error) {
	switch c := Concurrency(s); c {
	case "":
		return DefaultConcurrency, nil
	case ConcurrencyAllow, ConcurrencyForbid, ConcurrencyReplace:
		return c, nil
	}
	return "", core.Invalidf("concurrency", "concurrency %q: want %q, %q or %q (default %q)", s, ConcurrencyAllow, ConcurrencyForbid, ConcurrencyReplace, DefaultConcurrency)
}

// MaxMissed bounds the missed count Due reports (and the work it does to
// count): more missed fire times are reported as MaxMissed.
const MaxMissed = 1000

// Due decides whether a run of s is due at now. last is the last fire time
// recorded durably, or the schedule's creation time before its first run;
// a zero last means no history, and then only a run on time fires.
//
// fire is the latest fire time t with last < t <= now (zero when there is
// none: ok false, missed 0). If now - t <= grace, t is on time: ok is true
// and missed counts the fire times before t that were missed. Otherwise t
// is late and missed counts all the fire times in (last, now]; with
// MisfireRunOnce (or "") ok is true, and with MisfireSkip (or any other
// value) ok is false. Either way the caller records fire as the new last,
// whether it started a run or not. missed is at most MaxMissed.
func Due(s Schedule, loc *time.Location, last, now time.Time, misfire Misfire, grace time.Duration) (fire time.Time, missed int, ok bool) {
	grace = max(grace, 0)
	if last.IsZero() {
		last = now.Add(-grace - time.Nanosecond) // (last, now] is the grace
	}
	if !last.Before(now) {
		return time.Time{}, 0, false
	}
	fire, n := s.latest(last, now, loc)
	if n == 0 {
		return time.Time{}, 0, false
	}
	if now.Sub(fire) <= grace {
		return fire, min(n-1, MaxMissed), true
	}
	return fire, min(n, MaxMissed), misfire == MisfireRunOnce || misfire == ""
}

// latest returns the latest fire time in (last, now] and how many there
// are, counting no further than MaxMissed+1.
func (s Schedule) latest(last, now time.Time, loc *time.Location) (time.Time, int) {
	if s.every > 0 {
		kLast, kNow := everyIndex(last, s.every), everyIndex(now, s.every)
		n := new(big.Int).Sub(kNow, kLast)
		if n.Sign() <= 0 {
			return time.Time{}, 0
		}
		if n.Cmp(big.NewInt(MaxMissed+1)) > 0 {
			n.SetInt64(MaxMissed + 1)
		}
		return everyTime(kNow, s.every), int(n.Int64())
	}
	var fire time.Time
	n := 0
	for t := s.Next(last, loc); !t.IsZero() && !t.After(now); t = s.Next(t, loc) {
		fire, n = t, n+1
		if n > MaxMissed {
			return s.latestFrom(fire, now, loc), n
		}
	}
	return fire, n
}

// latestFrom returns the latest fire time at or before now, given a fire
// time known <= now, by bisection on whole seconds: cron fire times are
// whole seconds, zone offsets being whole seconds.
func (s Schedule) latestFrom(known, now time.Time, loc *time.Location) time.Time {
	beyond := func(x int64) bool { // the first fire time after x is after now
		t := s.Next(time.Unix(x, 0), loc)
		return t.IsZero() || t.After(now)
	}
	// Invariant: !beyond(lo-1), beyond(hi).
	lo, hi := known.Unix(), now.Unix()
	for lo < hi {
		mid := lo + (hi-lo)/2
		if beyond(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return s.Next(time.Unix(lo-1, 0), loc)
}

// Admit decides whether a due run starts while running runs of the same
// job still run, and whether those are to be cancelled first. The zero
// Concurrency means DefaultConcurrency; a value ParseConcurrency rejects
// is treated as forbid, which never overlaps runs.
func Admit(policy Concurrency, running int) (start, cancelRunning bool) {
	switch policy {
	case ConcurrencyAllow, "":
		return true, false
	case ConcurrencyReplace:
		return true, running > 0
	default:
		return running <= 0, false
	}
}
