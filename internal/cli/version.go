package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wisp-run/wisp/internal/core"
)

func (a *app) versionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "version",
		Aliases: []string{"versions", "ver"},
		Short:   "Create, list, inspect and delete immutable versions of a service",
	}
	cmd.AddCommand(a.versionCreate(), a.versionList(), a.versionGet(), a.versionDelete())
	return cmd
}

// parseVersionArg reads "3" or "v3".
func parseVersionArg(s string) (int, error) {
	n, ok := core.ParseVersionNumber(s)
	if !ok {
		return 0, usagef("%q is not a version number; use 1, 2, … or v1, v2, …", s)
	}
	return n, nil
}

func (a *app) versionCreate() *cobra.Command {
	var (
		spec              core.VersionSpec
		memory, timeout   string
		image             string
		env, command, arg []string
		live              livenessFlags
	)
	cmd := &cobra.Command{
		Use:   "create SERVICE [IMAGE]",
		Short: "Create a new immutable version of a service",
		Long: `Create a new immutable version of a service from an image and its settings.
The first version of a service gets 100% of its traffic; later versions get
none until you move traffic to them with "wisp traffic set".`,
		Example: `  wisp version create hello --image hello:1 --env GREETING=Go
  wisp version create hello hello:2 --port 9000 --memory 256Mi --cpu 0.5 --max-concurrency 10`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 2 && image != "" && args[1] != image:
				return usagef("give the image once: as the second argument or with --image")
			case len(args) == 2:
				spec.Image = args[1]
			default:
				spec.Image = image
			}
			if spec.Image == "" {
				return usagef("an image is required: wisp version create %s --image IMAGE", args[0])
			}
			spec.Env, spec.Command, spec.Args = env, command, arg
			if memory != "" {
				m, err := core.ParseByteSize(memory)
				if err != nil {
					return usagef("--memory: %v", err)
				}
				spec.MemoryLimit = m
			}
			if timeout != "" {
				d, err := core.ParseDuration(timeout)
				if err != nil {
					return usagef("--timeout: %v", err)
				}
				if d == 0 {
					return usagef("--timeout must be between 1s and 1h, got 0s; leave it out for the default of %s", core.DefaultTimeout)
				}
				spec.Timeout = d
			}
			probe, err := live.probe(cmd)
			if err != nil {
				return err
			}
			spec.Liveness = probe
			v, err := a.client().CreateVersion(cmd.Context(), args[0], spec)
			if err != nil {
				return err
			}
			return a.emit(v, func() error {
				fmt.Fprintf(a.stdout, "Created version %d of %s (ID %d, image %s)\n", v.Number, v.Service, v.ID, v.Image)
				if t, err := a.client().GetTraffic(cmd.Context(), v.Service); err == nil {
					if p := t.PercentOf(v.Number); p > 0 {
						fmt.Fprintf(a.stdout, "It gets %d%% of traffic.\n", p)
					} else {
						fmt.Fprintf(a.stdout, "It gets no traffic yet. Try a canary: wisp traffic set %s %s --tag canary=%d\n",
							v.Service, canarySplit(t.Traffic, v.Number), v.Number)
					}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&image, "image", "", "image reference, for example hello:1")
	f.IntVar(&spec.Port, "port", core.DefaultPort, "port the container listens on")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable, order kept)")
	f.StringArrayVar(&command, "command", nil, "entrypoint override, one element per flag (repeatable)")
	f.StringArrayVar(&arg, "arg", nil, "argument to the command, one per flag (repeatable)")
	f.StringVar(&memory, "memory", "", "memory limit, for example 256Mi (default: none)")
	f.Float64Var(&spec.CPULimit, "cpu", 0, "CPU limit in cores, for example 0.5 (default: none)")
	f.IntVar(&spec.MaxConcurrency, "max-concurrency", 0, "hard limit of in-flight requests per instance (0: unlimited)")
	f.StringVar(&timeout, "timeout", "", "request timeout, for example 30s (default 60s)")
	f.StringVar(&spec.ReadinessPath, "readiness-path", "", "HTTP path probed before an instance gets traffic (default: TCP connect)")
	f.StringVar(&spec.Description, "description", "", "free text shown in listings")
	live.register(f)
	return cmd
}

// canarySplit suggests moving 10% from the current largest share to version n.
func canarySplit(t core.Traffic, n int) string {
	best := core.Weight{}
	for _, w := range t.Weights {
		if w.Percent > best.Percent {
			best = w
		}
	}
	if best.Percent < 10 {
		return fmt.Sprintf("%d=100", n)
	}
	parts := []string{}
	for _, w := range t.Weights {
		p := w.Percent
		if w.Version == best.Version {
			p -= 10
		}
		if p > 0 {
			parts = append(parts, fmt.Sprintf("%d=%d", w.Version, p))
		}
	}
	return strings.Join(append(parts, fmt.Sprintf("%d=10", n)), " ")
}

func (a *app) versionList() *cobra.Command {
	return &cobra.Command{
		Use:     "list SERVICE",
		Aliases: []string{"ls"},
		Short:   "List a service's versions with their share of traffic and tags",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			list, err := c.ListVersions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(list, func() error {
				if len(list) == 0 {
					fmt.Fprintf(a.stdout, "Service %s has no versions yet. Create one with: wisp version create %s --image IMAGE\n", args[0], args[0])
					return nil
				}
				t, err := c.GetTraffic(cmd.Context(), args[0])
				if err != nil && !errors.Is(err, core.ErrNotFound) {
					return err
				}
				rows := make([][]string, 0, len(list))
				for _, v := range list {
					rows = append(rows, []string{strconv.Itoa(v.Number), strconv.FormatInt(v.ID, 10), v.Image, strconv.Itoa(v.Port),
						strconv.Itoa(t.PercentOf(v.Number)) + "%", orDash(strings.Join(t.TagsOf(v.Number), ",")), ago(v.CreatedAt)})
				}
				return a.table([]string{"VERSION", "ID", "IMAGE", "PORT", "TRAFFIC", "TAGS", "CREATED"}, rows)
			})
		},
	}
}

func (a *app) versionGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get SERVICE VERSION",
		Short: "Show one version's full spec",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseVersionArg(args[1])
			if err != nil {
				return err
			}
			v, err := a.client().GetVersion(cmd.Context(), args[0], n)
			if err != nil {
				return err
			}
			return a.emit(v, func() error {
				mem, cpu, conc := "none", "none", "unlimited"
				if v.MemoryLimit > 0 {
					mem = v.MemoryLimit.String()
				}
				if v.CPULimit > 0 {
					cpu = strconv.FormatFloat(v.CPULimit, 'g', -1, 64) + " cores"
				}
				if v.MaxConcurrency > 0 {
					conc = strconv.Itoa(v.MaxConcurrency)
				}
				return a.fields([][2]string{
					{"Service", v.Service}, {"Version", strconv.Itoa(v.Number)}, {"ID", strconv.FormatInt(v.ID, 10)},
					{"Image", v.Image}, {"Image ID", orDash(v.ImageID)}, {"Port", strconv.Itoa(v.Port)},
					{"Env", orDash(strings.Join(v.Env, " "))}, {"Command", orDash(strings.Join(v.Command, " "))},
					{"Args", orDash(strings.Join(v.Args, " "))}, {"Memory limit", mem}, {"CPU limit", cpu},
					{"Max concurrency", conc}, {"Timeout", v.Timeout.String()}, {"Readiness", orDash(v.ReadinessPath)},
					{"Description", orDash(v.Description)}, {"Created", v.CreatedAt.Local().Format("2006-01-02 15:04:05")},
				})
			})
		},
	}
}

func (a *app) versionDelete() *cobra.Command {
	return &cobra.Command{
		Use:     "delete SERVICE VERSION",
		Aliases: []string{"rm"},
		Short:   "Delete a version that carries no traffic and no tag",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseVersionArg(args[1])
			if err != nil {
				return err
			}
			if err := a.client().DeleteVersion(cmd.Context(), args[0], n); err != nil {
				return err
			}
			return a.emit(map[string]any{"deleted": n, "service": args[0]}, func() error {
				fmt.Fprintf(a.stdout, "Deleted version %d of %s\n", n, args[0])
				return nil
			})
		},
	}
}

// livenessFlags are the flags of a version's liveness probe.
type livenessFlags struct {
	path            string
	tcp             bool
	period, timeout string
	threshold       int
}

func (l *livenessFlags) register(f *pflag.FlagSet) {
	f.StringVar(&l.path, "liveness-path", "", "HTTP path GET every --liveness-period; an instance that fails it --liveness-threshold times in a row is replaced")
	f.BoolVar(&l.tcp, "liveness-tcp", false, "check liveness with a TCP connect to the port instead of an HTTP path")
	f.StringVar(&l.period, "liveness-period", "", "how often liveness is checked (default 10s)")
	f.StringVar(&l.timeout, "liveness-timeout", "", "how long one liveness check may take (default 1s)")
	f.IntVar(&l.threshold, "liveness-threshold", 0, "failures in a row that replace an instance (default 3)")
}

// probe returns the probe the flags ask for, or nil when none was given.
func (l *livenessFlags) probe(cmd *cobra.Command) (*core.Probe, error) {
	given := false
	for _, name := range []string{"liveness-path", "liveness-tcp", "liveness-period", "liveness-timeout", "liveness-threshold"} {
		given = given || cmd.Flags().Changed(name)
	}
	if !given {
		return nil, nil
	}
	switch {
	case l.path != "" && l.tcp:
		return nil, usagef("give --liveness-path or --liveness-tcp, not both")
	case l.path == "" && !l.tcp:
		return nil, usagef("a liveness probe needs --liveness-path PATH or --liveness-tcp")
	}
	p := &core.Probe{Path: l.path, FailureThreshold: l.threshold}
	for _, d := range []struct {
		flag, value string
		dst         *core.Duration
	}{{"--liveness-period", l.period, &p.Period}, {"--liveness-timeout", l.timeout, &p.Timeout}} {
		if d.value == "" {
			continue
		}
		v, err := core.ParseDuration(d.value)
		if err != nil {
			return nil, usagef("%s: %v", d.flag, err)
		}
		if v <= 0 {
			return nil, usagef("%s must be above 0, got %s", d.flag, d.value)
		}
		*d.dst = v
	}
	return p, nil
}
