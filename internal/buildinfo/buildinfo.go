// Package buildinfo reports which build of Wisp is running: the module
// version and the commit that the Go toolchain stamped into the binary.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info identifies a build.
type Info struct {
	// Version is the module version, or "dev" for a build from a checkout.
	Version string
	// Commit is the VCS revision (12 characters), with "-dirty" when the
	// work tree had changes; "" when the build has none (go run, tests).
	Commit string
	// Go is the toolchain's version.
	Go string
}

// Set at link time by make build (-ldflags -X), for builds where the
// toolchain stamps no VCS information (GOFLAGS=-buildvcs=false, worktrees).
var (
	version string
	commit  string
)

// Read returns this binary's build information.
func Read() (info Info) {
	info = Info{Version: "dev", Go: runtime.Version()}
	defer func() {
		if version != "" {
			info.Version = version
		}
		if commit != "" {
			info.Commit = commit
		}
	}()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		info.Version = v
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
			if len(info.Commit) > 12 {
				info.Commit = info.Commit[:12]
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Commit != "" {
		info.Commit += "-dirty"
	}
	return info
}

// String is the one-line form `wisp --version` prints.
func (i Info) String() string {
	s := i.Version
	if i.Commit != "" {
		s += " (commit " + i.Commit + ", " + i.Go + ")"
	} else {
		s += " (" + i.Go + ")"
	}
	return s
}
