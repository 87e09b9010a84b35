package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/core"
)

// The choices of a schedule's --misfire and --concurrency (core.Schedule).
var (
	misfires      = []string{"run-once", "skip"}
	concurrencies = []string{"allow", "forbid", "replace"}
)

func (a *app) scheduleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "schedule",
		Aliases: []string{"schedules", "cron"},
		Short:   "Call a service on a cron schedule",
		Long: `A schedule makes an async call of a service at the times of a cron spec,
in a time zone. Each run is an async call with the retries of any; "wisp
schedule get" shows the recent runs and "wisp schedule next" the coming ones.`,
	}
	cmd.AddCommand(a.scheduleCreate(), a.scheduleList(), a.scheduleGet(), a.scheduleNext(), a.scheduleRun(),
		a.scheduleSuspend(true), a.scheduleSuspend(false), a.scheduleDelete())
	return cmd
}

func (a *app) scheduleCreate() *cobra.Command {
	var (
		s       core.Schedule
		body    string
		headers []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a schedule",
		Long: `Create a schedule that calls --service at the times of --cron: five fields
(minute hour day-of-month month day-of-week) or a descriptor such as @hourly,
@daily or "@every 30s", in --tz (an IANA zone; default UTC, where a day with
a DST change has no missing or doubled runs).

--misfire says what happens to runs missed while Wisp was down: run-once
(the default) fires once for all of them, skip fires none. --concurrency
says what a run does while the previous one is not done: allow (the
default) runs anyway, forbid skips it, replace cancels the previous one.`,
		Example: `  wisp schedule create tick --service reports --cron '*/5 * * * *'
  wisp schedule create nightly --service reports --cron '0 3 * * *' --tz Europe/Paris --path /nightly --concurrency forbid
  wisp schedule create ping --service hello --cron '@every 30s' --method GET --path /healthz
  wisp schedule create digest --service mailer --cron '0 8 * * 1' --body @digest.json -H 'Content-Type: application/json' --suspend`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "service", "cron"); err != nil {
				return err
			}
			if s.Misfire != "" && !slices.Contains(misfires, s.Misfire) {
				return usagef("--misfire must be %s, got %q", strings.Join(misfires, " or "), s.Misfire)
			}
			if s.Concurrency != "" && !slices.Contains(concurrencies, s.Concurrency) {
				return usagef("--concurrency must be %s, got %q", strings.Join(concurrencies, ", "), s.Concurrency)
			}
			h, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			if len(h) > 0 {
				s.Header = h
			}
			if cmd.Flags().Changed("body") {
				b, err := readData("--body", body, cmd.InOrStdin())
				if err != nil {
					return err
				}
				s.Body = string(b)
			}
			s.Name, s.Method = args[0], strings.ToUpper(s.Method)
			out, err := a.client().CreateSchedule(cmd.Context(), s)
			if err != nil {
				return err
			}
			return a.emit(out, func() error {
				next := timeOrDash(out.Next)
				state := ""
				if out.Suspend {
					state = " (suspended: wisp schedule resume " + out.Name + " starts it)"
				}
				fmt.Fprintf(a.stdout, "Created schedule %s: %s calls %s; next run %s%s\nSee the coming runs: wisp schedule next %s\n",
					out.Name, out.Cron, out.Service, next, state, out.Name)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.Service, "service", "", "the service to call (required)")
	f.StringVar(&s.Cron, "cron", "", "when: a 5-field cron spec ('*/5 * * * *') or @hourly, @daily, '@every 30s' (required)")
	f.StringVar(&s.TZ, "tz", "", "the IANA time zone of the cron spec, such as Europe/Paris (default UTC)")
	f.StringVar(&s.Method, "method", "", "HTTP method of each call (default POST)")
	f.StringVar(&s.Path, "path", "", "path of each call (default /)")
	f.StringVar(&body, "body", "", "body of each call: TEXT, @FILE, or @- for standard input")
	f.StringArrayVarP(&headers, "header", "H", nil, "header of each call 'Name: value' (repeatable)")
	f.StringVar(&s.Misfire, "misfire", "", "runs missed while Wisp was down: run-once (default) or skip")
	f.StringVar(&s.Concurrency, "concurrency", "", "a run while the previous is not done: allow (default), forbid or replace")
	f.BoolVar(&s.Suspend, "suspend", false, "create it suspended: no runs until wisp schedule resume")
	return cmd
}

func (a *app) scheduleList() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List schedules with their next run",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().ListSchedules(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(list, func() error {
				if len(list) == 0 {
					fmt.Fprintln(a.stdout, "No schedules yet. Create one with: wisp schedule create NAME --service SERVICE --cron '*/5 * * * *'")
					return nil
				}
				rows := make([][]string, 0, len(list))
				for _, s := range list {
					rows = append(rows, []string{s.Name, s.Service, s.Cron, tzOr(s.TZ), scheduleState(s), timeOrDash(s.Next), timeOrDash(s.LastFire)})
				}
				return a.table([]string{"NAME", "SERVICE", "CRON", "TZ", "STATE", "NEXT", "LAST"}, rows)
			})
		},
	}
}

func tzOr(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

func scheduleState(s core.Schedule) string {
	if s.Suspend {
		return "suspended"
	}
	return "active"
}

func (a *app) scheduleGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a schedule, its next run and its recent runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.client().GetSchedule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(s, func() error {
				method := s.Method
				if method == "" {
					method = "POST"
				}
				err := a.fields([][2]string{{"Name", s.Name}, {"Service", s.Service}, {"Cron", s.Cron}, {"Time zone", tzOr(s.TZ)},
					{"Request", method + " " + pathOr(s.Path)}, {"Misfire", orDefault(s.Misfire, "run-once")},
					{"Concurrency", orDefault(s.Concurrency, "allow")}, {"State", scheduleState(s)},
					{"Next run", timeOrDash(s.Next)}, {"Last fire", timeOrDash(s.LastFire)}, {"Created", stamp(s.CreatedAt)}})
				if err != nil {
					return err
				}
				if len(s.Runs) == 0 {
					fmt.Fprintln(a.stdout, "\nNo runs yet. Run it now with: wisp schedule run "+s.Name)
					return nil
				}
				fmt.Fprintln(a.stdout, "\nRecent runs:")
				rows := make([][]string, 0, len(s.Runs))
				for _, r := range s.Runs {
					rows = append(rows, []string{stamp(r.At), stamp(r.FiredAt), r.State, orDash(r.CallID), durationMS(r.DurationMS), orDash(r.Note)})
				}
				return a.table([]string{"DUE", "FIRED", "STATE", "CALL", "DURATION", "NOTE"}, rows)
			})
		},
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return stamp(*t)
}

func (a *app) scheduleNext() *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:   "next NAME",
		Short: "Print a schedule's next fire times",
		Example: `  wisp schedule next nightly
  wisp schedule next nightly -n 20`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 1 || n > 1000 {
				return usagef("-n must be from 1 to 1000, got %d", n)
			}
			next, err := a.client().NextRuns(cmd.Context(), args[0], n)
			if err != nil {
				return err
			}
			return a.emit(map[string][]string{"next": next}, func() error {
				if len(next) == 0 {
					fmt.Fprintln(a.stdout, "No coming runs.")
				}
				for _, t := range next {
					fmt.Fprintln(a.stdout, t)
				}
				return nil
			})
		},
	}
	cmd.Flags().IntVarP(&n, "count", "n", 5, "how many fire times")
	return cmd
}

func (a *app) scheduleRun() *cobra.Command {
	return &cobra.Command{
		Use:   "run NAME",
		Short: "Run a schedule now, outside its cron (as an async call)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.client().RunSchedule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(map[string]string{"call_id": id}, func() error {
				fmt.Fprintf(a.stdout, "Ran schedule %s: call %s\nRead it with: wisp calls get %s\n", args[0], id, id)
				return nil
			})
		},
	}
}

// scheduleSuspend is `schedule suspend` (suspend true) or `schedule resume`.
func (a *app) scheduleSuspend(suspend bool) *cobra.Command {
	use, short, done := "resume NAME", "Resume a suspended schedule from its next fire time", "Resumed"
	if suspend {
		use, short, done = "suspend NAME", "Suspend a schedule: no runs until resumed", "Suspended"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.client().UpdateSchedule(cmd.Context(), args[0], core.SchedulePatch{Suspend: &suspend})
			if err != nil {
				return err
			}
			return a.emit(s, func() error {
				fmt.Fprintf(a.stdout, "%s schedule %s\n", done, s.Name)
				if !suspend && s.Next != nil {
					fmt.Fprintf(a.stdout, "Next run %s\n", stamp(*s.Next))
				}
				return nil
			})
		},
	}
}

func (a *app) scheduleDelete() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a schedule (the calls it made are kept)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteSchedule(cmd.Context(), args[0]); err != nil {
				return err
			}
			return a.emit(map[string]string{"deleted": args[0]}, func() error {
				fmt.Fprintf(a.stdout, "Deleted schedule %s\n", args[0])
				return nil
			})
		},
	}
}
