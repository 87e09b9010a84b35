package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

func (a *app) instancesCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "instances [SERVICE]",
		Aliases: []string{"instance", "inst"},
		Short:   "List running instances: version, state, address, last request, requests in flight",
		Args:    cobra.MaximumNArgs(1),
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
				for _, in := range list {
					last := "-"
					if !in.LastRequestAt.IsZero() {
						last = ago(in.LastRequestAt)
					}
					rows = append(rows, []string{orDash(in.ID), in.Service, strconv.Itoa(in.Version), in.State, orDash(in.Address),
						ago(in.StartedAt), last, strconv.FormatInt(in.InFlight, 10)})
				}
				return a.table([]string{"INSTANCE", "SERVICE", "VERSION", "STATE", "ADDRESS", "STARTED", "LAST REQUEST", "IN FLIGHT"}, rows)
			})
		},
	}
}
