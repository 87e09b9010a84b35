package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wisp-run/wisp/internal/build"
	"github.com/wisp-run/wisp/internal/core"
)

func (a *app) buildCommand() *cobra.Command {
	var (
		opts  build.Options
		print bool
	)
	cmd := &cobra.Command{
		Use:   "build [DIR] --print-dockerfile | build list|get|logs",
		Short: "Show how a source directory is built, and the daemon's builds",
		Long: `Work out how the source in DIR (default: the current directory) is built:
its runtime (from wisp.yaml, or detected from a Dockerfile, go.mod,
package.json, requirements.txt or a .py file) and the Dockerfile of that
runtime's pack, with its base images (build.base_image and
build.builder_image in wisp.yaml, or --base-image and --builder-image).

"wisp deploy" builds in the daemon; "wisp build list", "get" and "logs"
show those builds.`,
		Example: `  wisp build --print-dockerfile ./hello
  wisp build --print-dockerfile --base-image registry.local/python:3.12 ./fn`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !print {
				return usagef("wisp build DIR only prints: add --print-dockerfile, or build and deploy with wisp deploy SERVICE DIR")
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			spec, err := build.LoadSpec(dir)
			if err != nil {
				return err
			}
			plan, err := build.MakePlan(dir, spec, opts)
			if err != nil {
				return err
			}
			return a.emit(map[string]any{"runtime": plan.Runtime, "dockerfile": plan.Dockerfile, "needs_watchdog": plan.NeedsWatchdog}, func() error {
				_, err := fmt.Fprint(a.stdout, plan.Dockerfile)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&print, "print-dockerfile", false, "print the Dockerfile the build would use")
	packFlags(f, &opts)
	cmd.AddCommand(a.buildListCommand(), a.buildGetCommand(), a.buildLogsCommand())
	return cmd
}

// packFlags are the flags that override a plan (wisp build, wisp deploy).
func packFlags(f *pflag.FlagSet, opts *build.Options) {
	f.StringVar(&opts.Runtime, "runtime", "", "runtime: go, node, python, dockerfile or stdio (default: wisp.yaml, else detected)")
	f.StringVar(&opts.BaseImage, "base-image", "", "base image of the pack (default: build.base_image in wisp.yaml, else the pack's)")
	f.StringVar(&opts.BuilderImage, "builder-image", "", "build-stage image (go; default: build.builder_image, else "+build.DefaultGoBuilder+")")
}

func (a *app) buildListCommand() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list [SERVICE]",
		Short: "List the newest builds, of one service or of all",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			list, err := a.client().ListBuilds(cmd.Context(), service, limit)
			if err != nil {
				return err
			}
			return a.emit(list, func() error {
				rows := make([][]string, 0, len(list))
				for _, b := range list {
					rows = append(rows, []string{strconv.FormatInt(b.ID, 10), b.Service, string(b.Status), orDash(b.Runtime),
						orDash(b.Image), buildVersion(b), seconds(b.Duration(time.Now())), ago(b.CreatedAt)})
				}
				return a.table([]string{"ID", "SERVICE", "STATUS", "RUNTIME", "IMAGE", "VERSION", "DURATION", "CREATED"}, rows)
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many builds to show (at most 1000)")
	return cmd
}

// buildVersion names the version a build created, or "-".
func buildVersion(b core.Build) string {
	if b.Version == 0 {
		return "-"
	}
	return fmt.Sprintf("v%d", b.Version)
}

func parseBuildID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, usagef("build ID must be a positive number, got %q", s)
	}
	return id, nil
}

func (a *app) buildGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show one build: status, image, version, error",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseBuildID(args[0])
			if err != nil {
				return err
			}
			b, err := a.client().GetBuild(cmd.Context(), id)
			if err != nil {
				return err
			}
			return a.emit(b, func() error {
				kv := [][2]string{{"id", strconv.FormatInt(b.ID, 10)}, {"service", b.Service}, {"status", string(b.Status)},
					{"runtime", orDash(b.Runtime)}, {"image", orDash(b.Image)}, {"image id", orDash(b.ImageID)},
					{"reused", strconv.FormatBool(b.Reused)}, {"digest", orDash(b.Digest)}, {"git", orDash(b.GitDescribe)},
					{"promote", fmt.Sprintf("%d%%", b.Promote)}, {"version", buildVersion(b)},
					{"duration", seconds(b.Duration(time.Now()))}, {"created", ago(b.CreatedAt)}}
				if b.Error != "" {
					kv = append(kv, [2]string{"error", b.Error})
				}
				return a.fields(kv)
			})
		},
	}
}

func (a *app) buildLogsCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a build's output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseBuildID(args[0])
			if err != nil {
				return err
			}
			logs, err := a.client().BuildLogs(cmd.Context(), id, follow)
			if err != nil {
				return err
			}
			defer logs.Close()
			_, err = io.Copy(a.stdout, logs)
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the build ends")
	return cmd
}
