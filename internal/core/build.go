package core

import (
	"regexp"
	"strings"
	"time"
)

// BuildStatus is where a build is in its life.
type BuildStatus string

// Build statuses. A build is queued until a build slot is free, running
// while the engine builds, and then succeeded or failed for good.
const (
	BuildQueued    BuildStatus = "queued"
	BuildRunning   BuildStatus = "running"
	BuildSucceeded BuildStatus = "succeeded"
	BuildFailed    BuildStatus = "failed"
)

// Done reports whether the build has finished, one way or the other.
func (s BuildStatus) Done() bool { return s == BuildSucceeded || s == BuildFailed }

// Source says where a version's image came from, when Wisp built it.
type Source struct {
	// BuildID is the build that made the image.
	BuildID int64 `json:"build_id,omitempty"`
	// Digest is the sha256 of everything the image was built from: the
	// source files, the Dockerfile and any file Wisp added.
	Digest string `json:"digest,omitempty"`
	// GitCommit and GitDescribe are set when the source was a git checkout.
	GitCommit   string `json:"git_commit,omitempty"`
	GitDescribe string `json:"git_describe,omitempty"`
}

// GitInfo describes the git checkout a build's source came from.
type GitInfo struct {
	// Commit is the full hash of HEAD.
	Commit string `json:"commit"`
	// Describe is `git describe --tags --always --dirty`.
	Describe string `json:"describe,omitempty"`
	// Tag is the tag that points exactly at HEAD, if any.
	Tag string `json:"tag,omitempty"`
	// Dirty: the work tree has changes that are not committed.
	Dirty bool `json:"dirty,omitempty"`
}

// BuildRequest asks the daemon to build an image from an uploaded context
// and deploy it as a new version of Service.
type BuildRequest struct {
	Service string `json:"service"`
	// Runtime is the pack that produced the context's Dockerfile (for the
	// record; the daemon builds whatever Dockerfile it is given).
	Runtime string `json:"runtime,omitempty"`
	// Dockerfile is the Dockerfile's path in the context; "" means
	// "Dockerfile".
	Dockerfile string `json:"dockerfile,omitempty"`
	// Watchdog asks the daemon to add wisp-watchdog to the context at
	// .wisp/wisp-watchdog (the stdio runtime).
	Watchdog bool `json:"watchdog,omitempty"`
	// Version is the new version's spec; its image must be empty, the
	// build sets it.
	Version VersionSpec `json:"version"`
	// CreateService creates the service, if it does not exist, when the
	// build succeeds; otherwise a missing service is an error at once.
	CreateService bool `json:"create_service,omitempty"`
	// Policy, when set, is applied to the service's scaling policy when the
	// build succeeds.
	Policy *PolicyPatch `json:"policy,omitempty"`
	// Promote is the percent of traffic the new version gets: nil means
	// 100, 0 leaves traffic as it is (a service's first version still gets
	// 100%: there is nothing else to serve), 1–99 is a canary whose other
	// versions keep their proportions.
	Promote *int     `json:"promote,omitempty"`
	Git     *GitInfo `json:"git,omitempty"`
}

var (
	gitCommitRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
	imageTagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// PromotePercent is the percent the request gives the new version.
func (r BuildRequest) PromotePercent() int {
	if r.Promote == nil {
		return 100
	}
	return *r.Promote
}

// Validate checks the request before any work is done.
func (r BuildRequest) Validate() error {
	if err := ValidateServiceName(r.Service); err != nil {
		return Invalidf("service", "%s", err.Error())
	}
	if r.Version.Image != "" {
		return Invalidf("version.image", "version.image must be empty: the build makes the image")
	}
	spec := r.Version.WithDefaults()
	spec.Image = "build:placeholder"
	if err := spec.Validate(); err != nil {
		return prefixField("version.", err)
	}
	if d := r.Dockerfile; d != "" && (strings.HasPrefix(d, "/") || strings.Contains("/"+d+"/", "/../") || strings.ContainsRune(d, 0) || len(d) > 1024) {
		return Invalidf("dockerfile", "dockerfile %q must be a relative path inside the build context", truncate(d, 80))
	}
	if p := r.PromotePercent(); p < 0 || p > 100 {
		return Invalidf("promote", "promote must be a percent between 0 (leave traffic as it is) and 100, got %d", p)
	}
	if r.Policy != nil {
		if err := r.Policy.Apply(DefaultPolicy()).Validate(); err != nil {
			return err // its fields are named policy.*
		}
	}
	if g := r.Git; g != nil {
		if !gitCommitRE.MatchString(g.Commit) {
			return Invalidf("git.commit", "git.commit must be a full lowercase commit hash, got %q", truncate(g.Commit, 80))
		}
		if g.Tag != "" && !imageTagRE.MatchString(g.Tag) {
			return Invalidf("git.tag", "git tag %q cannot be an image tag: use letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'", truncate(g.Tag, 80))
		}
		if len(g.Describe) > 256 || strings.ContainsFunc(g.Describe, func(r rune) bool { return r < ' ' }) {
			return Invalidf("git.describe", "git.describe is not a git describe output")
		}
	}
	return nil
}

// ImageTag is the tag of the image a build makes for its service: the git
// tag at HEAD, else the short commit; a dirty work tree or a source outside
// git is tagged by its content digest, since no commit names that content.
func (r BuildRequest) ImageTag(digest string) string {
	if g := r.Git; g != nil && !g.Dirty {
		if g.Tag != "" {
			return g.Tag
		}
		return g.Commit[:12]
	}
	return "src-" + strings.TrimPrefix(digest, "sha256:")[:12]
}

func prefixField(prefix string, err error) error {
	if e, ok := err.(*Error); ok && e.Field != "" { //nolint:errorlint // our own validation errors are never wrapped
		return &Error{Kind: e.Kind, Field: prefix + e.Field, Message: e.Message}
	}
	return err
}

// Build is the record of one build.
type Build struct {
	ID      int64       `json:"id"`
	Service string      `json:"service"`
	Status  BuildStatus `json:"status"`
	Runtime string      `json:"runtime,omitempty"`
	// Image is the reference the image is tagged with, ImageID its ID.
	Image   string `json:"image,omitempty"`
	ImageID string `json:"image_id,omitempty"`
	// Reused: an image built from the same content existed, so the engine
	// built nothing.
	Reused bool `json:"reused"`
	Source
	// Promote is the percent of traffic the new version was to get.
	Promote int `json:"promote"`
	// Version is the number of the version the build created, 0 if none.
	Version int `json:"version,omitempty"`
	// Error says why a failed build failed, with the failing step's last
	// lines of output.
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Duration is how long the build ran, or has run until now.
func (b Build) Duration(now time.Time) time.Duration {
	if b.StartedAt == nil {
		return 0
	}
	end := now
	if b.FinishedAt != nil {
		end = *b.FinishedAt
	}
	return end.Sub(*b.StartedAt)
}

// Shift gives version number percent of the traffic and scales the other
// weights to share the rest in their current proportions (largest
// remainders, so the sum stays exactly 100). Versions left at 0% are dropped;
// tags, rules and stickiness stay. The mirror stays too, unless its version is
// the one given 100% (nothing would be left to copy to it). With nothing else
// carrying traffic, the version gets 100%.
func (t Traffic) Shift(number, percent int, message string) Traffic {
	out := Traffic{Tags: t.Tags, Rules: t.Rules, Mirror: t.Mirror, Sticky: t.Sticky, Message: message}
	type share struct{ version, percent, rem int }
	var others []share
	total := 0
	for _, w := range t.Weights {
		if w.Version != number && w.Percent > 0 {
			others = append(others, share{version: w.Version, percent: w.Percent})
			total += w.Percent
		}
	}
	if total == 0 || percent >= 100 {
		out.Weights = []Weight{{Version: number, Percent: 100}}
		if out.Mirror != nil && out.Mirror.Version == number {
			out.Mirror = nil
		}
		return out
	}
	rest := 100 - percent
	given := 0
	for i := range others {
		p := others[i].percent
		others[i].percent, others[i].rem = p*rest/total, p*rest%total
		given += others[i].percent
	}
	// Rounding down left fewer points than there are versions: one each,
	// largest remainder first, ties to the version listed first.
	for left := rest - given; left > 0; left-- {
		best := 0
		for i := range others {
			if others[i].rem > others[best].rem {
				best = i
			}
		}
		others[best].percent++
		others[best].rem = -1
	}
	for _, s := range others {
		if s.percent > 0 {
			out.Weights = append(out.Weights, Weight{Version: s.version, Percent: s.percent})
		}
	}
	if percent > 0 {
		out.Weights = append(out.Weights, Weight{Version: number, Percent: percent})
	}
	return out
}
