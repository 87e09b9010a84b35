package cli

import (
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
)

func (a *app) serveCommand(defaults config.Config) *cobra.Command {
	cfg := defaults
	maxContext := core.ByteSize(cfg.MaxBuildContext).String()
	minBodyRate := core.ByteSize(cfg.MinBodyRate).String()
	logMaxBytes := core.ByteSize(cfg.LogMaxBytes).String()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Wisp daemon (admin API, router and control loops)",
		Long: `Run the Wisp daemon in the foreground until SIGINT or SIGTERM, then shut
down gracefully: stop accepting, finish in-flight requests, close the store.

Settings come from flags, else WISP_* environment variables, else defaults.
Data (the SQLite database, unless --store says otherwise, and the generated
admin token) lives in --data-dir.
On first start without --admin-token, a token is generated and saved in
<data-dir>/admin-token with mode 0600; the token itself is never printed.
An admin API bound to an address other than loopback should be served over
TLS (--admin-tls-cert, --admin-tls-key); over plain HTTP Wisp warns.

Behind a load balancer, every connection comes from the balancer: give its
addresses with --trusted-proxies (for example 10.0.0.0/8) and source: request
rules test the client's address from X-Forwarded-For instead. Without it the
header is never believed, since any client can send one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.DataDir = a.dataDir
			size, err := core.ParseByteSize(maxContext)
			if err != nil {
				return usagef("--max-build-context: %v", err)
			}
			cfg.MaxBuildContext = int64(size)
			rate, err := core.ParseByteSize(minBodyRate)
			if err != nil {
				return usagef("--min-body-rate: %v", err)
			}
			cfg.MinBodyRate = int64(rate)
			logBytes, err := core.ParseByteSize(logMaxBytes)
			if err != nil {
				return usagef("--log-max-bytes: %v", err)
			}
			cfg.LogMaxBytes = int64(logBytes)
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			logger := newLogger(a, cfg)
			// A proxy allocates per request and keeps little live memory: a
			// GC target of 400 (the default is 100) trades a little memory
			// for fewer collections on the hot path (docs/benchmarks.md).
			// GOGC, when set, wins.
			if a.getenv("GOGC") == "" {
				debug.SetGCPercent(400)
			}
			d, err := daemon.Open(cmd.Context(), cfg, logger, daemon.Options{Out: a.stderr})
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "admin API listen address; keep it private, or serve it over TLS (env "+config.EnvAdminAddr+")")
	f.StringVar(&cfg.AdminTLSCert, "admin-tls-cert", cfg.AdminTLSCert, "serve the admin API over HTTPS with this PEM certificate (with --admin-tls-key; env "+config.EnvAdminCert+")")
	f.StringVar(&cfg.AdminTLSKey, "admin-tls-key", cfg.AdminTLSKey, "the PEM private key of --admin-tls-cert (env "+config.EnvAdminKey+")")
	f.BoolVar(&cfg.Async, "async", cfg.Async, "async calls, event triggers and schedules, kept in NATS JetStream (embedded unless --nats-url); --async=false runs without NATS")
	f.StringVar(&cfg.NATSURL, "nats-url", cfg.NATSURL, "use this NATS server or cluster (nats://host:4222, comma-separated for several) instead of the embedded one; needed when several replicas share a store (env "+config.EnvNATSURL+")")
	f.StringVar(&cfg.NATSCreds, "nats-creds", cfg.NATSCreds, "log in to --nats-url with this .creds file (env "+config.EnvNATSCreds+")")
	f.StringVar(&cfg.NATSListen, "nats-listen", cfg.NATSListen, "open the embedded NATS server's client port here (127.0.0.1:4222) so outside producers can publish events; they must send the token from "+config.EnvNATSToken+" (env "+config.EnvNATSListen+")")
	f.StringVar(&cfg.Registry, "registry", cfg.Registry, "push every built image to this registry (host[:port][/path]) and pin the pushed digest, so a cluster's nodes can pull it (env "+config.EnvRegistry+")")
	f.StringVar(&cfg.RegistryUsername, "registry-username", cfg.RegistryUsername, "log in to --registry as this user (env "+config.EnvRegUser+"; the password only from env "+config.EnvRegPass+")")
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "router listen address (env "+config.EnvAddr+")")
	f.StringVar(&cfg.Domain, "domain", cfg.Domain, "domain of service hosts: <service>.<domain> (env "+config.EnvDomain+")")
	f.StringVar(&cfg.AdminToken, "admin-token", cfg.AdminToken, "admin API bearer token, at least 16 characters (env "+config.EnvAdminToken+"; default: generated and saved in the data dir)")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json (env "+config.EnvLogFormat+")")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error (env "+config.EnvLogLevel+")")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long a graceful shutdown may take")
	f.StringVar(&cfg.Store, "store", cfg.Store, "where state is kept: sqlite:///path/to/wisp.db (env "+config.EnvStore+"; default: SQLite at <data-dir>/wisp.db)")
	f.StringVar(&cfg.Runtime, "runtime", cfg.Runtime, "what runs instances: "+strings.Join(config.Runtimes, ", ")+" (env "+config.EnvRuntime+")")
	f.StringVar(&cfg.Builder, "builder", cfg.Builder, "what builds images for wisp deploy: "+strings.Join(config.Builders, ", ")+" (env "+config.EnvBuilder+")")
	f.StringVar(&cfg.DockerNetwork, "docker-network", cfg.DockerNetwork, "bridge network instances join (created if missing), or \"host\": faster starts, no isolation, apps listen on $PORT (env "+config.EnvNetwork+")")
	f.BoolVar(&cfg.DockerPublish, "docker-publish", cfg.DockerPublish, "publish instance ports on 127.0.0.1 instead of dialing container addresses (automatic on Docker Desktop)")
	f.BoolVar(&cfg.DockerPull, "docker-pull", cfg.DockerPull, "pull images that are not on this machine when a version is created")
	f.IntVar(&cfg.DockerSandboxes, "docker-sandboxes", cfg.DockerSandboxes, "network sandboxes kept started ahead of cold starts on the bridge network (each a paused 129-byte process): a cold start joins one instead of waiting for its network; 0 turns them off")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", cfg.Kubeconfig, "runtime kubernetes: the kubeconfig file (env "+config.EnvKubeconfig+"; default: $KUBECONFIG, ~/.kube/config, or the pod's own service account)")
	f.StringVar(&cfg.KubeNamespace, "kube-namespace", cfg.KubeNamespace, "runtime kubernetes: the namespace of Wisp's Deployments and pods (env "+config.EnvKubeNS+"; default: the kubeconfig context's, or the pod's own)")
	f.StringVar(&cfg.KubeOwner, "kube-owner", cfg.KubeOwner, "runtime kubernetes: this installation's name on the cluster, the same on every replica (default wisp; env "+config.EnvKubeOwner+")")
	f.StringVar(&cfg.KubePullSecret, "kube-pull-secret", cfg.KubePullSecret, "runtime kubernetes: the Secret (type kubernetes.io/dockerconfigjson) pods pull their images with (env "+config.EnvPullSecret+")")
	f.DurationVar(&cfg.StartTimeout, "start-timeout", cfg.StartTimeout, "how long a cold start (container start plus readiness) may take")
	f.DurationVar(&cfg.StopGrace, "stop-grace", cfg.StopGrace, "time between SIGTERM and SIGKILL when stopping an instance")
	f.DurationVar(&cfg.ReapInterval, "reap-interval", cfg.ReapInterval, "how often idle instances are paused or removed")
	f.DurationVar(&cfg.StableWindow, "stable-window", cfg.StableWindow, "autoscaler: load is averaged over this window")
	f.DurationVar(&cfg.PanicWindow, "panic-window", cfg.PanicWindow, "autoscaler: a burst over this window scales up at once")
	f.DurationVar(&cfg.ScaleDownDelay, "scale-down-delay", cfg.ScaleDownDelay, "autoscaler: wait this long after a change before scaling down")
	f.IntVar(&cfg.ParallelStarts, "parallel-starts", cfg.ParallelStarts, "autoscaler: how many instances may be starting at once (a version's first instance never waits for this)")
	f.BoolVar(&cfg.EarlyScaleUp, "early-scale-up", cfg.EarlyScaleUp, "autoscaler: scale up as soon as requests queue for a version (at most 10 times a second), not only at its once-a-second tick; =false waits for the tick")
	f.BoolVar(&cfg.KeepInstances, "keep-instances", cfg.KeepInstances, "leave instances running at shutdown; the next start adopts them")
	f.StringVar(&cfg.ReplicaID, "replica-id", cfg.ReplicaID, "this process's name among the replicas sharing a store and a cluster (env "+config.EnvReplicaID+"; default: $POD_NAME, else <hostname>-<pid>-<random>)")
	f.StringVar(&cfg.AdvertiseAdminURL, "advertise-admin-url", cfg.AdvertiseAdminURL, "where the other replicas reach this one's admin API, http(s)://host:port (env "+config.EnvAdvertise+"; default: from --admin-addr, or $POD_IP inside a pod)")
	f.DurationVar(&cfg.LeaderLease, "leader-lease", cfg.LeaderLease, "replicas: how long the leader's lease lasts unrenewed; a killed leader is replaced within it and a fifth of it")
	f.StringVar(&cfg.Watchdog, "watchdog", cfg.Watchdog, "the wisp-watchdog binary that stdio builds put in their images (default: wisp-watchdog next to this binary)")
	f.StringVar(&cfg.LogDir, "log-dir", cfg.LogDir, "where the services' logs are kept (default <data-dir>/logs)")
	f.StringVar(&logMaxBytes, "log-max-bytes", logMaxBytes, "logs kept per service at most, for services without their own log_max_bytes (at least 1Mi)")
	f.DurationVar(&cfg.LogMaxAge, "log-max-age", cfg.LogMaxAge, "logs older than this are removed, for services without their own log_max_age (at least 1m)")
	f.BoolVar(&cfg.LogCapture, "log-capture", cfg.LogCapture, "capture instances' stdout and stderr into the logs (--log-capture=false: only platform events and request lines are kept)")
	f.StringVar(&maxContext, "max-build-context", maxContext, "largest build context a deploy may upload (as a tar)")
	f.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", cfg.ReadHeaderTimeout, "router: how long a client may take to send a request's headers")
	f.DurationVar(&cfg.BodyTimeout, "body-timeout", cfg.BodyTimeout, "router: a request body that sends nothing for this long is cut off (408); also the grace before --min-body-rate applies")
	f.StringVar(&minBodyRate, "min-body-rate", minBodyRate, "router: after --body-timeout, a request body must arrive at least this many bytes per second on average (0: off)")
	f.IntVar(&cfg.RequestLogRate, "request-log-rate", cfg.RequestLogRate, "router: request log lines per second per service (policy request_logs) before they are sampled; the next line written says how many were skipped")
	f.StringVar(&cfg.CallbackAllow, "callback-allow", cfg.CallbackAllow, "async: CIDR[,CIDR…] of private ranges that callback URLs may reach besides public addresses (single addresses too), or \"any\". Default: public addresses only, never loopback, private, link-local (cloud metadata) or multicast, because any client of the router names callback URLs (env "+config.EnvCallbacks+")")
	f.StringVar(&cfg.TrustedProxies, "trusted-proxies", cfg.TrustedProxies, "router: CIDR[,CIDR…] of the proxies or load balancers in front of Wisp (single addresses too); for a connection from one, source: rules take the client's address from X-Forwarded-For (the right-most entry that is not a trusted proxy). Default none: X-Forwarded-For is never believed (env "+config.EnvTrusted+")")
	f.DurationVar(&cfg.UpgradeIdleTimeout, "upgrade-idle-timeout", cfg.UpgradeIdleTimeout, "router: close an upgraded connection (a WebSocket) with no traffic either way for this long; a version's timeout bounds only its handshake")
	return cmd
}

func newLogger(a *app, cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by cfg.Validate
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}
