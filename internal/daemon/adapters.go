package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/queue"
	natsq "github.com/wisp-run/wisp/internal/queue/nats"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/runtime/docker"
	"github.com/wisp-run/wisp/internal/runtime/kube"
	"github.com/wisp-run/wisp/internal/store"
	"github.com/wisp-run/wisp/internal/store/postgres"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

// The adapters are chosen here, by configuration, and nowhere else: the
// store (--store), the runtime (--runtime) and the builder (--builder). An
// unknown value never gets this far: config.Validate names the accepted
// ones.

// openQueue opens NATS JetStream: the embedded server, or cfg.NATSURL. It
// returns a nil queue when async calls are off.
func openQueue(ctx context.Context, cfg config.Config, logger *slog.Logger) (queue.Queue, string, func(), error) {
	if !cfg.Async {
		return nil, "", func() {}, nil
	}
	nc := natsq.Config{URL: cfg.NATSURL, CredsFile: cfg.NATSCreds, DataDir: cfg.DataDir, Listen: cfg.NATSListen}
	if cfg.NATSURL != "" {
		nc.Token = cfg.NATSToken
	} else {
		nc.ListenToken = cfg.NATSToken
	}
	q, err := natsq.Open(ctx, nc, logger)
	if err != nil {
		return nil, "", nil, fmt.Errorf("async calls: %w (run with --async=false to go without them)", err)
	}
	u := q.ClientURL()
	if u != "" {
		logger.Info("NATS listening for outside producers", "url", u)
	}
	return q, u, q.Close, nil
}

// openStore opens the store cfg.Store names (opts.Store replaces it).
func openStore(ctx context.Context, cfg config.Config, logger *slog.Logger, opts Options) (store.Store, string, error) {
	if opts.Store != nil {
		return opts.Store, "custom", nil
	}
	u, err := config.ParseStore(cfg.Store, cfg.DataDir)
	if err != nil {
		return nil, "", err
	}
	switch u.Kind {
	case config.StoreSQLite:
		if dir := filepath.Dir(u.Path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, "", fmt.Errorf("store: create %s: %w", dir, err)
			}
		}
		st, err := sqlite.Open(ctx, u.Path)
		return st, "sqlite " + u.Path, err
	case config.StorePostgres:
		st, err := postgres.Open(ctx, postgres.Config{URL: u.DSN, Logger: logger})
		if err != nil {
			return nil, "", fmt.Errorf("store %s: %w", redactURL(u.DSN), err)
		}
		return st, "postgres " + redactURL(u.DSN), nil
	}
	return nil, "", fmt.Errorf("store: unknown kind %q", u.Kind) // ParseStore returns none other
}

// storeKind is the kind of store a store name (from openStore) describes:
// "sqlite /path" → "sqlite", "postgres postgres://…@db/wisp" → "postgres".
func storeKind(name string) string {
	kind, _, _ := strings.Cut(name, " ")
	return kind
}

// redactURL hides the user and password of a connection URL, in its user
// part and in its query (libpq also takes ?user=…&password=…).
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if i := strings.LastIndex(rest, "@"); ok && i >= 0 {
		s = scheme + "://…@" + rest[i+1:]
	}
	base, query, ok := strings.Cut(s, "?")
	if !ok {
		return s
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, _, _ := strings.Cut(p, "="); k == "password" || k == "user" {
			params[i] = k + "=…"
		}
	}
	return base + "?" + strings.Join(params, "&")
}

// runtimeParts are what a runtime adapter provides.
type runtimeParts struct {
	rt      runtime.Runtime
	builder runtime.Builder // nil: builds are off
	close   func() error
	name    string // for /v1/info and logs
	// metrics are the adapter's own collectors (the Docker runtime's
	// sandbox pool); registered with the daemon's.
	metrics []prometheus.Collector
}

// openRuntime opens the runtime cfg.Runtime names, and the builder
// cfg.Builder names; routerAddr is where instances reach the router.
// opts.Runtime and opts.Builder (tests) replace them.
func openRuntime(ctx context.Context, cfg config.Config, logger *slog.Logger, opts Options, routerAddr string) (runtimeParts, error) {
	if opts.Runtime != nil {
		return runtimeParts{rt: opts.Runtime, builder: opts.Builder, close: func() error { return nil }, name: "custom"}, nil
	}
	var p runtimeParts
	var dk *docker.Docker
	switch cfg.Runtime {
	case config.RuntimeDocker:
		owner, err := loadOrCreateID(cfg.DataDir)
		if err != nil {
			return p, err
		}
		if dk, err = docker.Open(ctx, docker.Config{
			Network: cfg.DockerNetwork, Publish: cfg.DockerPublish, Pull: cfg.DockerPull, Logger: logger, Owner: owner,
			RouterAddr: routerAddr, Sandboxes: cfg.DockerSandboxes,
		}); err != nil {
			return p, err
		}
		p = runtimeParts{rt: dk, close: dk.Close, name: config.RuntimeDocker, metrics: sandboxMetrics(dk)}
	case config.RuntimeKubernetes:
		// Not the data directory's ID as on Docker: every replica of an
		// installation must see the same objects.
		owner := cfg.KubeOwner
		if owner == "" {
			owner = "wisp"
		}
		k, err := kube.Open(ctx, kube.Config{
			Kubeconfig: cfg.Kubeconfig, Namespace: cfg.KubeNamespace, Owner: owner,
			ImagePullSecret: cfg.KubePullSecret, PullAuth: registryAuth(cfg), StopGrace: cfg.StopGrace, Logger: logger,
		})
		if err != nil {
			return p, err
		}
		p = runtimeParts{rt: k, close: k.Close, name: config.RuntimeKubernetes}
	default:
		return p, fmt.Errorf("runtime %q: accepted: %s", cfg.Runtime, strings.Join(config.Runtimes, ", "))
	}
	switch cfg.Builder {
	case config.BuilderDocker:
		if dk != nil {
			p.builder = dk.Builder()
			break
		}
		// A cluster's nodes pull what a build makes, so the builds go to a
		// registry; without one, builds are off (deploys of images work).
		if cfg.Registry == "" {
			logger.Info("builds are off: on a cluster runtime a build must be pushed to a registry its nodes pull from; set --registry", "runtime", cfg.Runtime)
			break
		}
		b, err := docker.OpenBuilder(ctx)
		if err != nil {
			_ = p.close()
			return p, err
		}
		p.builder = b
		closeRuntime := p.close
		p.close = func() error { return errors.Join(closeRuntime(), b.Close()) }
	case config.BuilderNone:
	default:
		_ = p.close()
		return p, fmt.Errorf("builder %q: accepted: %s", cfg.Builder, strings.Join(config.Builders, ", "))
	}
	return p, nil
}

// registryAuth is how builds log in to cfg.Registry.
func registryAuth(cfg config.Config) runtime.RegistryAuth {
	server, _, _ := strings.Cut(cfg.Registry, "/")
	return runtime.RegistryAuth{Server: server, Username: cfg.RegistryUsername, Password: cfg.RegistryPassword}
}

// sandboxMetrics reports the Docker runtime's pool of network sandboxes
// (none when sandboxes are off or unavailable).
func sandboxMetrics(dk *docker.Docker) []prometheus.Collector {
	if !dk.SandboxStats().On {
		return nil
	}
	gauge := func(name, help string, f func(docker.SandboxStats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(f(dk.SandboxStats())) })
	}
	counter := func(name, help string, f func(docker.SandboxStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(dk.SandboxStats())) })
	}
	return []prometheus.Collector{
		gauge("wisp_sandboxes_free", "Network sandboxes started ahead and not yet used.",
			func(s docker.SandboxStats) int { return s.Free }),
		gauge("wisp_sandboxes_in_use", "Network sandboxes that hold an instance (one each, for its whole life).",
			func(s docker.SandboxStats) int { return s.InUse }),
		gauge("wisp_sandboxes_target", "Free network sandboxes the pool keeps (--docker-sandboxes).",
			func(s docker.SandboxStats) int { return s.Size }),
		counter("wisp_sandbox_takes_total", "Instances created in a sandbox from the pool.",
			func(s docker.SandboxStats) uint64 { return s.Taken }),
		counter("wisp_sandbox_misses_total", "Instances created without a sandbox because the pool was empty (their start wires the network: slower).",
			func(s docker.SandboxStats) uint64 { return s.Misses }),
		counter("wisp_sandbox_failures_total", "Sandboxes the pool could not create.",
			func(s docker.SandboxStats) uint64 { return s.Failed }),
	}
}
