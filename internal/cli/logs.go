package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/core"
)

func (a *app) logsCommand() *cobra.Command {
	var (
		follow   bool
		version  int
		instance string
		since    string
		tail     int
		events   bool
	)
	cmd := &cobra.Command{
		Use:   "logs SERVICE",
		Short: "Print a service's logs: its instances' output, and with --events what Wisp did",
		Long: `Print the log stream of a service, oldest first: the lines its instances
wrote to stdout and stderr, kept by Wisp after an instance is scaled to zero
and across daemon restarts (retention per service: log_max_bytes, log_max_age).

Each line reads "TIME vVERSION INSTANCE | TEXT". With --events, platform
events (instance starting and why, ready in N ms, paused, woken, removed,
exited, OOM, backoff, traffic changed, builds) and request lines (when the
service has request_logs on) are printed too, as "[event] message key=value".
On a terminal each instance has its own colour; piped, the output is plain.
With -o json each entry is one JSON object per line (as the API's ndjson).

With -f the command keeps following new entries, through instances coming
and going, until interrupted.`,
		Example: `  wisp logs hello --tail 100
  wisp logs hello -f --events
  wisp logs hello --version 2 --since 10m
  wisp logs hello --since 2026-01-02T15:00:00Z -o json | jq .message`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := core.LogQuery{Version: version, Instance: instance, Tail: tail, Follow: follow,
				Kinds: []core.LogKind{core.LogApp}}
			if events {
				q.Kinds = nil // every kind
			}
			if version < 0 {
				return usagef("--version must be a positive number, got %d", version)
			}
			if tail < 0 || tail > 10000 {
				return usagef("--tail must be from 0 to 10000, got %d", tail)
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usagef("--since: %v", err)
				}
				q.Since = t
			}
			p := &logPrinter{w: a.stdout, json: a.output == "json", color: isTerminal(a.stdout), colors: map[string]string{}}
			return a.client().Logs(cmd.Context(), args[0], q, p.print)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new entries until interrupted")
	f.IntVar(&version, "version", 0, "only this version's entries")
	f.StringVar(&instance, "instance", "", "only this instance's entries")
	f.StringVar(&since, "since", "", "only entries since this time: a duration ago (10m, 2h) or an RFC 3339 time")
	f.IntVar(&tail, "tail", 0, "only the last N entries (0: all), then follow with -f")
	f.BoolVar(&events, "events", false, "include platform events and request lines")
	return cmd
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither a duration (10m) nor an RFC 3339 time (2026-01-02T15:04:05Z)", s)
	}
	return now.Add(-d), nil
}

// instanceColors are the ANSI colours instances get, in order of first sight.
var instanceColors = []string{"\033[36m", "\033[33m", "\033[32m", "\033[35m", "\033[34m", "\033[91m", "\033[96m", "\033[93m"}

const (
	ansiReset = "\033[0m"
	ansiDim   = "\033[2m"
)

type logPrinter struct {
	w      io.Writer
	json   bool
	color  bool
	colors map[string]string
}

func (p *logPrinter) print(e core.LogEntry) error {
	if p.json {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	_, err := io.WriteString(p.w, p.format(e)+"\n")
	return err
}

// format renders "TIME vN INSTANCE | TEXT".
func (p *logPrinter) format(e core.LogEntry) string {
	ver := "-"
	if e.Version > 0 {
		ver = fmt.Sprintf("v%d", e.Version)
	}
	inst := orDash(e.Instance)
	if len(inst) > 12 {
		inst = inst[:12]
	}
	prefix := fmt.Sprintf("%s %s %s", e.Time.Local().Format("2006-01-02 15:04:05.000"), ver, inst)
	text := e.Message
	if e.Kind != core.LogApp {
		var b strings.Builder
		if e.Event != "" {
			fmt.Fprintf(&b, "[%s] ", e.Event)
		} else {
			fmt.Fprintf(&b, "[%s] ", e.Kind)
		}
		b.WriteString(e.Message)
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%s", k, e.Fields[k])
		}
		text = b.String()
	}
	if !p.color {
		return prefix + " | " + text
	}
	c := p.colors[e.Instance]
	if c == "" {
		c = instanceColors[len(p.colors)%len(instanceColors)]
		p.colors[e.Instance] = c
	}
	if e.Kind != core.LogApp {
		text = ansiDim + text + ansiReset
	}
	return c + prefix + " |" + ansiReset + " " + text
}
