package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/core"
)

func (a *app) instancesCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "instances [SERVICE]",
		Aliases: []string{"instance", "inst"},
		Short:   "List instances: version, state, address, last request, requests in flight, and why",
		Long: `List the instances of a service (or of all), with their state:
queued (a scale-up waiting for a start slot), starting, ready, suspect (it
failed a request and gets none until a health probe passes), draining (scaled
down, finishing its requests), pausing, paused, waking, stopping. A version
whose starts keep failing shows a "backoff" row with the last failure and
when the next start is. The NOTE column says why, where it is not plain.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			list, err := a.client().Instances(cmd.Context(), service)
			if err != nil {
				return err
			}
			return a.emit(list, func() error {
				if len(list) == 0 {
					fmt.Fprintln(a.stdout, "No instances are running. The first request to a service starts one.")
					return nil
				}
				rows := make([][]string, 0, len(list))
				notes := false
				for _, in := range list {
					last := "-"
					if !in.LastRequestAt.IsZero() {
						last = ago(in.LastRequestAt)
					}
					rows = append(rows, []string{orDash(in.ID), in.Service, strconv.Itoa(in.Version), in.State, orDash(in.Address),
						ago(in.StartedAt), last, strconv.FormatInt(in.InFlight, 10), note(in)})
					notes = notes || note(in) != ""
				}
				header := []string{"INSTANCE", "SERVICE", "VERSION", "STATE", "ADDRESS", "STARTED", "LAST REQUEST", "IN FLIGHT", "NOTE"}
				if !notes { // the column only when something needs saying
					header = header[:len(header)-1]
					for i := range rows {
						rows[i] = rows[i][:len(rows[i])-1]
					}
				}
				return a.table(header, rows)
			})
		},
	}
}

// note says why an instance is in its state: why it is suspect, draining or
// stopping, or, for a version whose starts back off, the last failure and
// when the next try is. Long reasons are cut; -o json has them whole.
func note(in core.InstanceInfo) string {
	msg := in.Message
	if in.RetryAt != nil {
		wait := time.Until(*in.RetryAt).Round(100 * time.Millisecond)
		msg = fmt.Sprintf("next start in %s; %s", max(wait, 0), msg)
	}
	if r := []rune(msg); len(r) > 160 {
		msg = string(r[:159]) + "…"
	}
	return msg
}
