package core

import (
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// VersionSpec is what a user supplies to create a version. Once a version is
// created its spec never changes.
type VersionSpec struct {
	// Image is the image reference, for example "hello:1".
	Image string `json:"image"`
	// Port the container listens on, 1–65535. 0 or omitted means 8080.
	Port int `json:"port"`
	// Env is an ordered list of KEY=VALUE; keys are POSIX names, no duplicates.
	Env []string `json:"env"`
	// Command replaces the image's entrypoint; Args replace its command.
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	// MemoryLimit in bytes; 0 means no limit (and is left out of JSON, as
	// "none" in the CLI's table). At least 6Mi when set.
	MemoryLimit ByteSize `json:"memory_limit,omitempty"`
	// CPULimit in cores (0.5 = half a core); 0 means no limit.
	CPULimit float64 `json:"cpu_limit"`
	// MaxConcurrency is the hard limit of in-flight requests per instance;
	// 0 means unlimited.
	MaxConcurrency int `json:"max_concurrency"`
	// Timeout bounds one request, 1s to 1h. Omitted means 60s (0 is left
	// out of JSON, so a client that did not set it sends none; the API
	// refuses an explicit 0).
	Timeout Duration `json:"timeout,omitempty"`
	// ReadinessPath, when set, is probed over HTTP before an instance gets
	// traffic; otherwise a TCP connect to Port is the probe.
	ReadinessPath string `json:"readiness_path,omitempty"`
	// Liveness, when set, checks running instances and replaces those that
	// fail it (see Probe).
	Liveness    *Probe `json:"liveness,omitempty"`
	Description string `json:"description,omitempty"`
}

// Version is an immutable deployment of a service: a spec plus identity.
type Version struct {
	// ID is global across services; Number counts per service from 1 and is
	// never reused, even after a version is deleted.
	ID      int64  `json:"id"`
	Service string `json:"service"`
	Number  int    `json:"number"`
	// ImageID pins the image (its ID or digest) when the runtime resolves it,
	// so a re-tagged image never changes a version. Empty until resolved.
	ImageID string `json:"image_id"`
	VersionSpec
	// Source is set when Wisp built the image from source.
	Source    *Source   `json:"source,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Version defaults and bounds.
const (
	DefaultPort           = 8080
	DefaultTimeout        = Duration(60 * time.Second)
	MinMemoryLimit        = ByteSize(6 << 20) // Docker refuses less.
	MaxTimeout            = Duration(time.Hour)
	MaxCPULimit           = 1024.0
	MaxVersionConcurrency = 100000
	maxEnv                = 1000
	maxEnvBytes           = 128 << 10
	maxArgs               = 256
	maxArgBytes           = 64 << 10
	maxImageLen           = 512
	maxDescription        = 1024
	maxReadinessPath      = 1024
)

// WithDefaults fills the fields that have defaults.
func (s VersionSpec) WithDefaults() VersionSpec {
	if s.Port == 0 {
		s.Port = DefaultPort
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Env == nil {
		s.Env = []string{}
	}
	if s.Liveness != nil {
		p := s.Liveness.WithDefaults()
		s.Liveness = &p
	}
	return s
}

// The image reference grammar of the distribution project, simplified:
// [domain[:port]/]path[/path...][:tag][@algo:hex].
var imageRefRE = regexp.MustCompile(`^` +
	`(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?/)?` +
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*` +
	`(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
	`(?::[\w][\w.-]{0,127})?` +
	`(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`)

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateImageRef checks that ref is a well-formed image reference.
func ValidateImageRef(field, ref string) error {
	switch {
	case ref == "":
		return Invalidf(field, "image is required, for example \"hello:1\"")
	case len(ref) > maxImageLen:
		return Invalidf(field, "image reference is %d characters long; the limit is %d", len(ref), maxImageLen)
	case !imageRefRE.MatchString(ref):
		return Invalidf(field, "image %q is not a valid image reference; use name[:tag] or name@sha256:digest with a lowercase name", truncate(ref, 80))
	}
	return nil
}

// Validate checks every field of the spec. Call it after WithDefaults.
func (s VersionSpec) Validate() error {
	if err := ValidateImageRef("image", s.Image); err != nil {
		return err
	}
	if s.Port < 1 || s.Port > 65535 {
		return Invalidf("port", "port must be between 1 and 65535, got %d", s.Port)
	}
	if err := ValidateEnv("env", s.Env); err != nil {
		return err
	}
	if err := validateArgs("command", s.Command); err != nil {
		return err
	}
	if err := validateArgs("args", s.Args); err != nil {
		return err
	}
	switch {
	case s.MemoryLimit < 0:
		return Invalidf("memory_limit", "memory_limit must not be negative, got %d", int64(s.MemoryLimit))
	case s.MemoryLimit > 0 && s.MemoryLimit < MinMemoryLimit:
		return Invalidf("memory_limit", "memory_limit must be at least 6Mi (Docker's minimum), got %s", s.MemoryLimit)
	case math.IsNaN(s.CPULimit) || s.CPULimit < 0 || s.CPULimit > MaxCPULimit:
		return Invalidf("cpu_limit", "cpu_limit must be between 0 (no limit) and %g cores, got %g", MaxCPULimit, s.CPULimit)
	case s.CPULimit > 0 && s.CPULimit < 0.01:
		return Invalidf("cpu_limit", "cpu_limit must be at least 0.01 cores when set, got %g", s.CPULimit)
	case s.MaxConcurrency < 0 || s.MaxConcurrency > MaxVersionConcurrency:
		return Invalidf("max_concurrency", "max_concurrency must be between 0 (unlimited) and %d, got %d", MaxVersionConcurrency, s.MaxConcurrency)
	case s.Timeout < Duration(time.Second) || s.Timeout > MaxTimeout:
		return Invalidf("timeout", "timeout must be between 1s and 1h, got %s", s.Timeout)
	case len(s.Description) > maxDescription:
		return Invalidf("description", "description is %d bytes long; the limit is %d", len(s.Description), maxDescription)
	case !utf8.ValidString(s.Description):
		return Invalidf("description", "description is not valid UTF-8")
	}
	if s.Liveness != nil {
		if err := s.Liveness.Validate("liveness"); err != nil {
			return err
		}
	}
	if p := s.ReadinessPath; p != "" {
		if len(p) > maxReadinessPath || p[0] != '/' || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return Invalidf("readiness_path", "readiness_path %q must be an absolute URL path like \"/healthz\", without spaces", truncate(p, 80))
		}
	}
	return nil
}

// ValidateEnv checks an ordered KEY=VALUE list: POSIX names, no duplicates.
func ValidateEnv(field string, env []string) error {
	if len(env) > maxEnv {
		return Invalidf(field, "%d environment variables; the limit is %d", len(env), maxEnv)
	}
	seen := make(map[string]int, len(env))
	total := 0
	for i, kv := range env {
		total += len(kv)
		key, value, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return Invalidf(field, "%s[%d] %q is not KEY=VALUE", field, i, truncate(kv, 80))
		case !envKeyRE.MatchString(key):
			return Invalidf(field, "%s[%d]: %q is not a valid variable name; use letters, digits and '_', not starting with a digit", field, i, truncate(key, 80))
		case strings.ContainsRune(value, 0):
			return Invalidf(field, "%s[%d]: the value of %s contains a NUL byte", field, i, key)
		}
		if j, dup := seen[key]; dup {
			return Invalidf(field, "%s[%d]: %s is set twice (also at %s[%d])", field, i, key, field, j)
		}
		seen[key] = i
	}
	if total > maxEnvBytes {
		return Invalidf(field, "environment is %d bytes; the limit is %d", total, maxEnvBytes)
	}
	return nil
}

func validateArgs(field string, args []string) error {
	if len(args) > maxArgs {
		return Invalidf(field, "%s has %d elements; the limit is %d", field, len(args), maxArgs)
	}
	total := 0
	for i, a := range args {
		total += len(a)
		if strings.ContainsRune(a, 0) {
			return Invalidf(field, "%s[%d] contains a NUL byte", field, i)
		}
	}
	if total > maxArgBytes {
		return Invalidf(field, "%s is %d bytes; the limit is %d", field, total, maxArgBytes)
	}
	return nil
}
