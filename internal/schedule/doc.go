// Package schedule parses cron schedules, computes their fire times, and
// decides, as pure functions of their inputs and now, when a scheduler loop
// should start a run. It does no I/O: the daemon stores the last fire time
// and calls Due and Admit on every tick.
//
// # Syntax
//
// Parse accepts the five fields of standard cron, minute hour day-of-month
// month day-of-week, each a comma-separated list of *, a value, a range a-b,
// or a step */n or a-b/n. Months may be named jan..dec and weekdays sun..sat,
// in any case; day-of-week 0 and 7 are both Sunday (and, as a range end, sun
// means 7, so fri-sun works). Ranges do not wrap around.
//
// As in Vixie cron, a field "is *" when it begins with *: * and */n both
// count. When both day-of-month and day-of-week are restricted (neither
// begins with *), a day matches if either matches: "0 0 1 * mon" fires on
// the first of the month and on every Monday. Otherwise both must match, so
// "0 0 */2 * mon" fires on odd-numbered days that are Mondays. (Kubernetes
// CronJobs, through robfig/cron, read */n as restricted; we follow Vixie,
// whose rule this is.)
//
// Descriptors: @yearly (@annually), @monthly, @weekly, @daily (@midnight),
// @hourly, and @every d with d in Go duration syntax, at least 1s.
//
// Parse rejects what can never fire, such as "0 0 30 2 *", and a step on
// * that would match only the field's first value, such as */90 for minutes
// (a mistake for "every 90 minutes", which is @every 90m).
//
// # Fire times and time zones
//
// A cron schedule is evaluated on the wall clock of the zone Next is given.
// Daylight saving time makes some wall times missing and others double:
//
//   - Spring forward (Europe/Paris on 29 March 2026, 02:00 → 03:00): a job
//     that names a specific time, one whose minute and hour fields both do
//     not begin with *, such as "30 2 * * *", fires once at the first instant
//     after the gap, 03:00 local, however many of its times fall in the gap.
//     A job with * (or */n) in the minute or the hour field, such as
//     "*/15 * * * *" or "30 * * * *", simply has no fire times in the missing
//     hour. This is the rule of Vixie/Debian cron: a daily job is not lost,
//     a repeating job does not fire in a burst.
//   - Fall back (Europe/Paris on 25 October 2026, 03:00 → 02:00): a wall time
//     that occurs twice fires once, at its first occurrence. This holds for
//     every cron job, so "* * * * *" does not fire during the repeated hour;
//     a job that must keep its rhythm through the night should use @every.
//
// @every d fires at the multiples of d since the Unix epoch, whatever the
// zone, so its fire times are the same across restarts and replicas and do
// not drift with the moment the schedule was created.
//
// Next searches up to 400 years ahead, the period of the Gregorian calendar,
// so it returns quickly for every schedule Parse accepts; the zero time means
// no fire time in that span.
//
// # Policies
//
// Due decides whether a run is due now from the last fire time recorded
// durably, and what to do with fire times missed while the daemon was down
// (Misfire). Admit decides whether a due run starts while earlier runs of
// the same job still run (Concurrency).
package schedule
