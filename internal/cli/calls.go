package cli

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/core"
)

// bodyPreview bounds how much of a response body `wisp calls get` shows.
const bodyPreview = 512

func (a *app) callsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "calls",
		Aliases: []string{"call"},
		Short:   "List, inspect and retry async calls",
		Long: `An async call is a request handed off to Wisp (wisp invoke --async, a
trigger's event, a schedule's run) that Wisp delivers to the service with
retries. Its state is queued, running, succeeded, failed (a 4xx answer, not
retried) or dead (out of attempts or too old); dead and failed calls are kept
for inspection and can be queued again with "wisp calls retry".`,
	}
	cmd.AddCommand(a.callsList(), a.callsGet(), a.callsRetry())
	return cmd
}

func (a *app) callsList() *cobra.Command {
	var (
		state string
		limit int
	)
	cmd := &cobra.Command{
		Use:     "list SERVICE",
		Aliases: []string{"ls"},
		Short:   "List a service's async calls, newest first",
		Example: `  wisp calls list resize
  wisp calls list resize --state dead --limit 20
  wisp calls list resize -o json | jq -r '.[].id'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if state != "" && !slices.Contains(core.CallStates, state) {
				return usagef("--state must be one of %s, got %q", strings.Join(core.CallStates, ", "), state)
			}
			if limit < 0 {
				return usagef("--limit must be a positive number, got %d", limit)
			}
			list, err := a.client().ListCalls(cmd.Context(), args[0], state, limit)
			if err != nil {
				return err
			}
			return a.emit(list, func() error {
				if len(list) == 0 {
					fmt.Fprintf(a.stdout, "No calls of %s%s. Submit one with: wisp invoke %s --async\n", args[0], inState(state), args[0])
					return nil
				}
				return a.callTable(list)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only calls in this state: "+strings.Join(core.CallStates, ", "))
	f.IntVar(&limit, "limit", 0, "at most this many calls (0: the server's default)")
	return cmd
}

func inState(state string) string {
	if state == "" {
		return ""
	}
	return " in state " + state
}

// callTable prints calls as ID, STATE, ATTEMPTS, LAST STATUS, SUBMITTED,
// ORIGIN.
func (a *app) callTable(list []core.Call) error {
	rows := make([][]string, 0, len(list))
	for _, c := range list {
		rows = append(rows, []string{c.ID, c.State, strconv.Itoa(len(c.Attempts)), lastStatus(c), ago(c.SubmittedAt), orDash(c.Origin)})
	}
	return a.table([]string{"ID", "STATE", "ATTEMPTS", "LAST STATUS", "SUBMITTED", "ORIGIN"}, rows)
}

func lastStatus(c core.Call) string {
	if n := len(c.Attempts); n > 0 {
		at := c.Attempts[n-1]
		if at.Status != 0 {
			return strconv.Itoa(at.Status)
		}
		if at.Error != "" {
			return "error"
		}
	}
	if c.Response != nil {
		return strconv.Itoa(c.Response.Status)
	}
	return "-"
}

func (a *app) callsGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show an async call: its state, every attempt, and the answer",
		Example: `  wisp calls get 01JD6Z3G8V4W8Y5T2C9QK0XN7M
  wisp calls get 01JD6Z3G8V4W8Y5T2C9QK0XN7M -o json | jq -r .response.body | base64 -d`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client().GetCall(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(c, func() error { return a.printCall(c) })
		},
	}
}

// printCall is the human summary of a call.
func (a *app) printCall(c core.Call) error {
	req := c.Request.Method + " " + c.Request.Path
	if c.Request.Query != "" {
		req += "?" + c.Request.Query
	}
	kv := [][2]string{{"ID", c.ID}, {"Service", c.Service}, {"State", c.State}, {"Origin", orDash(c.Origin)},
		{"Request", strings.TrimSpace(req)}, {"Submitted", stamp(c.SubmittedAt)}}
	if c.IdempotencyKey != "" {
		kv = append(kv, [2]string{"Idempotency key", c.IdempotencyKey})
	}
	if c.NextAttemptAt != nil && !c.Done() {
		kv = append(kv, [2]string{"Next attempt", stamp(*c.NextAttemptAt)})
	}
	if c.FinishedAt != nil {
		kv = append(kv, [2]string{"Finished", stamp(*c.FinishedAt)})
	}
	if c.Error != "" {
		kv = append(kv, [2]string{"Error", c.Error})
	}
	if c.Callback != "" {
		cb := c.Callback
		switch {
		case c.CallbackError != "":
			cb += " (failed: " + c.CallbackError + ")"
		case c.CallbackStatus != 0:
			cb += " (answered " + strconv.Itoa(c.CallbackStatus) + ")"
		}
		kv = append(kv, [2]string{"Callback", cb})
	}
	attempts := strconv.Itoa(len(c.Attempts))
	if c.RetriedAttempts > 0 {
		attempts += fmt.Sprintf(" (plus %d before the last retry)", c.RetriedAttempts)
	}
	kv = append(kv, [2]string{"Attempts", attempts})
	if err := a.fields(kv); err != nil {
		return err
	}
	if len(c.Attempts) > 0 {
		fmt.Fprintln(a.stdout)
		rows := make([][]string, 0, len(c.Attempts))
		for i, at := range c.Attempts {
			st := "-"
			if at.Status != 0 {
				st = strconv.Itoa(at.Status)
			}
			ver := "-"
			if at.Version > 0 {
				ver = "v" + strconv.Itoa(at.Version)
			}
			rows = append(rows, []string{strconv.Itoa(i + 1), stamp(at.StartedAt), st, durationMS(at.DurationMS), ver, orDash(at.Error)})
		}
		if err := a.table([]string{"#", "STARTED", "STATUS", "DURATION", "VERSION", "ERROR"}, rows); err != nil {
			return err
		}
	}
	if r := c.Response; r != nil {
		fmt.Fprintf(a.stdout, "\nResponse: %d %s\n", r.Status, http.StatusText(r.Status))
		if len(r.Body) > 0 {
			fmt.Fprintln(a.stdout, preview(r.Body, r.Truncated))
		}
	}
	if c.State == core.CallDead || c.State == core.CallFailed {
		fmt.Fprintf(a.stdout, "\nQueue it again with: wisp calls retry %s\n", c.ID)
	}
	return nil
}

// preview shows the start of a body: as text when it is UTF-8, else its
// size only.
func preview(b []byte, truncated bool) string {
	if !utf8.Valid(b) {
		return fmt.Sprintf("(%d bytes of binary data; -o json shows it in base64)", len(b))
	}
	s := string(b)
	more := ""
	if len(s) > bodyPreview {
		cut := bodyPreview
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s, more = s[:cut], fmt.Sprintf("… (%d bytes in all; -o json shows it whole)", len(b))
	}
	if truncated {
		more += " (Wisp kept only the start of the answer)"
	}
	return strings.TrimRight(s, "\n") + more
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func durationMS(ms float64) string {
	if ms <= 0 {
		return "-"
	}
	return (time.Duration(ms * float64(time.Millisecond))).Round(time.Millisecond).String()
}

func (a *app) callsRetry() *cobra.Command {
	return &cobra.Command{
		Use:   "retry ID",
		Short: "Queue a dead or failed async call again, with a fresh budget of attempts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client().RetryCall(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(c, func() error {
				fmt.Fprintf(a.stdout, "Queued call %s again (%s)\nFollow it with: wisp calls get %s\n", c.ID, c.State, c.ID)
				return nil
			})
		},
	}
}
