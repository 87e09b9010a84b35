package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/core"
)

func (a *app) trafficMirror() *cobra.Command {
	var (
		to, percent        int
		allMethods, off    bool
		ignHeaders, ignFld []string
	)
	cmd := &cobra.Command{
		Use:   "mirror SERVICE (--to VERSION --percent N | --off)",
		Short: "Copy a share of requests to another version and compare the answers",
		Long: `Copy a share of a service's requests to another version and compare its
answers with the primary's; clients only ever get the primary's answer.
Only GET, HEAD and OPTIONS are copied unless --all-methods (a copy of a POST
does its side effect twice). Request bodies over 64 KiB are not copied. The
primary never waits for a copy; with 16 copies of a service in flight, more
are dropped rather than queued. A copy waits at most 5 s for an instance of
the mirror version (the first one starts it), else it counts as an error.

Each pair is compared by status, response headers (but Date,
Content-Length, Wisp-* and --ignore-header) and a hash of the body; a JSON
body is compared without the --ignore-field paths (dot-separated, such as
timestamp or data.id; through an array, each element). See the result with
wisp traffic mirror report SERVICE; it starts again whenever the setting
changes, and covers every replica.

The setting is part of the traffic entry: it is in the history, and a
rollback restores it.`,
		Example: `  wisp traffic mirror hello --to 2 --percent 10
  wisp traffic mirror hello --to 2 --percent 100 --ignore-field timestamp --ignore-header X-Request-Id
  wisp traffic mirror hello --off
  wisp traffic mirror report hello`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			if off {
				if cmd.Flags().Changed("to") || cmd.Flags().Changed("percent") || allMethods || len(ignHeaders)+len(ignFld) > 0 {
					return usagef("--off takes no other flag")
				}
				e, err := c.DeleteMirror(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return a.printEntry(e)
			}
			if !cmd.Flags().Changed("to") {
				return usagef("give --to VERSION (and --percent), or --off")
			}
			e, err := c.SetMirror(cmd.Context(), args[0], core.Mirror{Version: to, Percent: percent, AllMethods: allMethods, IgnoreHeaders: ignHeaders, IgnoreFields: ignFld})
			if err != nil {
				return err
			}
			return a.printEntry(e)
		},
	}
	f := cmd.Flags()
	f.IntVar(&to, "to", 0, "the version that gets the copies")
	f.IntVar(&percent, "percent", 10, "percent of the other versions' requests copied (1-100)")
	f.BoolVar(&allMethods, "all-methods", false, "copy every method, not only GET, HEAD and OPTIONS")
	f.StringArrayVar(&ignHeaders, "ignore-header", nil, "response header left out of the comparison (repeatable)")
	f.StringArrayVar(&ignFld, "ignore-field", nil, "JSON body field path left out of the body hash, such as data.id (repeatable)")
	f.BoolVar(&off, "off", false, "stop mirroring")
	cmd.AddCommand(a.trafficMirrorReport())
	return cmd
}

func (a *app) trafficMirrorReport() *cobra.Command {
	return &cobra.Command{
		Use:   "report SERVICE",
		Short: "Show how the mirror's answers compared with the primary's",
		Long: `Show the mirror report over every replica: per pair of versions, how
many answers were compared and matched, the mismatches by kind, the first
differing examples and the latencies side by side. A replica that cannot
reach the leader answers its own numbers and says the report is partial.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := a.client().MirrorReport(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(rep, func() error { return a.printMirrorReport(rep) })
		},
	}
}

func (a *app) printMirrorReport(rep core.MirrorReport) error {
	if rep.Mirror == nil {
		fmt.Fprintf(a.stdout, "%s mirrors nothing (wisp traffic mirror %s --to VERSION --percent N)\n", rep.Service, rep.Service)
		return nil
	}
	fmt.Fprintf(a.stdout, "Mirror: %s\nSince %s, over %s", rep.Mirror, ago(rep.Since), plural(rep.Replicas, "replica"))
	if rep.Replica != "" {
		fmt.Fprintf(a.stdout, " (answered by %s)", rep.Replica)
	}
	fmt.Fprintln(a.stdout)
	if rep.Partial {
		fmt.Fprintln(a.stdout, "Partial: the leader could not be reached, so these are the answering replica's numbers only.")
	}
	if len(rep.Pairs) == 0 {
		fmt.Fprintln(a.stdout, "\nNo request mirrored yet.")
		return nil
	}
	rows := make([][]string, 0, len(rep.Pairs))
	for _, p := range rep.Pairs {
		rows = append(rows, []string{
			fmt.Sprintf("v%d → v%d", p.Primary, p.Mirror), strconv.FormatInt(p.Compared, 10),
			fmt.Sprintf("%.1f%%", 100*p.MatchRate), mismatchString(p.Mismatches),
			fmt.Sprintf("%d/%d/%d", p.Dropped, p.TooLarge, p.Errors),
			latencyString(p.PrimaryLatency), latencyString(p.MirrorLatency),
		})
	}
	if err := a.table([]string{"PAIR", "COMPARED", "MATCH", "MISMATCHES", "DROPPED/TOO LARGE/ERRORS", "PRIMARY p50/p90/p99", "MIRROR p50/p90/p99"}, rows); err != nil {
		return err
	}
	for _, p := range rep.Pairs {
		if len(p.Examples) == 0 {
			continue
		}
		fmt.Fprintf(a.stdout, "\nFirst differences, v%d → v%d:\n", p.Primary, p.Mirror)
		for _, ex := range p.Examples {
			fmt.Fprintf(a.stdout, "  %s %s: %s; status %d / %d", ex.Method, ex.Path, strings.Join(ex.Kinds, ", "), ex.PrimaryStatus, ex.MirrorStatus)
			if len(ex.Headers) > 0 {
				fmt.Fprintf(a.stdout, "; headers %s", strings.Join(ex.Headers, ", "))
			}
			fmt.Fprintf(a.stdout, "\n    primary: %q\n    mirror:  %q\n", ex.PrimaryBody, ex.MirrorBody)
		}
	}
	return nil
}

// plural is "1 replica", "2 replicas".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func mismatchString(m map[string]int64) string {
	var parts []string
	for _, k := range []string{core.MismatchStatus, core.MismatchHeader, core.MismatchBody} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return orDash(strings.Join(parts, ", "))
}

func latencyString(l core.LatencySummary) string {
	if l.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f/%.1f ms", l.P50, l.P90, l.P99)
}
