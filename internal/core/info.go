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
	// NoPause is true when the runtime cannot pause instances (Kubernetes):
	// a service's pause_after then has no effect.
	NoPause bool `json:"no_pause,omitempty"`
}
