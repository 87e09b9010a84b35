package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/build"
)

func (a *app) buildCommand() *cobra.Command {
	var (
		opts  build.Options
		print bool
	)
	cmd := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Show how a source directory would be built (--print-dockerfile)",
		Long: `Work out how the source in DIR (default: the current directory) is built:
its runtime (from wisp.yaml, or detected from a Dockerfile, go.mod,
package.json, requirements.txt or a .py file) and the Dockerfile of that
runtime's pack, with its base images (build.base_image and
build.builder_image in wisp.yaml, or --base-image and --builder-image).

Building and deploying through the daemon ("wisp deploy") is not built yet.`,
		Example: `  wisp build --print-dockerfile ./hello
  wisp build --print-dockerfile --base-image registry.local/python:3.12 ./fn`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !print {
				return usagef("wisp build only prints for now: add --print-dockerfile (building through the daemon, wisp deploy, is not built yet)")
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
	f.StringVar(&opts.Runtime, "runtime", "", "runtime: go, node, python, dockerfile or stdio (default: wisp.yaml, else detected)")
	f.StringVar(&opts.BaseImage, "base-image", "", "base image of the pack (default: build.base_image, else the pack's)")
	f.StringVar(&opts.BuilderImage, "builder-image", "", "build-stage image (go; default: build.builder_image, else golang:1.26)")
	return cmd
}
