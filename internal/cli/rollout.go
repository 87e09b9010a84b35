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

func (a *app) rolloutCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Move traffic to a version step by step, checking its errors and latency; roll back on failure",
		Long: `A rollout gives a version more traffic step by step (the other versions keep
their proportions). At the end of each step's interval Wisp checks the
version's share of 5xx answers and its p99 latency over the step, against
--max-error-rate and --max-p99, and against the versions it replaces over
the same window (--max-p99-ratio). A failed check restores the traffic
entry before the rollout at once and says why, with the numbers, in the
traffic history. A version with fewer than --min-requests requests in a
step waits (the step is extended, at most 10 more intervals; then the
rollout pauses). See docs/rollouts.md.`,
	}
	cmd.AddCommand(a.rolloutStart(), a.rolloutGet(),
		a.rolloutAct(core.RolloutPause, "Pause the rollout: no checks, no steps, traffic stays"),
		a.rolloutAct(core.RolloutResume, "Resume a paused rollout: its step's interval starts again, from the current split"),
		a.rolloutAct(core.RolloutPromote, "Give the rollout's version 100% now"),
		a.rolloutAct(core.RolloutAbort, "Restore the traffic entry before the rollout"))
	return cmd
}

// rolloutFlags are the flags of rollout start and deploy --rollout.
type rolloutFlags struct {
	steps, interval, maxErrorRate, maxP99 string
	maxP99Ratio                           float64
	minRequests                           int
}

func (f *rolloutFlags) add(fl *pflag.FlagSet) {
	fl.StringVar(&f.steps, "steps", "5,25,50,100", "the version's percents, strictly increasing, ending at 100")
	fl.StringVar(&f.interval, "interval", "1m", "how long each step lasts before its check (1s to 1h)")
	fl.StringVar(&f.maxErrorRate, "max-error-rate", "1%", "the highest share of 5xx answers that passes")
	fl.StringVar(&f.maxP99, "max-p99", "0", "the highest p99 latency that passes, such as 300ms (0: no bound)")
	fl.Float64Var(&f.maxP99Ratio, "max-p99-ratio", core.DefaultMaxP99Ratio, "the highest ratio of the version's p99 to the replaced versions' (0: no comparison)")
	fl.IntVar(&f.minRequests, "min-requests", core.DefaultMinRequests, "requests a step needs before it is judged")
}

func (f rolloutFlags) spec(to int) (core.RolloutSpec, error) {
	spec := core.RolloutSpec{To: to, MinRequests: f.minRequests}
	for _, p := range strings.Split(f.steps, ",") {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(p), "%"))
		if err != nil {
			return spec, usagef("--steps %q: %q is not a whole percent (for example --steps 5,25,50,100)", f.steps, p)
		}
		spec.Steps = append(spec.Steps, n)
	}
	d, err := core.ParseDuration(f.interval)
	if err != nil {
		return spec, usagef("--interval %q is not a duration such as 1m", f.interval)
	}
	spec.Interval = d
	rate, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(f.maxErrorRate), "%"), 64)
	if err != nil {
		return spec, usagef("--max-error-rate %q is not a percent such as 1%% or 0.5", f.maxErrorRate)
	}
	spec.MaxErrorRate = &rate
	if spec.MaxP99, err = core.ParseDuration(f.maxP99); err != nil {
		return spec, usagef("--max-p99 %q is not a duration such as 300ms", f.maxP99)
	}
	ratio := f.maxP99Ratio
	spec.MaxP99Ratio = &ratio
	if f.minRequests == 0 {
		return spec, usagef("--min-requests must be 1 or more")
	}
	// The daemon checks again; checking here too refuses a bad flag before
	// wisp deploy --rollout builds and deploys anything.
	if err := spec.Validate(); err != nil {
		if flag, value := f.flagOf(core.ErrorField(err)); flag != "" {
			return spec, usagef("%s %s: %v", flag, value, err)
		}
		return spec, usageError{err}
	}
	return spec, nil
}

// flagOf names the flag of a RolloutSpec field, and its value as given.
func (f rolloutFlags) flagOf(field string) (flag, value string) {
	switch field {
	case "steps":
		return "--steps", f.steps
	case "interval":
		return "--interval", f.interval
	case "max_error_rate":
		return "--max-error-rate", f.maxErrorRate
	case "max_p99":
		return "--max-p99", f.maxP99
	case "max_p99_ratio":
		return "--max-p99-ratio", strconv.FormatFloat(f.maxP99Ratio, 'g', -1, 64)
	case "min_requests":
		return "--min-requests", strconv.Itoa(f.minRequests)
	}
	return "", ""
}

func (a *app) rolloutStart() *cobra.Command {
	var (
		f  rolloutFlags
		to string
	)
	cmd := &cobra.Command{
		Use:     "start SERVICE --to VERSION",
		Short:   "Start a rollout of a version",
		Example: "  wisp rollout start hello --to 2 --steps 5,25,50,100 --interval 1m --max-error-rate 1% --max-p99 300ms",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef("--to VERSION is required")
			}
			n, err := parseVersionArg(to)
			if err != nil {
				return err
			}
			spec, err := f.spec(n)
			if err != nil {
				return err
			}
			r, err := a.client().StartRollout(cmd.Context(), args[0], spec)
			if err != nil {
				return err
			}
			return a.printRollout(r)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the version that gets the traffic")
	f.add(cmd.Flags())
	return cmd
}

func (a *app) rolloutGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get SERVICE",
		Short: "Show the service's newest rollout: state, step, percent, the last check and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.client().GetRollout(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printRollout(r)
		},
	}
}

func (a *app) rolloutAct(action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " SERVICE",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.client().RolloutAction(cmd.Context(), args[0], action)
			if err != nil {
				return err
			}
			return a.printRollout(r)
		},
	}
}

func (a *app) printRollout(r core.Rollout) error {
	return a.emit(r, func() error {
		kv := [][2]string{
			{"rollout", strconv.FormatInt(r.ID, 10)},
			{"service", r.Service},
			{"to", fmt.Sprintf("v%d", r.To)},
			{"state", string(r.State)},
			{"step", fmt.Sprintf("%d/%d (%d%%), steps %s, every %s", r.Step, len(r.Steps), r.Percent, core.RolloutSteps(r.Steps), r.Interval)},
			{"thresholds", rolloutThresholds(r.RolloutSpec)},
		}
		if c := r.Check; c != nil {
			kv = append(kv, [2]string{"last check", fmt.Sprintf("%s at step %d: %s", c.Result, c.Step, c.Detail)})
		}
		if r.Reason != "" {
			kv = append(kv, [2]string{"reason", r.Reason})
		}
		return a.fields(kv)
	})
}

func rolloutThresholds(s core.RolloutSpec) string {
	out := fmt.Sprintf("error rate ≤ %g%%", *s.MaxErrorRate)
	if s.MaxP99 > 0 {
		out += fmt.Sprintf(", p99 ≤ %s", s.MaxP99)
	}
	if *s.MaxP99Ratio > 0 {
		out += fmt.Sprintf(", p99 ≤ %g× the replaced versions'", *s.MaxP99Ratio)
	}
	return out + fmt.Sprintf(", at least %d requests a step", s.MinRequests)
}

// startDeployRollout starts the rollout of deploy --rollout.
func (a *app) startDeployRollout(ctx context.Context, service string, version int, f rolloutFlags) (core.Rollout, error) {
	spec, err := f.spec(version)
	if err != nil {
		return core.Rollout{}, err
	}
	return a.client().StartRollout(ctx, service, spec)
}
