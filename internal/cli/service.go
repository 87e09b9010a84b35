package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wisp-run/wisp/internal/core"
)

func (a *app) serviceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service",
		Aliases: []string{"services", "svc"},
		Short:   "Create, list, inspect, change and delete services",
	}
	cmd.AddCommand(a.serviceCreate(), a.serviceList(), a.serviceGet(), a.serviceSet(), a.serviceDelete())
	return cmd
}

// policyFlags adds the scaling-policy flags and returns a function that builds
// a patch from the flags that were given. For a change (change true) a flag
// that is not given leaves its setting as it is, so the help shows no
// defaults but says so.
func policyFlags(f *pflag.FlagSet, change bool) func() (core.PolicyPatch, error) {
	var (
		minI, maxI, target, rps int
		standby                 int
		idle, pause             string
		reqLogs, logBytes       string
		logAge                  string
		asyncConc, attempts     int
		minBackoff, maxBackoff  string
		maxAge                  string
		keepPrev                string
		minSchedule             []string
		singleton               bool
	)
	def := func(v int) int { return v }
	defS := func(v string) string { return v }
	suffix := ""
	// newDef names a default in the help of a change, where pflag shows none.
	newDef := func(string) string { return "" }
	if change {
		def = func(int) int { return 0 }
		defS = func(string) string { return "" }
		suffix = "; unchanged unless given"
		newDef = func(v string) string { return "; default " + v + " for a new service" }
	}
	f.IntVar(&minI, "min-instances", 0, "instances kept per version even when idle (0 allows scale to zero)"+suffix)
	f.IntVar(&standby, "standby", 0, "paused instances kept per version with traffic that would otherwise be at zero (0 to 16, at most --max-instances): memory, not CPU; a request thaws one in milliseconds"+suffix)
	f.StringArrayVar(&minSchedule, "min-schedule", nil, "min instances by time window, 'DAYS HH:MM-HH:MM ZONE=MIN' (e.g. 'mon-fri 08:00-18:00 Europe/Paris=2'; repeatable; where windows overlap the highest wins; --min-instances applies outside every window; 'none' removes the schedule)"+suffix)
	f.StringVar(&keepPrev, "keep-previous", defS(core.DefaultKeepPrevious.String()), "after traffic moves away from a version, keep one of its instances (paused) this long so a rollback meets no cold start (0 to 24h; 0: off)"+newDef("10m")+suffix)
	f.BoolVar(&singleton, "singleton", false, "at most one instance of the service runs, across all its versions (sets --max-instances 1; a traffic switch stops the old instance before the new one starts, requests wait)"+suffix)
	f.IntVar(&maxI, "max-instances", def(core.DefaultMaxInstances), "maximum instances per version"+suffix)
	f.IntVar(&target, "target-concurrency", def(core.DefaultTargetConcurrency), "in-flight requests per instance the autoscaler aims for"+suffix)
	f.IntVar(&rps, "target-rps", 0, "requests per second per instance the autoscaler aims for instead of --target-concurrency (0: off)"+suffix)
	f.StringVar(&idle, "idle-timeout", defS(core.DefaultIdleTimeout.String()), "stop and remove an instance idle this long (e.g. 2s, 5m)"+suffix)
	f.StringVar(&pause, "pause-after", defS(core.DefaultPauseAfter.String()), "pause an instance idle this long; 0 never pauses"+suffix)
	f.StringVar(&reqLogs, "request-logs", defS("off"), "log one line per request: on or off"+suffix)
	f.StringVar(&logBytes, "log-max-bytes", defS(core.ByteSize(core.DefaultLogMaxBytes).String()), "keep at most this much of the service's logs (e.g. 50MiB, 1GiB)"+suffix)
	f.StringVar(&logAge, "log-max-age", defS("7d"), "remove log entries older than this (e.g. 12h, 7d)"+suffix)
	f.IntVar(&asyncConc, "async-concurrency", def(core.DefaultAsyncConcurrency), "async calls of the service dispatched at once by each replica, separately from sync traffic (1 to 1000)"+newDef("10")+suffix)
	f.IntVar(&attempts, "max-attempts", def(core.DefaultMaxAttempts), "attempts of an async call before it is dead (1 to 100)"+newDef("5")+suffix)
	f.StringVar(&minBackoff, "min-backoff", defS(core.DefaultMinBackoff.String()), "delay before an async call's first retry, doubled per attempt with jitter (10ms to 1h)"+newDef("1s")+suffix)
	f.StringVar(&maxBackoff, "max-backoff", defS(core.DefaultMaxBackoff.String()), "the cap of an async call's retry delay (10ms to 24h, at least --min-backoff)"+newDef("5m")+suffix)
	f.StringVar(&maxAge, "max-age", defS("24h"), "an async call not succeeded this long after it was submitted is dead (1s to 7d, e.g. 12h, 2d)"+newDef("24h")+suffix)
	return func() (core.PolicyPatch, error) {
		var p core.PolicyPatch
		if f.Changed("request-logs") {
			on, err := onOff(reqLogs)
			if err != nil {
				return p, usagef("--request-logs: %v", err)
			}
			p.RequestLogs = &on
		}
		if f.Changed("log-max-bytes") {
			n, err := core.ParseByteSize(logBytes)
			if err != nil {
				return p, usagef("--log-max-bytes: %v", err)
			}
			v := int64(n)
			p.LogMaxBytes = &v
		}
		if f.Changed("log-max-age") {
			d, err := core.ParseDays(logAge)
			if err != nil {
				return p, usagef("--log-max-age: %v", err)
			}
			p.LogMaxAge = &d
		}
		if f.Changed("max-age") {
			d, err := core.ParseDays(maxAge)
			if err != nil {
				return p, usagef("--max-age: %v", err)
			}
			p.MaxAge = &d
		}
		if f.Changed("async-concurrency") {
			p.AsyncConcurrency = &asyncConc
		}
		if f.Changed("max-attempts") {
			p.MaxAttempts = &attempts
		}
		if f.Changed("min-instances") {
			p.MinInstances = &minI
		}
		if f.Changed("max-instances") {
			p.MaxInstances = &maxI
		}
		if f.Changed("standby") {
			p.Standby = &standby
		}
		if f.Changed("singleton") {
			p.Singleton = &singleton
		}
		if f.Changed("min-schedule") {
			windows := []core.MinWindow{}
			for _, w := range minSchedule {
				if strings.EqualFold(strings.TrimSpace(w), "none") && len(minSchedule) == 1 {
					break
				}
				win, err := core.ParseMinWindow(w)
				if err != nil {
					return p, usagef("--min-schedule: %v", err)
				}
				windows = append(windows, win)
			}
			p.MinInstancesSchedule = &windows
		}
		if f.Changed("target-concurrency") {
			p.TargetConcurrency = &target
		}
		if f.Changed("target-rps") {
			p.TargetRPS = &rps
		}
		for _, d := range []struct {
			flag, val string
			dst       **core.Duration
		}{{"idle-timeout", idle, &p.IdleTimeout}, {"pause-after", pause, &p.PauseAfter},
			{"min-backoff", minBackoff, &p.MinBackoff}, {"max-backoff", maxBackoff, &p.MaxBackoff},
			{"keep-previous", keepPrev, &p.KeepPrevious}} {
			if !f.Changed(d.flag) {
				continue
			}
			v, err := core.ParseDuration(d.val)
			if err != nil {
				return p, usagef("--%s: %v", d.flag, err)
			}
			*d.dst = &v
		}
		return p, nil
	}
}

// onOff reads on/off (and true/false, yes/no).
func onOff(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is neither on nor off", s)
}

func onOffString(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func (a *app) serviceCreate() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a service, reachable at NAME.<domain> once it has a version",
		Example: `  wisp service create hello
  wisp service create api --min-instances 1 --idle-timeout 10m`,
		Args: cobra.ExactArgs(1),
	}
	patch := policyFlags(cmd.Flags(), false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := patch()
		if err != nil {
			return err
		}
		sv, err := a.client().CreateService(cmd.Context(), args[0], p)
		if err != nil {
			return err
		}
		return a.emit(sv, func() error {
			fmt.Fprintf(a.stdout, "Created service %s at %s\nNext: wisp version create %s --image IMAGE\n", sv.Name, sv.URL, sv.Name)
			return nil
		})
	}
	return cmd
}

func (a *app) serviceList() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List services",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().ListServices(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(list, func() error {
				if len(list) == 0 {
					fmt.Fprintln(a.stdout, "No services yet. Create one with: wisp service create NAME")
					return nil
				}
				rows := make([][]string, 0, len(list))
				for _, s := range list {
					p := s.Policy
					instances := fmt.Sprintf("%d-%d", p.MinInstances, p.MaxInstances)
					if p.Singleton {
						instances += " (singleton)"
					}
					standby := "-"
					if p.Standby > 0 {
						standby = strconv.Itoa(p.Standby) + " paused"
					}
					rows = append(rows, []string{s.Name, s.URL, instances, standby,
						strconv.Itoa(p.TargetConcurrency), p.IdleTimeout.String(), ago(s.CreatedAt)})
				}
				return a.table([]string{"NAME", "URL", "INSTANCES", "STANDBY", "TARGET", "IDLE-TIMEOUT", "CREATED"}, rows)
			})
		},
	}
}

func (a *app) printService(ctx context.Context, s core.Service) error {
	return a.emit(s, func() error {
		p := s.Policy
		pause := pauseString(p.PauseAfter)
		info, infoErr := a.client().Info(ctx)
		noPause := infoErr == nil && info.NoPause
		if noPause && p.PauseAfter != 0 {
			pause += " (no effect: the " + info.Runtime + " runtime cannot pause instances)"
		}
		return a.fields([][2]string{
			{"Name", s.Name}, {"URL", s.URL}, {"Host", s.Host},
			{"Min instances", strconv.Itoa(p.MinInstances)}, {"Max instances", strconv.Itoa(p.MaxInstances)},
			{"Standby", a.standbyCost(ctx, s, noPause)},
			{"Min schedule", minScheduleString(p)}, {"Keep previous", keepPreviousString(p)},
			{"Singleton", singletonString(p.Singleton)},
			{"Target concurrency", strconv.Itoa(p.TargetConcurrency)}, {"Target RPS", rpsString(p.TargetRPS)},
			{"Idle timeout", p.IdleTimeout.String()}, {"Pause after", pause},
			{"Request logs", onOffString(p.RequestLogs)},
			{"Log retention", fmt.Sprintf("%s, %s", core.ByteSize(p.LogMaxBytes), p.LogMaxAge)},
			{"Async concurrency", strconv.Itoa(p.AsyncConcurrency)},
			{"Async retries", fmt.Sprintf("%d attempts, backoff %s to %s", p.MaxAttempts, p.MinBackoff, p.MaxBackoff)},
			{"Async max age", p.MaxAge.String()},
			{"Created", s.CreatedAt.Local().Format("2006-01-02 15:04:05")},
		})
	})
}

// standbyCost describes what the service's standbys cost, from the memory
// limits of the versions that get traffic (core.StandbyCost). Without the
// traffic it gives the count alone.
func (a *app) standbyCost(ctx context.Context, s core.Service, noPause bool) string {
	n := s.Policy.Standby
	if n == 0 {
		return core.StandbyCost(0, nil, noPause)
	}
	t, err := a.client().GetTraffic(ctx, s.Name)
	if err != nil {
		return fmt.Sprintf("%d paused instance(s) per version with traffic (memory, not CPU)", n)
	}
	versions, err := a.client().ListVersions(ctx, s.Name)
	if err != nil {
		return fmt.Sprintf("%d paused instance(s) per version with traffic (memory, not CPU)", n)
	}
	routable := t.Routable()
	var on []core.Version
	for _, v := range versions {
		if routable[v.Number] {
			on = append(on, v)
		}
	}
	return core.StandbyCost(n, on, noPause)
}

func minScheduleString(p core.ScalingPolicy) string {
	if len(p.MinInstancesSchedule) == 0 {
		return "none"
	}
	parts := make([]string, len(p.MinInstancesSchedule))
	for i, w := range p.MinInstancesSchedule {
		parts[i] = w.String()
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(" (the highest of the windows in force, else %d)", p.MinInstances)
}

func keepPreviousString(p core.ScalingPolicy) string {
	switch {
	case p.KeepPrevious == 0:
		return "off"
	case p.Singleton:
		return p.KeepPrevious.String() + " (no effect: a singleton's previous instance stops before the next starts)"
	}
	return p.KeepPrevious.String()
}

func singletonString(on bool) string {
	if on {
		return "yes (at most one instance across all versions)"
	}
	return "no"
}

func rpsString(n int) string {
	if n == 0 {
		return "off"
	}
	return strconv.Itoa(n)
}

func pauseString(d core.Duration) string {
	if d == 0 {
		return "never"
	}
	return d.String()
}

func (a *app) serviceGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a service and its scaling policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.client().GetService(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printService(cmd.Context(), s)
		},
	}
}

func (a *app) serviceSet() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "set NAME",
		Aliases: []string{"update"},
		Short:   "Change a service's scaling and log policy (never creates a version)",
		Example: `  wisp service set hello --idle-timeout 2s --pause-after 1s
  wisp service set hello --min-instances 1 --max-instances 20
  wisp service set hello --standby 1 --pause-after 5s
  wisp service set hello --min-schedule 'mon-fri 08:00-18:00 Europe/Paris=2' --keep-previous 30m
  wisp service set cron --singleton
  wisp service update hello --request-logs on --log-max-bytes 50MiB --log-max-age 7d
  wisp service update hello --async-concurrency 4 --max-attempts 10 --min-backoff 500ms --max-backoff 1m --max-age 2d`,
		Args: cobra.ExactArgs(1),
	}
	patch := policyFlags(cmd.Flags(), true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := patch()
		if err != nil {
			return err
		}
		if p.IsEmpty() {
			return usagef("nothing to change: give at least one of --min-instances, --max-instances, --standby, --min-schedule, --keep-previous, --singleton, --target-concurrency, --target-rps, --idle-timeout, --pause-after, --request-logs, --log-max-bytes, --log-max-age")
		}
		s, err := a.client().UpdatePolicy(cmd.Context(), args[0], p)
		if err != nil {
			return err
		}
		return a.printService(cmd.Context(), s)
	}
	return cmd
}

func (a *app) serviceDelete() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a service with all its versions and traffic history",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteService(cmd.Context(), args[0]); err != nil {
				return err
			}
			return a.emit(map[string]string{"deleted": args[0]}, func() error {
				fmt.Fprintf(a.stdout, "Deleted service %s\n", args[0])
				return nil
			})
		},
	}
}
