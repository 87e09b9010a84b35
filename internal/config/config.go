// Package config holds the daemon's configuration: defaults, environment
// variables (WISP_*) and flags, in that order of precedence from lowest to
// highest, and Validate.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Config configures `wisp serve`.
type Config struct {
	// DataDir holds the database and the generated admin token.
	DataDir string
	// AdminAddr is the admin API's listen address; keep it private.
	AdminAddr string
	// Addr is the router's public listen address.
	Addr string
	// Domain: service hello is served at hello.<Domain>.
	Domain string
	// AdminToken, when set, is the admin API's bearer token; otherwise one is
	// generated at first start and kept in DataDir.
	AdminToken string
	// LogFormat is "text" or "json"; LogLevel is debug, info, warn or error.
	LogFormat string
	LogLevel  string
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration

	// Store is where state is kept, as a URL: sqlite:///path/to/wisp.db
	// (or sqlite:relative/path); "" means SQLite at <DataDir>/wisp.db.
	// See ParseStore.
	Store string
	// Runtime runs instances: "docker" (the default) or "kubernetes".
	Runtime string
	// Builder builds images from source: "docker" (the default: the Docker
	// Engine's build API) or "none" (builds are refused).
	Builder string

	// DockerNetwork is the bridge network instances join, or "host".
	DockerNetwork string
	// DockerPublish publishes instance ports on 127.0.0.1 instead of dialing
	// container addresses (automatic on Docker Desktop).
	DockerPublish bool
	// DockerPull pulls images that are not on the machine.
	DockerPull bool
	// DockerSandboxes is how many network sandboxes the Docker runtime keeps
	// started ahead of cold starts on the bridge network; 0 turns them off.
	DockerSandboxes int
	// Kubeconfig is the kubeconfig file of the kubernetes runtime; "" means
	// $KUBECONFIG, then ~/.kube/config, then the configuration of the pod
	// Wisp runs in.
	Kubeconfig string
	// KubeNamespace holds the kubernetes runtime's Deployments and pods;
	// "" means the kubeconfig context's (in a pod: its own) namespace.
	KubeNamespace string
	// KubePullSecret names the Secret the pods pull their images with.
	KubePullSecret string
	// KubeOwner names this installation on the cluster: its objects carry
	// it as a label and it sees only those. Every replica of one
	// installation has the same; two installations in one namespace need
	// different ones. Default "wisp".
	KubeOwner string
	// StartTimeout bounds a cold start (runtime start plus readiness).
	StartTimeout time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL for an instance.
	StopGrace time.Duration
	// ReapInterval is how often idle instances are paused or removed.
	ReapInterval time.Duration
	// KeepInstances leaves instances running at shutdown, for adoption.
	KeepInstances bool
	// ParallelStarts bounds the scale-up starts in flight at once.
	ParallelStarts int
	// EarlyScaleUp has the autoscaler look at the load as soon as requests
	// queue for a version, not only at its tick (every second).
	EarlyScaleUp bool
	// The autoscaler's windows (see package autoscaler).
	StableWindow   time.Duration
	PanicWindow    time.Duration
	ScaleDownDelay time.Duration
	// Watchdog is the wisp-watchdog binary that stdio builds put in their
	// images; "" means the one next to the wisp binary, if any.
	Watchdog string
	// MaxBuildContext bounds an uploaded build context, in bytes.
	MaxBuildContext int64

	// LogDir keeps the services' log streams ("" means <DataDir>/logs);
	// LogMaxBytes and LogMaxAge are the retention of a service without
	// its own (docs/logs.md).
	LogDir      string
	LogMaxBytes int64
	LogMaxAge   time.Duration
	// LogCapture captures instances' output into the logs (off: only
	// platform events and request lines are kept).
	LogCapture bool

	// What a client of the router's public listener may hold (issue 10):
	// ReadHeaderTimeout bounds reading a request's headers; BodyTimeout
	// cuts off a body that sends nothing for that long and is the grace
	// before MinBodyRate (bytes per second, 0 = off) applies;
	// UpgradeIdleTimeout closes an upgraded connection (a WebSocket) idle
	// that long. See router.Limits.
	ReadHeaderTimeout  time.Duration
	BodyTimeout        time.Duration
	MinBodyRate        int64
	UpgradeIdleTimeout time.Duration
	// RequestLogRate is the request log lines per second per service the
	// router writes before it samples them (policy.request_logs).
	RequestLogRate int
	// TrustedProxies lists, comma-separated, the address ranges (CIDR, or
	// single addresses) of the proxies in front of the router whose
	// X-Forwarded-For it believes for source rules; "" believes none. See
	// ParseTrustedProxies.
	TrustedProxies string
	// CallbackAllow lists, comma-separated, the private address ranges
	// async callbacks may reach besides public addresses, or "any" for
	// every address; "" allows public addresses only. See
	// ParseCallbackAllow.
	CallbackAllow string

	// AdminTLSCert and AdminTLSKey, both set, serve the admin API over
	// HTTPS with that certificate and key (PEM files).
	AdminTLSCert string
	AdminTLSKey  string

	// Async turns on async calls, triggers and schedules, kept in NATS
	// JetStream: an embedded server (files under <DataDir>/nats) unless
	// NATSURL names an existing one. NATSCreds (a .creds file) or NATSToken
	// log in to NATSURL; NATSListen opens the embedded server's client port
	// for outside producers, who then must send NATSToken.
	Async      bool
	NATSURL    string
	NATSCreds  string
	NATSToken  string
	NATSListen string

	// Registry, when set (host[:port][/path]), is where builds push their
	// images, so a cluster's nodes can pull them; the version then pins the
	// pushed digest. RegistryUsername and RegistryPassword log in to it.
	Registry         string
	RegistryUsername string
	RegistryPassword string

	// Several replicas (on a runtime whose instances they share):
	// ReplicaID names this process among them ("" means $POD_NAME, else
	// <hostname>-<pid>-<random>); AdvertiseAdminURL is where the others
	// reach its admin API to report their load while it leads ("" means
	// derived from the admin listener, or $POD_IP inside a pod);
	// LeaderLease is how long the leader's lease lasts unrenewed, so a
	// killed leader is replaced within it and a fifth of it.
	ReplicaID         string
	AdvertiseAdminURL string
	LeaderLease       time.Duration
}

// LogPath is where the log streams are kept.
func (c Config) LogPath() string {
	if c.LogDir != "" {
		return c.LogDir
	}
	return filepath.Join(c.DataDir, "logs")
}

// Default returns the embedded defaults.
func Default() Config {
	return Config{
		DataDir:         "./wisp-data",
		AdminAddr:       "127.0.0.1:8081",
		Addr:            ":8080",
		Domain:          "localhost",
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: 30 * time.Second,
		Runtime:         RuntimeDocker,
		Builder:         BuilderDocker,
		DockerNetwork:   "wisp",
		DockerSandboxes: 2,
		StartTimeout:    30 * time.Second,
		StopGrace:       10 * time.Second,
		ReapInterval:    time.Second,
		ParallelStarts:  3,
		EarlyScaleUp:    true,
		StableWindow:    60 * time.Second,
		PanicWindow:     6 * time.Second,
		ScaleDownDelay:  30 * time.Second,
		MaxBuildContext: 256 << 20,
		LogMaxBytes:     core.DefaultLogMaxBytes,
		LogMaxAge:       core.DefaultLogMaxAge,
		LogCapture:      true,
		Async:           true,

		ReadHeaderTimeout:  10 * time.Second,
		BodyTimeout:        30 * time.Second,
		MinBodyRate:        DefaultMinBodyRate,
		UpgradeIdleTimeout: 5 * time.Minute,
		RequestLogRate:     100,

		LeaderLease: 10 * time.Second,
	}
}

// DefaultMinBodyRate is the slowest average a request body may arrive at
// after its first BodyTimeout: 1 KiB per second, a tenth of what a 2G mobile
// link carries, so no real client meets it while a slowloris that sends a
// byte a second is cut off after 30 s.
const DefaultMinBodyRate = 1 << 10

// Env names of the settings.
const (
	EnvDataDir    = "WISP_DATA_DIR"
	EnvAdminAddr  = "WISP_ADMIN_ADDR"
	EnvAddr       = "WISP_ADDR"
	EnvDomain     = "WISP_DOMAIN"
	EnvAdminToken = "WISP_ADMIN_TOKEN" //nolint:gosec // G101: the name of a variable, not a credential
	EnvLogFormat  = "WISP_LOG_FORMAT"
	EnvLogLevel   = "WISP_LOG_LEVEL"
	EnvNetwork    = "WISP_DOCKER_NETWORK"
	EnvStore      = "WISP_STORE"
	EnvRuntime    = "WISP_RUNTIME"
	EnvBuilder    = "WISP_BUILDER"
	EnvAdminCert  = "WISP_ADMIN_TLS_CERT"
	EnvAdminKey   = "WISP_ADMIN_TLS_KEY"
	EnvRegistry   = "WISP_REGISTRY"
	EnvKubeOwner  = "WISP_KUBE_OWNER"
	EnvRegUser    = "WISP_REGISTRY_USERNAME"
	EnvRegPass    = "WISP_REGISTRY_PASSWORD" //nolint:gosec // G101: the name of a variable, not a credential
	EnvReplicaID  = "WISP_REPLICA_ID"
	EnvAdvertise  = "WISP_ADVERTISE_ADMIN_URL"
	EnvKubeconfig = "WISP_KUBECONFIG"
	EnvKubeNS     = "WISP_KUBE_NAMESPACE"
	EnvPullSecret = "WISP_KUBE_PULL_SECRET" //nolint:gosec // G101: the name of a variable, not a credential
	EnvNATSURL    = "WISP_NATS_URL"
	EnvNATSCreds  = "WISP_NATS_CREDS" //nolint:gosec // G101: the name of a variable, not a credential
	EnvNATSToken  = "WISP_NATS_TOKEN" //nolint:gosec // G101: the name of a variable, not a credential
	EnvNATSListen = "WISP_NATS_LISTEN"
	// The standalone server's (wisp nats): its client port is
	// EnvNATSListen's and its token EnvNATSToken's.
	EnvNATSStoreDir = "WISP_NATS_STORE_DIR"
	EnvNATSMonitor  = "WISP_NATS_MONITOR"
	EnvTrusted      = "WISP_TRUSTED_PROXIES"
	EnvCallbacks    = "WISP_CALLBACK_ALLOW"
)

// Runtimes and builders.
const (
	RuntimeDocker     = "docker"
	RuntimeKubernetes = "kubernetes"
	BuilderDocker     = "docker"
	BuilderNone       = "none"
)

// Runtimes lists the accepted values of Runtime; Builders of Builder.
var (
	Runtimes = []string{RuntimeDocker, RuntimeKubernetes}
	Builders = []string{BuilderDocker, BuilderNone}
)

// Store kinds.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// StoreURL is a parsed Store setting.
type StoreURL struct {
	Kind string // StoreSQLite or StorePostgres
	// Path is the SQLite database file; DSN the Postgres connection URL.
	Path, DSN string
}

// ParseStore reads a Store setting for a daemon whose data lives in
// dataDir: "" → SQLite at <dataDir>/wisp.db; sqlite:///abs/path or
// sqlite:rel/path → that file; postgres:// or postgresql:// URLs → Postgres.
// The error names the accepted forms.
func ParseStore(s, dataDir string) (StoreURL, error) {
	switch {
	case s == "":
		return StoreURL{Kind: StoreSQLite, Path: filepath.Join(dataDir, "wisp.db")}, nil
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(s, "sqlite:"), "//")
		if p == "" || strings.ContainsAny(p, "?#") {
			return StoreURL{}, fmt.Errorf("%q names no database file; use sqlite:///path/to/wisp.db", s)
		}
		return StoreURL{Kind: StoreSQLite, Path: p}, nil
	case strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://"):
		return StoreURL{Kind: StorePostgres, DSN: s}, nil
	}
	return StoreURL{}, fmt.Errorf("%q is not a store URL; accepted: sqlite:///path/to/wisp.db, postgres://user@host/db (default: SQLite in the data dir)", redact(s))
}

// redact hides what could be a password in a URL someone mistyped.
func redact(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		return "…" + s[i:]
	}
	return s
}

// ApplyEnv overrides c with the WISP_* variables that getenv reports set.
func (c *Config) ApplyEnv(getenv func(string) string) {
	for _, e := range []struct {
		name string
		dst  *string
	}{
		{EnvDataDir, &c.DataDir}, {EnvAdminAddr, &c.AdminAddr}, {EnvAddr, &c.Addr}, {EnvDomain, &c.Domain},
		{EnvAdminToken, &c.AdminToken}, {EnvLogFormat, &c.LogFormat}, {EnvLogLevel, &c.LogLevel},
		{EnvNetwork, &c.DockerNetwork}, {EnvStore, &c.Store}, {EnvRuntime, &c.Runtime}, {EnvBuilder, &c.Builder},
		{EnvAdminCert, &c.AdminTLSCert}, {EnvAdminKey, &c.AdminTLSKey},
		{EnvRegistry, &c.Registry}, {EnvRegUser, &c.RegistryUsername}, {EnvRegPass, &c.RegistryPassword},
		{EnvReplicaID, &c.ReplicaID}, {EnvAdvertise, &c.AdvertiseAdminURL},
		{EnvKubeconfig, &c.Kubeconfig}, {EnvKubeNS, &c.KubeNamespace}, {EnvPullSecret, &c.KubePullSecret}, {EnvKubeOwner, &c.KubeOwner},
		{EnvNATSURL, &c.NATSURL}, {EnvNATSCreds, &c.NATSCreds}, {EnvNATSToken, &c.NATSToken}, {EnvNATSListen, &c.NATSListen},
		{EnvTrusted, &c.TrustedProxies},
		{EnvCallbacks, &c.CallbackAllow},
	} {
		if v := getenv(e.name); v != "" {
			*e.dst = v
		}
	}
}

// Validate checks every setting and names the one at fault.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must not be empty (--data-dir, "+EnvDataDir+")"))
	}
	if err := checkAddr(c.AdminAddr); err != nil {
		errs = append(errs, fmt.Errorf("admin address (--admin-addr, %s): %w", EnvAdminAddr, err))
	}
	if err := checkAddr(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("router address (--addr, %s): %w", EnvAddr, err))
	}
	if err := checkDomain(c.Domain); err != nil {
		errs = append(errs, fmt.Errorf("domain (--domain, %s): %w", EnvDomain, err))
	}
	if c.AdminToken != "" && (len(c.AdminToken) < 16 || strings.ContainsAny(c.AdminToken, " \t\r\n")) {
		errs = append(errs, fmt.Errorf("admin token (--admin-token, %s) must be at least 16 characters without spaces", EnvAdminToken))
	}
	if err := c.ValidateLogging(); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseStore(c.Store, c.DataDir); err != nil {
		errs = append(errs, fmt.Errorf("store (--store, %s): %w", EnvStore, err))
	}
	if !slices.Contains(Runtimes, c.Runtime) {
		errs = append(errs, fmt.Errorf("runtime (--runtime, %s) must be one of %s, got %q", EnvRuntime, strings.Join(Runtimes, ", "), c.Runtime))
	}
	if c.Registry != "" && (strings.Contains(c.Registry, "://") || strings.ContainsAny(c.Registry, " @")) {
		errs = append(errs, fmt.Errorf("registry (--registry, %s) is host[:port][/path] without a scheme or tag, e.g. registry.example.com:5000/wisp; got %q", EnvRegistry, c.Registry))
	}
	if c.NATSURL != "" && c.NATSListen != "" {
		errs = append(errs, fmt.Errorf("--nats-listen (%s) opens the embedded NATS server's port; with --nats-url (%s) there is none: drop one of them", EnvNATSListen, EnvNATSURL))
	}
	if c.NATSListen != "" && c.NATSToken == "" {
		errs = append(errs, fmt.Errorf("--nats-listen (%s) needs a token that producers send: set %s (for example to the output of openssl rand -hex 24)", EnvNATSListen, EnvNATSToken))
	}
	if !c.Async && (c.NATSURL != "" || c.NATSListen != "") {
		errs = append(errs, fmt.Errorf("--nats-url and --nats-listen configure async calls, which --async=false turns off"))
	}
	if c.NATSURL != "" && !strings.HasPrefix(c.NATSURL, "nats://") && !strings.HasPrefix(c.NATSURL, "tls://") {
		errs = append(errs, fmt.Errorf("NATS URL (--nats-url, %s) must start with nats:// or tls://, got %q", EnvNATSURL, c.NATSURL))
	}
	if c.Registry == "" && (c.RegistryUsername != "" || c.RegistryPassword != "") {
		errs = append(errs, fmt.Errorf("a registry login (--registry-username, %s, %s) needs the registry it is for: set --registry (%s)", EnvRegUser, EnvRegPass, EnvRegistry))
	}
	if c.KubeOwner != "" && !dnsLabel(c.KubeOwner) {
		errs = append(errs, fmt.Errorf("kubernetes owner (--kube-owner, %s) must be a DNS label (lowercase letters, digits and '-', at most 63), got %q", EnvKubeOwner, c.KubeOwner))
	}
	if !slices.Contains(Builders, c.Builder) {
		errs = append(errs, fmt.Errorf("builder (--builder, %s) must be one of %s, got %q", EnvBuilder, strings.Join(Builders, ", "), c.Builder))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout (--shutdown-timeout) must be positive, got %s", c.ShutdownTimeout))
	}
	if c.DockerNetwork == "" || strings.ContainsAny(c.DockerNetwork, " /:") {
		errs = append(errs, fmt.Errorf("docker network (--docker-network, %s) must be a network name or \"host\", got %q", EnvNetwork, c.DockerNetwork))
	}
	if c.KubeNamespace != "" && !dnsLabel(c.KubeNamespace) {
		errs = append(errs, fmt.Errorf("kubernetes namespace (--kube-namespace, %s) must be a DNS label, got %q", EnvKubeNS, c.KubeNamespace))
	}
	if c.StartTimeout < time.Second || c.StartTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("start timeout (--start-timeout) must be between 1s and 10m, got %s", c.StartTimeout))
	}
	if c.DockerSandboxes < 0 || c.DockerSandboxes > 64 {
		errs = append(errs, fmt.Errorf("docker sandboxes (--docker-sandboxes) must be between 0 (off) and 64, got %d", c.DockerSandboxes))
	}
	if c.StopGrace < 0 || c.StopGrace > 5*time.Minute {
		errs = append(errs, fmt.Errorf("stop grace (--stop-grace) must be between 0 and 5m, got %s", c.StopGrace))
	}
	if c.PanicWindow < time.Second || c.StableWindow < c.PanicWindow || c.StableWindow > time.Hour {
		errs = append(errs, fmt.Errorf("autoscaler windows (--panic-window, --stable-window) need 1s ≤ panic ≤ stable ≤ 1h, got %s and %s", c.PanicWindow, c.StableWindow))
	}
	if c.ScaleDownDelay < 0 || c.ScaleDownDelay > time.Hour {
		errs = append(errs, fmt.Errorf("scale-down delay (--scale-down-delay) must be between 0 and 1h, got %s", c.ScaleDownDelay))
	}
	if c.ParallelStarts < 1 || c.ParallelStarts > 100 {
		errs = append(errs, fmt.Errorf("parallel starts (--parallel-starts) must be between 1 and 100, got %d", c.ParallelStarts))
	}
	if c.ReapInterval < 10*time.Millisecond || c.ReapInterval > time.Minute {
		errs = append(errs, fmt.Errorf("reap interval (--reap-interval) must be between 10ms and 1m, got %s", c.ReapInterval))
	}
	if err := (core.LogRetention{MaxBytes: c.LogMaxBytes, MaxAge: c.LogMaxAge}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w (--log-max-bytes, --log-max-age)", err))
	}
	if c.MaxBuildContext < 1<<20 || c.MaxBuildContext > 64<<30 {
		errs = append(errs, fmt.Errorf("build context limit (--max-build-context) must be between 1Mi and 64Gi, got %d bytes", c.MaxBuildContext))
	}
	errs = append(errs, c.validateEdge()...)
	return errors.Join(errs...)
}

// ValidateLogging checks the log format and level, the settings that
// commands other than serve share (wisp nats).
func (c Config) ValidateLogging() error {
	var errs []error
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log format (--log-format, %s) must be text or json, got %q", EnvLogFormat, c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level (--log-level, %s) must be debug, info, warn or error, got %q", EnvLogLevel, c.LogLevel))
	}
	return errors.Join(errs...)
}

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (for example 127.0.0.1:8081 or :8080)", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port", addr)
	}
	return nil
}

func checkDomain(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("%q must be 1 to 253 characters", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("%q is not a valid domain name", d)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not a valid domain name (lowercase letters, digits, '-' and '.')", d)
			}
		}
	}
	return nil
}

// TokenFileName is the file in the data directory that keeps the generated
// admin token (mode 0600).
const TokenFileName = "admin-token"

// TokenPath returns where the generated admin token of dataDir is kept.
func TokenPath(dataDir string) string { return filepath.Join(dataDir, TokenFileName) }

// ReadToken returns the admin token kept in dataDir.
func ReadToken(dataDir string) (string, error) {
	b, err := os.ReadFile(TokenPath(dataDir))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// validateEdge checks the public listener's limits and the admin API's TLS.
func (c Config) validateEdge() []error {
	var errs []error
	if c.ReadHeaderTimeout < 100*time.Millisecond || c.ReadHeaderTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("header read timeout (--read-header-timeout) must be between 100ms and 10m, got %s", c.ReadHeaderTimeout))
	}
	if c.BodyTimeout < 100*time.Millisecond || c.BodyTimeout > time.Hour {
		errs = append(errs, fmt.Errorf("body timeout (--body-timeout) must be between 100ms and 1h, got %s", c.BodyTimeout))
	}
	if c.MinBodyRate < 0 || c.MinBodyRate > 1<<30 {
		errs = append(errs, fmt.Errorf("minimum body rate (--min-body-rate) must be between 0 (off) and 1Gi bytes per second, got %d", c.MinBodyRate))
	}
	if c.RequestLogRate < 1 || c.RequestLogRate > 1000000 {
		errs = append(errs, fmt.Errorf("request log rate (--request-log-rate) must be between 1 and 1000000 lines per second, got %d", c.RequestLogRate))
	}
	if _, err := ParseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("trusted proxies (--trusted-proxies, %s): %w", EnvTrusted, err))
	}
	if _, _, err := ParseCallbackAllow(c.CallbackAllow); err != nil {
		errs = append(errs, fmt.Errorf("callback allow-list (--callback-allow, %s): %w", EnvCallbacks, err))
	}
	if c.UpgradeIdleTimeout < time.Second || c.UpgradeIdleTimeout > 24*time.Hour {
		errs = append(errs, fmt.Errorf("upgrade idle timeout (--upgrade-idle-timeout) must be between 1s and 24h, got %s", c.UpgradeIdleTimeout))
	}
	if c.ReplicaID != "" {
		if err := core.CheckReplicaID(c.ReplicaID); err != nil {
			errs = append(errs, fmt.Errorf("replica ID (--replica-id, %s): %w", EnvReplicaID, err))
		}
	}
	if c.AdvertiseAdminURL != "" {
		if err := checkAdminURL(c.AdvertiseAdminURL); err != nil {
			errs = append(errs, fmt.Errorf("advertised admin URL (--advertise-admin-url, %s): %w", EnvAdvertise, err))
		}
	}
	if c.LeaderLease < time.Second || c.LeaderLease > 5*time.Minute {
		errs = append(errs, fmt.Errorf("leader lease (--leader-lease) must be between 1s and 5m, got %s", c.LeaderLease))
	}
	if (c.AdminTLSCert == "") != (c.AdminTLSKey == "") {
		errs = append(errs, fmt.Errorf("admin TLS needs both a certificate and a key (--admin-tls-cert, --admin-tls-key; %s, %s)", EnvAdminCert, EnvAdminKey))
	}
	return errs
}

// ParseTrustedProxies reads a TrustedProxies setting: address ranges in
// CIDR notation (10.0.0.0/8, fd00::/8) or single addresses (a /32 or
// /128), separated by commas; empty items are skipped. The error names
// the item that is neither.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an address range in CIDR notation (such as 10.0.0.0/8 or fd00::/8) nor an address", item)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ParseCallbackAllow reads a CallbackAllow setting: "any" (every address,
// all true), or address ranges as ParseTrustedProxies reads them.
func ParseCallbackAllow(s string) (ranges []netip.Prefix, all bool, err error) {
	if strings.EqualFold(strings.TrimSpace(s), "any") {
		return nil, true, nil
	}
	ranges, err = ParseTrustedProxies(s)
	if err != nil {
		return nil, false, fmt.Errorf("%w; or \"any\" for every address", err)
	}
	return ranges, false, nil
}

// checkAdminURL checks an advertised admin URL: http(s)://host:port with
// no path, query or spaces.
func checkAdminURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("%q is not a URL", s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must be http(s)://host:port, e.g. http://10.0.0.5:8081", s)
	}
	return nil
}

// AdminTLS reports whether the admin API is served over HTTPS.
func (c Config) AdminTLS() bool { return c.AdminTLSCert != "" && c.AdminTLSKey != "" }

// dnsLabel reports whether s is a DNS label (RFC 1123): lowercase letters,
// digits and '-', 1–63 characters, starting and ending with a letter or
// digit.
func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}
