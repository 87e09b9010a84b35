package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/build"
	"github.com/wisp-run/wisp/internal/core"
)

type deployFlags struct {
	opts       build.Options
	noPromote  bool
	canary     int
	env        []string
	maxContext string
	verbose    bool
	rollout    bool
	rolloutF   rolloutFlags
}

func (a *app) deployCommand() *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy SERVICE [DIR]",
		Short: "Build a source directory into an image and deploy it as a new version",
		Long: `Build the source in DIR (default: the current directory) in the daemon and
deploy it as a new version of SERVICE, which is created if it does not exist.

The runtime comes from wisp.yaml in DIR (runtime: go | node | python |
dockerfile | stdio), else from the files: a Dockerfile, go.mod, package.json,
requirements.txt or a .py file. wisp.yaml may also set the port, env,
command, limits and the scaling policy; "wisp build --print-dockerfile DIR"
shows what will be built. Files named in .dockerignore and .wispignore are
not uploaded, nor is .git.

By default the new version gets all traffic. --canary N gives it N% and
keeps the other versions' proportions; --no-promote leaves traffic as it is
(a service's first version still gets all of it). --rollout starts a
rollout of the new version instead (wisp rollout start, with its --steps,
--interval and thresholds): traffic moves step by step, checked at each.
Its flags are checked before anything is built. A service's first version
gets all traffic even with --rollout: there is nothing to roll out from, and
a note says so.

In a git checkout the version records the commit and "git describe", and
the image is tagged <service>:<tag at HEAD, else short commit>; with
uncommitted changes, <service>:src-<digest>. A tag is never rebuilt with
other content. Source that was built before (same digest) reuses its image.`,
		Example: `  wisp deploy hello ./hello
  wisp deploy hello --canary 10
  wisp deploy fn ./fn --no-promote --env GREETING=hi
  wisp deploy hello --rollout --steps 10,50,100 --interval 2m`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 2 {
				dir = args[1]
			}
			return a.deploy(cmd.Context(), args[0], dir, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.noPromote, "no-promote", false, "leave traffic as it is; send traffic to the new version later with wisp traffic set")
	fl.IntVar(&f.canary, "canary", 0, "give the new version this percent of traffic (1-99); the others keep their proportions")
	fl.BoolVar(&f.rollout, "rollout", false, "start a rollout of the new version after the build instead of moving traffic at once (see wisp rollout --help)")
	f.rolloutF.add(fl)
	fl.StringArrayVarP(&f.env, "env", "e", nil, "KEY=VALUE for the version, after wisp.yaml's env (repeatable)")
	packFlags(fl, &f.opts)
	fl.StringVar(&f.maxContext, "max-context", "256Mi", "refuse to upload a build context larger than this")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "show all of the build's output, not only its steps")
	return cmd
}

func (a *app) deploy(ctx context.Context, service, dir string, f deployFlags) error {
	if err := core.ValidateServiceName(service); err != nil {
		return usageError{err}
	}
	promote := 100
	switch {
	case f.noPromote && f.canary != 0:
		return usagef("--no-promote and --canary cannot be used together")
	case f.rollout && (f.noPromote || f.canary != 0):
		return usagef("--rollout moves traffic itself: leave out --no-promote and --canary")
	case f.rollout:
		if _, err := f.rolloutF.spec(1); err != nil {
			return err
		}
		promote = 0
	case f.noPromote:
		promote = 0
	case f.canary != 0 && (f.canary < 1 || f.canary > 99):
		return usagef("--canary must be a percent from 1 to 99, got %d", f.canary)
	case f.canary != 0:
		promote = f.canary
	}
	maxContext, err := core.ParseByteSize(f.maxContext)
	if err != nil || maxContext <= 0 {
		return usagef("--max-context %q is not a size such as 256Mi", f.maxContext)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("%s is not a directory: wisp deploy SERVICE DIR builds the source in DIR", dir)
	}
	spec, err := build.LoadSpec(dir)
	if err != nil {
		return err
	}
	c := a.client()
	if f.rollout {
		// A rollout that could not start would leave the new version built
		// and deployed without traffic: refuse before the build instead.
		if cur, err := c.GetRollout(ctx, service); err == nil && cur.State.Active() {
			return core.Conflictf("service %s has rollout %d %s (to version %d, step %d/%d); promote or abort it (wisp rollout promote|abort %s) before deploying with --rollout",
				service, cur.ID, cur.State, cur.To, cur.Step, len(cur.Steps), service)
		}
	}
	if spec.Service != "" && spec.Service != service {
		fmt.Fprintf(a.stderr, "Note: %s names service %s; deploying to %s as asked\n", build.SpecFile, spec.Service, service)
	}
	plan, err := build.MakePlan(dir, spec, f.opts)
	if err != nil {
		return err
	}
	req, err := buildRequest(service, spec, plan, f.env, promote)
	if err != nil {
		return err
	}
	extra := map[string][]byte{}
	if plan.DockerfileName == build.GeneratedDockerfile {
		extra[build.GeneratedDockerfile] = []byte(plan.Dockerfile)
	}
	packed, err := build.Pack(dir, build.ContextOptions{MaxBytes: int64(maxContext), Extra: extra})
	if err != nil {
		return err
	}
	if int64(len(packed.Tar)) > int64(maxContext) {
		return fmt.Errorf("the build context of %s is %s as a tar, over the limit of %s: leave out what the image does not need with a .wispignore (or .dockerignore)",
			dir, build.HumanBytes(int64(len(packed.Tar))), f.maxContext)
	}
	req.Git = build.Git(ctx, dir)
	if req.Git != nil {
		req.Version.Description = "git " + firstNonEmptyString(req.Git.Describe, req.Git.Commit[:12])
	}

	status := a.stderr
	tty := isTerminal(status)
	abs, _ := filepath.Abs(dir)
	fmt.Fprintf(status, "Deploying %s from %s (runtime %s, %d files, %s)\n", service, abs, plan.Runtime, packed.Files, build.HumanBytes(packed.Bytes))
	upload := func(sent int64) {
		if tty {
			fmt.Fprintf(status, "\r\033[KUploading the build context: %s of %s", build.HumanBytes(sent), build.HumanBytes(int64(len(packed.Tar))))
		}
	}
	b, err := c.CreateBuild(ctx, req, bytes.NewReader(packed.Tar), upload)
	if tty {
		fmt.Fprint(status, "\r\033[K")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(status, "Build %d queued\n", b.ID)
	if b, err = a.followBuild(ctx, b.ID, status, tty, f.verbose); err != nil {
		return err
	}
	if b.Status != core.BuildSucceeded {
		return errors.New(b.Error)
	}
	var ro *core.Rollout
	first := false
	if f.rollout {
		// A service's first version gets all traffic (there is nothing
		// else to serve), so there is nothing to roll out from.
		if t, err := c.GetTraffic(ctx, service); err == nil && t.PercentOf(b.Version) == 100 {
			first = true
			fmt.Fprintf(status, "Note: v%d is the first version of %s and gets all traffic; there is nothing to roll out from, so no rollout started (the next deploy --rollout rolls out from it)\n", b.Version, service)
		} else {
			r, err := a.startDeployRollout(ctx, service, b.Version, f.rolloutF)
			if err != nil {
				return fmt.Errorf("version %d is deployed without traffic, but its rollout did not start: %w; start it with wisp rollout start %s --to %d, or send it traffic with wisp traffic set", b.Version, err, service, b.Version)
			}
			ro = &r
		}
	}
	return a.emit(b, func() error {
		sv, err := c.GetService(ctx, service)
		if err != nil {
			return err
		}
		how := "built"
		if b.Reused {
			how = "reused"
		}
		kv := [][2]string{
			{"service", service},
			{"version", fmt.Sprintf("v%d", b.Version)},
			{"image", fmt.Sprintf("%s (%s)", b.Image, how)},
			{"build", fmt.Sprintf("%d in %s", b.ID, seconds(b.Duration(time.Now())))},
		}
		if b.GitDescribe != "" {
			kv = append(kv, [2]string{"git", b.GitDescribe})
		}
		if t, err := c.GetTraffic(ctx, service); err == nil {
			kv = append(kv, [2]string{"traffic", weightsText(t.Weights)})
		}
		if first {
			kv = append(kv, [2]string{"rollout", "none: the first version gets all traffic"})
		}
		if ro != nil {
			kv = append(kv, [2]string{"rollout", fmt.Sprintf("%d: step 1/%d, %d%%, steps %s every %s (wisp rollout get %s)", ro.ID, len(ro.Steps), ro.Percent, core.RolloutSteps(ro.Steps), ro.Interval, service)})
		}
		kv = append(kv, [2]string{"url", sv.URL})
		return a.fields(kv)
	})
}

// followBuild shows the build's output until it ends, then returns its
// record.
func (a *app) followBuild(ctx context.Context, id int64, status io.Writer, tty, verbose bool) (core.Build, error) {
	c := a.client()
	logs, err := c.BuildLogs(ctx, id, true)
	if err != nil {
		return core.Build{}, err
	}
	p := newBuildProgress(status, tty, verbose)
	sc := bufio.NewScanner(logs)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		p.Line(sc.Text())
	}
	_ = logs.Close()
	if ctx.Err() != nil {
		p.Finish(false)
		return core.Build{}, fmt.Errorf("stopped following build %d; it goes on in the server: wisp build logs %d --follow", id, id)
	}
	// The stream ends when the build does; read the record that says how.
	b, err := c.GetBuild(ctx, id)
	for err == nil && !b.Status.Done() {
		select {
		case <-ctx.Done():
			return b, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		b, err = c.GetBuild(ctx, id)
	}
	p.Finish(err == nil && b.Status == core.BuildSucceeded)
	return b, err
}

// buildRequest turns wisp.yaml, the plan and the flags into the request.
func buildRequest(service string, spec build.Spec, plan build.Plan, env []string, promote int) (core.BuildRequest, error) {
	v := core.VersionSpec{
		Port:           spec.Port,
		Env:            append(append([]string{}, spec.Env...), env...),
		CPULimit:       spec.CPU,
		MaxConcurrency: spec.MaxConcurrency,
		ReadinessPath:  spec.ReadinessPath,
	}
	if plan.Runtime != "stdio" { // the watchdog runs the stdio command
		v.Command, v.Args = spec.Command, spec.Args
	}
	if spec.Memory != "" {
		m, err := core.ParseByteSize(spec.Memory)
		if err != nil {
			return core.BuildRequest{}, fmt.Errorf("%s: memory: %w", build.SpecFile, err)
		}
		v.MemoryLimit = m
	}
	if spec.Timeout != "" {
		t, err := core.ParseDuration(spec.Timeout)
		if err != nil {
			return core.BuildRequest{}, fmt.Errorf("%s: timeout: %w", build.SpecFile, err)
		}
		v.Timeout = t
	}
	req := core.BuildRequest{
		Service: service, Runtime: plan.Runtime, Dockerfile: plan.DockerfileName, Watchdog: plan.NeedsWatchdog,
		Version: v, CreateService: true, Policy: spec.Policy, Promote: &promote,
	}
	if err := req.Validate(); err != nil {
		return core.BuildRequest{}, fmt.Errorf("%w (from %s and the flags)", err, build.SpecFile)
	}
	return req, nil
}

func weightsText(ws []core.Weight) string {
	parts := make([]string, 0, len(ws))
	for _, w := range ws {
		parts = append(parts, fmt.Sprintf("v%d %d%%", w.Version, w.Percent))
	}
	return strings.Join(parts, ", ")
}

func firstNonEmptyString(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
