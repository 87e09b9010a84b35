package core

// ServerInfo describes a running Wisp daemon (GET /v1/info).
type ServerInfo struct {
	// Version and Commit identify the daemon's build (Commit is "" when
	// the build has none).
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// Go is the toolchain the daemon was built with.
	Go string `json:"go"`
	// Runtime and Store name the adapters in use ("docker", "sqlite").
	Runtime string `json:"runtime"`
	Store   string `json:"store"`
	// Replica is this process's replica ID; Leader is true while it leads
	// the replicas that share its store and runtime (always, for a runtime
	// that is not shared).
	Replica string `json:"replica"`
	Leader  bool   `json:"leader"`
	// NoPause is true when the runtime cannot pause instances (Kubernetes):
	// a service's pause_after then has no effect.
	NoPause bool `json:"no_pause,omitempty"`
}
