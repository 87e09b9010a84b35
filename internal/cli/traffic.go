package cli

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/core"
)

func (a *app) trafficCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "traffic",
		Short: "Split a service's requests over its versions; every change is kept in a history",
	}
	cmd.AddCommand(a.trafficSet(), a.trafficGet(), a.trafficHistory(), a.trafficRollback(), a.trafficMirror())
	return cmd
}

// parseWeights reads "1=90 2=10" (or "v1=90"); a lone "2" means 2=100.
func parseWeights(args []string) ([]core.Weight, error) {
	if len(args) == 1 && !strings.Contains(args[0], "=") {
		n, err := parseVersionArg(args[0])
		if err != nil {
			return nil, usagef("%q is not VERSION=PERCENT (for example 1=90) nor a lone VERSION (for 100%%)", args[0])
		}
		return []core.Weight{{Version: n, Percent: 100}}, nil
	}
	out := make([]core.Weight, 0, len(args))
	for _, arg := range args {
		v, p, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, usagef("%q is not VERSION=PERCENT, for example 1=90", arg)
		}
		n, err := parseVersionArg(v)
		if err != nil {
			return nil, err
		}
		pct, err := strconv.Atoi(strings.TrimSuffix(p, "%"))
		if err != nil {
			return nil, usagef("%q: percent %q is not a whole number", arg, p)
		}
		out = append(out, core.Weight{Version: n, Percent: pct})
	}
	return out, nil
}

func parseTags(flags []string) (map[string]int, error) {
	tags := map[string]int{}
	for _, f := range flags {
		name, v, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, usagef("--tag %q is not NAME=VERSION, for example canary=2", f)
		}
		n, err := parseVersionArg(v)
		if err != nil {
			return nil, err
		}
		tags[name] = n
	}
	return tags, nil
}

// parseRules reads --rule flags in order (core.ParseRequestRule's syntax).
func parseRules(flags []string) ([]core.RequestRule, error) {
	rules := make([]core.RequestRule, 0, len(flags))
	for i, f := range flags {
		r, err := core.ParseRequestRule(f)
		if err != nil {
			return nil, usagef("--rule %d: %v", i+1, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// trafficAttempts bounds how often a command that reads the split, changes
// it and writes it back starts over when the split changed in between.
const trafficAttempts = 5

func (a *app) trafficSet() *cobra.Command {
	var (
		tags, rules             []string
		noTags, noRules, sticky bool
		message                 string
	)
	cmd := &cobra.Command{
		Use:   "set SERVICE VERSION=PERCENT...",
		Short: "Set a new traffic split (percents sum to 100)",
		Long: `Set a new traffic split. Percents are whole numbers that sum to 100; a lone
VERSION gives it 100%. Tags, rules and stickiness are kept from the current
split unless you give --tag, --no-tags, --rule, --no-rules or --sticky. The
mirror (wisp traffic mirror) is kept too, unless the new split gives its
version 100%.

A --rule sends the requests that match it to a version or tag before the
weighted pick (and before stickiness; a v<N>-- or tag host and the
Wisp-Version header still come first). Rules are tried in the order given,
the first match wins; at most 50. Conditions, joined by &&:
  header:NAME=VALUE   header:NAME^=PREFIX   header:NAME~=REGEX   header:NAME
  cookie:NAME=VALUE   cookie:NAME   query:NAME=VALUE   query:NAME
  source:CIDR         (the connection's address; X-Forwarded-For only from
                       the proxies of wisp serve --trusted-proxies)
and after -> a version (2 or v2) or tag:NAME, a tag of the same split.
A regex is Go's RE2, unanchored. A value is taken as written up to the next
&& (or the last ->), without spaces at its end; to hold &&, such spaces or
start with a quote, double-quote it, with backslash escapes:
  header:X-Query="a && b"   header:If-None-Match="\"v1\""

The new split is written only if the current one is still the one this
command read (If-Match), so a change someone else made meanwhile is never
lost: the command reads the split again and retries, a few times.`,
		Example: `  wisp traffic set hello 1=90 2=10 --tag canary=2
  wisp traffic set hello 2
  wisp traffic set hello 1=50 2=50 --sticky -m "A/B test"
  wisp traffic set hello 1=100 --rule 'header:X-Beta=1 -> 2'
  wisp traffic set hello 1=100 --tag canary=3 --rule 'cookie:beta=yes && source:10.0.0.0/8 -> tag:canary'
  wisp traffic set hello 1=100 --rule 'query:q="a && b" -> 2'`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			weights, err := parseWeights(args[1:])
			if err != nil {
				return err
			}
			var given map[string]int
			switch {
			case noTags && len(tags) > 0:
				return usagef("give --tag or --no-tags, not both")
			case noTags:
				given = map[string]int{}
			case len(tags) > 0:
				if given, err = parseTags(tags); err != nil {
					return err
				}
			}
			var givenRules []core.RequestRule
			switch {
			case noRules && len(rules) > 0:
				return usagef("give --rule or --no-rules, not both")
			case noRules:
				givenRules = []core.RequestRule{}
			case len(rules) > 0:
				if givenRules, err = parseRules(rules); err != nil {
					return err
				}
			}
			service, c := args[0], a.client()
			for attempt := 1; ; attempt++ {
				cur, err := c.GetTraffic(cmd.Context(), service)
				var cond int64
				switch {
				case err == nil:
					cond = cur.ID
				case errors.Is(err, core.ErrNotFound):
					// No split yet (or no service: the write says which).
				default:
					return err
				}
				t := core.Traffic{Weights: weights, Message: message, Sticky: sticky, Tags: given}
				if given == nil {
					t.Tags = cur.Tags
				}
				t.Rules = givenRules
				if givenRules == nil {
					t.Rules = cur.Rules
				}
				if !cmd.Flags().Changed("sticky") {
					t.Sticky = cur.Sticky
				}
				// The mirror is kept, unless the new split gives its
				// version everything (nothing left to copy).
				t.Mirror = t.MirrorFor(cur.Mirror)
				e, err := c.SetTrafficIf(cmd.Context(), service, t, cond)
				if errors.Is(err, core.ErrPreconditionFailed) {
					if attempt < trafficAttempts {
						continue
					}
					return fmt.Errorf("the traffic of %s kept changing while this command ran (%d attempts), so nothing was set; "+
						"see wisp traffic history %s, then run the command again", service, trafficAttempts, service)
				}
				if err != nil {
					return err
				}
				return a.printEntry(e)
			}
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&tags, "tag", nil, "tag NAME=VERSION, reachable at NAME--SERVICE.<domain> (repeatable; replaces the current tags)")
	f.BoolVar(&noTags, "no-tags", false, "remove all tags")
	f.StringArrayVar(&rules, "rule", nil, "request rule 'CONDITION[ && CONDITION…] -> VERSION|tag:NAME', tried in order (repeatable; replaces the current rules)")
	f.BoolVar(&noRules, "no-rules", false, "remove all request rules")
	f.BoolVar(&sticky, "sticky", false, "keep each client on the version it first got")
	f.StringVarP(&message, "message", "m", "", "note kept in the history")
	return cmd
}

func splitString(t core.Traffic) string {
	parts := make([]string, 0, len(t.Weights))
	for _, w := range t.Weights {
		parts = append(parts, fmt.Sprintf("v%d=%d%%", w.Version, w.Percent))
	}
	return strings.Join(parts, " ")
}

func tagString(t core.Traffic) string {
	names := make([]string, 0, len(t.Tags))
	for n := range t.Tags {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=v%d", n, t.Tags[n]))
	}
	return orDash(strings.Join(parts, " "))
}

// ruleString is an entry's rules on one line, separated by "; ".
func ruleString(t core.Traffic) string {
	parts := make([]string, len(t.Rules))
	for i, r := range t.Rules {
		parts[i] = r.String()
	}
	return orDash(strings.Join(parts, "; "))
}

func (a *app) printEntry(e core.TrafficEntry) error {
	return a.emit(e, func() error {
		rows := make([][]string, 0, len(e.Weights))
		for _, w := range e.Weights {
			rows = append(rows, []string{strconv.Itoa(w.Version), strconv.Itoa(w.Percent) + "%", orDash(strings.Join(e.TagsOf(w.Version), ","))})
		}
		// Tagged versions without weight are reachable too; list them.
		for _, name := range sortedTagNames(e.Tags) {
			n := e.Tags[name]
			if !hasWeight(e.Traffic, n) {
				rows = append(rows, []string{strconv.Itoa(n), "0%", name})
			}
		}
		if err := a.table([]string{"VERSION", "TRAFFIC", "TAGS"}, rows); err != nil {
			return err
		}
		if len(e.Rules) > 0 {
			fmt.Fprintln(a.stdout, "\nRules, first match wins:")
			for i, r := range e.Rules {
				fmt.Fprintf(a.stdout, "  %d. %s\n", i+1, r)
			}
		}
		if e.Mirror != nil {
			fmt.Fprintf(a.stdout, "\nMirror: %s\n", e.Mirror)
		}
		fmt.Fprintf(a.stdout, "\nEntry %d, %s, sticky: %t", e.ID, ago(e.CreatedAt), e.Sticky)
		if e.Message != "" {
			fmt.Fprintf(a.stdout, ", %q", e.Message)
		}
		fmt.Fprintln(a.stdout)
		return nil
	})
}

func sortedTagNames(m map[string]int) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func hasWeight(t core.Traffic, n int) bool {
	for _, w := range t.Weights {
		if w.Version == n {
			return true
		}
	}
	return false
}

func (a *app) trafficGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get SERVICE",
		Short: "Show the current traffic split",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.client().GetTraffic(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printEntry(e)
		},
	}
}

func (a *app) trafficHistory() *cobra.Command {
	return &cobra.Command{
		Use:   "history SERVICE",
		Short: "List every traffic split of a service, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().TrafficHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(list, func() error {
				rows := make([][]string, 0, len(list))
				for i, e := range list {
					id := strconv.FormatInt(e.ID, 10)
					if i == len(list)-1 {
						id += " *"
					}
					rows = append(rows, []string{id, ago(e.CreatedAt), splitString(e.Traffic), tagString(e.Traffic),
						strconv.FormatBool(e.Sticky), ruleString(e.Traffic), orDash(e.Message)})
				}
				if err := a.table([]string{"ENTRY", "CREATED", "SPLIT", "TAGS", "STICKY", "RULES", "MESSAGE"}, rows); err != nil {
					return err
				}
				if len(list) > 0 {
					fmt.Fprintf(a.stdout, "\n* current. Restore an entry with: wisp traffic rollback %s --to ENTRY\n", args[0])
				}
				return nil
			})
		},
	}
}

func (a *app) trafficRollback() *cobra.Command {
	var to int64
	cmd := &cobra.Command{
		Use:   "rollback SERVICE",
		Short: "Re-apply the previous split (or --to ENTRY) as a new history entry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to < 0 {
				return usagef("--to must be an entry from wisp traffic history, got %d", to)
			}
			e, err := a.client().RollbackTraffic(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			return a.printEntry(e)
		},
	}
	cmd.Flags().Int64Var(&to, "to", 0, "entry to restore (see wisp traffic history); default: the one before the current")
	return cmd
}
