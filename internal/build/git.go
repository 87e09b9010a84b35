package build

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"

	"github.com/wisp-run/wisp/internal/core"
)

var imageTagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// Git describes the git checkout that holds dir, or returns nil when dir is
// not in one (or git is not installed, or there is no commit yet).
func Git(ctx context.Context, dir string) *core.GitInfo {
	run := func(args ...string) (string, bool) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...) //nolint:gosec // G204: git with fixed subcommands on the user's own directory
		var out bytes.Buffer
		cmd.Stdout = &out
		if cmd.Run() != nil {
			return "", false
		}
		return strings.TrimSpace(out.String()), true
	}
	commit, ok := run("rev-parse", "--verify", "--quiet", "HEAD")
	if !ok || len(commit) < 40 { // a full hash, or nothing git could tell us
		return nil
	}
	g := &core.GitInfo{Commit: commit}
	g.Describe, _ = run("describe", "--tags", "--always", "--dirty")
	// A tag that cannot be an image tag is recorded by describe but not used.
	if tag, ok := run("describe", "--tags", "--exact-match", "HEAD"); ok && imageTagRE.MatchString(tag) {
		g.Tag = tag
	}
	// Only changes under dir matter: they are what is built.
	status, ok := run("status", "--porcelain", "--", ".")
	g.Dirty = !ok || status != ""
	return g
}
