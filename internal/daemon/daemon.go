// Package daemon is Wisp's composition root: it builds the store, the
// runtime, the activator, the router and the admin API from a Config, runs
// them, and shuts them down in order. It is the only package that imports
// adapters.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/wisp-run/wisp/internal/activator"
	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/async"
	"github.com/wisp-run/wisp/internal/autoscaler"
	"github.com/wisp-run/wisp/internal/build"
	"github.com/wisp-run/wisp/internal/buildinfo"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/dashboard"
	"github.com/wisp-run/wisp/internal/leader"
	"github.com/wisp-run/wisp/internal/logs"
	"github.com/wisp-run/wisp/internal/rollout"
	"github.com/wisp-run/wisp/internal/router"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/store"
)

// Options are the parts a caller may supply instead of the defaults.
type Options struct {
	// Runtime replaces the configured runtime (tests pass runtime/fake),
	// and Builder the builder (nil: builds are off).
	Runtime runtime.Runtime
	Builder runtime.Builder
	// Store replaces the configured store (tests); the daemon closes it.
	Store store.Store
	// Out receives the one-time announcement of a generated token.
	Out io.Writer
	// Now replaces the activator's clock, which decides the min_instances
	// of a schedule and idleness (tests move it); nil is time.Now.
	Now func() time.Time
}

// Daemon is a running `wisp serve`.
type Daemon struct {
	cfg   config.Config
	log   *slog.Logger
	store store.Store
	// storeHealth exports wisp_store_up.
	storeHealth *storeHealth
	rt          runtime.Runtime
	closeR      func() error
	closeQ      func()
	natsURL     string // the embedded NATS server's client URL when it listens
	act         *activator.Activator
	scaler      *autoscaler.Autoscaler
	rollouts    *rollout.Controller // runs on the leader only
	recorder    *rollout.Recorder   // the router's numbers for rollouts; the leader's adds the others
	router      *router.Router
	builds      *build.Runner // nil when the runtime cannot build
	logs        *logs.Logs
	calls       *async.Calls // nil when async calls are off
	triggers    *async.Triggers
	schedules   *async.Schedules
	// leaderSchedules: schedules fire only while this replica leads
	// (replicas without a shared NATS).
	leaderSchedules bool
	noCapture       bool
	token           string
	reps            *replicas

	admin, public     *http.Server
	adminLn, publicLn net.Listener

	feed    *feed
	sampler *dashboard.Sampler
	endLife context.CancelFunc
	// undoOpen closes what Open opened, newest first: for a Run that ends
	// before it starts serving.
	undoOpen func()
}

// Open validates cfg, prepares the data directory, opens the store and the
// runtime, and binds the listeners, so that the addresses are known (port 0
// works) before Run.
func Open(ctx context.Context, cfg config.Config, logger *slog.Logger, opts Options) (_ *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	token := cfg.AdminToken
	if token == "" {
		if token, err = loadOrCreateToken(cfg.DataDir, opts.Out); err != nil {
			return nil, err
		}
	}
	d := &Daemon{cfg: cfg, log: logger, token: token, closeR: func() error { return nil }, closeQ: func() {}}
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()

	var storeName string
	if d.store, storeName, err = openStore(ctx, cfg, logger, opts); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { _ = d.store.Close() })

	// The listeners first: a taken address fails before the engine is
	// touched, and instances are told where the router is.
	var lc net.ListenConfig
	if d.publicLn, err = lc.Listen(ctx, "tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("router: listen on %s: %w (choose another address with --addr)", cfg.Addr, err)
	}
	cleanups = append(cleanups, func() { _ = d.publicLn.Close() })
	if d.adminLn, err = lc.Listen(ctx, "tcp", cfg.AdminAddr); err != nil {
		return nil, fmt.Errorf("admin API: listen on %s: %w (is another wisp running? choose another address with --admin-addr)", cfg.AdminAddr, err)
	}
	cleanups = append(cleanups, func() { _ = d.adminLn.Close() })
	admin, err := secureAdmin(d.adminLn, cfg, logger, opts.Out)
	if err != nil {
		return nil, err
	}
	d.adminLn = admin

	parts, err := openRuntime(ctx, cfg, logger, opts, d.publicLn.Addr().String())
	if err != nil {
		return nil, err
	}
	d.rt, d.closeR = parts.rt, parts.close
	cleanups = append(cleanups, func() { _ = parts.close() })

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(parts.metrics...)
	if d.storeHealth, err = newStoreHealth(reg, d.store.Revision, logger, 10*time.Second); err != nil {
		return nil, err
	}
	scalerMetrics, err := autoscaler.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	// The log store first: the activator, the router, the API and builds
	// append their events and request lines to it.
	logCfg := logs.Config{Dir: cfg.LogPath(), Retention: core.LogRetention{MaxBytes: cfg.LogMaxBytes, MaxAge: cfg.LogMaxAge},
		Registerer: reg, Logger: logger}
	if cfg.LogCapture {
		logCfg.Runtime = d.rt
	}
	d.noCapture = !cfg.LogCapture
	if d.logs, err = logs.Open(logCfg); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { _ = d.logs.Close() })
	// The activator's background work (starts, probes) lives until Run has
	// shut down, not as long as Open's context.
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	cleanups = append(cleanups, endLife)
	d.endLife = endLife
	var queueing func()
	if cfg.EarlyScaleUp {
		// d.scaler is set below, before any request can arrive (Run).
		queueing = func() { d.scaler.Poke() }
	}
	if d.act, err = activator.New(life, activator.Config{
		Registerer:    reg,
		StartTimeout:  cfg.StartTimeout,
		StopGrace:     cfg.StopGrace,
		ReapInterval:  cfg.ReapInterval,
		KeepInstances: cfg.KeepInstances,

		ParallelStarts: cfg.ParallelStarts,
		Events:         d.logs,
		Queueing:       queueing,
		Now:            opts.Now,
	}, d.rt, logger); err != nil {
		return nil, err
	}
	// Made before the replicas' part: a follower reports its counts.
	d.recorder = rollout.NewRecorder()
	if err := d.openReplicas(cfg, reg); err != nil {
		return nil, err
	}
	if d.scaler, err = autoscaler.New(autoscaler.Config{
		StableWindow: cfg.StableWindow, PanicWindow: cfg.PanicWindow, ScaleDownDelay: cfg.ScaleDownDelay,
	}, d.act, scalerMetrics, logger); err != nil {
		return nil, err
	}
	q, natsURL, closeQ, err := openQueue(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, closeQ)
	d.closeQ, d.natsURL = closeQ, natsURL
	// Rollouts judge versions by this replica's router's numbers.
	recorder := d.recorder
	if d.rollouts, err = rollout.New(rollout.Config{Store: d.store, Recorder: recorder, Events: d.logs, Logger: logger}); err != nil {
		return nil, err
	}
	trusted, err := config.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies (--trusted-proxies, %s): %w", config.EnvTrusted, err)
	}
	routerCfg := router.Config{Domain: cfg.Domain, Acquire: d.acquire, Registerer: reg, Observer: recorder, TrustedProxies: trusted,
		RequestLogs: d.logs, RequestLogRate: float64(cfg.RequestLogRate),
		// A miss waits for the feed (set below, before anything is served):
		// a service made through another replica is served at once.
		CatchUp: func(ctx context.Context) error { return d.feed.Sync(ctx) },
		Limits: router.Limits{
			BodyTimeout: cfg.BodyTimeout, MinBodyRate: cfg.MinBodyRate, UpgradeIdleTimeout: cfg.UpgradeIdleTimeout,
		}}
	if q != nil {
		// Calls are sent through the router's handler, in process.
		toRouter := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { d.router.ServeHTTP(w, r) })
		allow, allowAll, err := config.ParseCallbackAllow(cfg.CallbackAllow)
		if err != nil {
			return nil, fmt.Errorf("callback allow-list (--callback-allow, %s): %w", config.EnvCallbacks, err)
		}
		if d.calls, err = async.New(ctx, async.Config{Queue: q, Handler: toRouter, Domain: cfg.Domain, Registerer: reg,
			Callbacks: async.CallbackPolicy{Allow: allow, AllowAll: allowAll}}, logger); err != nil {
			return nil, err
		}
		routerCfg.Async = d.calls
		if d.triggers, err = async.NewTriggers(ctx, d.calls, reg, logger); err != nil {
			return nil, err
		}
		if d.schedules, err = async.NewSchedules(ctx, d.calls, reg, logger); err != nil {
			return nil, err
		}
		routerCfg.Events = d.triggers
	}
	if d.router, err = router.New(routerCfg, logger); err != nil {
		return nil, err
	}
	d.reps.mirrors = d.router // a follower sends its mirror states
	appliers := []applier{activatorFeed{d.act}, routerFeed{d.router}, logsFeed{d.logs}}
	if d.calls != nil {
		appliers = append(appliers, d.calls)
	}
	d.feed = newFeed(d.store, logger, appliers...)

	if b := parts.builder; b != nil {
		watchdog, err := findWatchdog(cfg.Watchdog, logger)
		if err != nil {
			return nil, err
		}
		if d.builds, err = build.NewRunner(ctx, build.RunnerConfig{
			Builder: b, Store: d.store, Logger: logger, Watchdog: watchdog,
			MaxContext: cfg.MaxBuildContext, Sync: d.feed.Sync,
			Registry: cfg.Registry, RegistryAuth: registryAuth(cfg), Registerer: reg, Events: d.logs,
		}); err != nil {
			return nil, err
		}
	}

	hint := ""
	if cfg.AdminToken == "" {
		hint = "; the token is in " + config.TokenPath(cfg.DataDir)
	}
	apiOpts := []api.Option{
		api.WithSyncer(d.feed),
		api.WithMirrorReports(mirrorReports{d.router, d.reps}),
		api.WithImageResolver(d.rt),
		api.WithInstances(d.act),
		api.WithMetrics(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)})),
		api.WithInfo(serverInfo(parts.name, storeKind(storeName), d.reps.id, parts.rt)),
		api.WithReplicas(leaderSide{d.act, d.reps.id, d.recorder, d.router}),
		api.WithLogs(d.logs),
		api.WithEvents(d.logs),
	}
	if d.builds != nil {
		apiOpts = append(apiOpts, api.WithBuilds(d.builds))
	}
	if d.calls != nil {
		apiOpts = append(apiOpts, api.WithCalls(d.calls), api.WithTriggers(d.triggers), api.WithSchedules(d.schedules))
	}
	handler, err := api.New(api.Config{
		Token:      token,
		Domain:     cfg.Domain,
		RouterPort: d.publicLn.Addr().(*net.TCPAddr).Port,
		TokenHint:  hint,
	}, d.store, logger, apiOpts...)
	if err != nil {
		return nil, err
	}
	// The dashboard at /ui/ reads and changes everything through the API's
	// own handler, and its live numbers from the same registry.
	if d.sampler, err = dashboard.NewSampler(dashboard.SamplerConfig{Gatherer: reg, Logger: logger}); err != nil {
		return nil, err
	}
	ui, err := dashboard.New(dashboard.Config{Token: token, API: handler, Sampler: d.sampler, Secure: cfg.AdminTLS(), Logger: logger})
	if err != nil {
		return nil, err
	}
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	d.admin = &http.Server{Handler: adminHandler(handler, ui), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, ErrorLog: errLog}
	// No write timeout on the router: responses may stream; each version's
	// request timeout bounds the proxying instead, and router.Limits bound
	// request bodies.
	d.public = &http.Server{Handler: d.router, ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: 2 * time.Minute, ErrorLog: errLog}

	d.undoOpen = func() {
		if d.builds != nil {
			_ = d.builds.Close(context.WithoutCancel(ctx))
		}
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	logger.Info("store opened", "store", storeName, "runtime", parts.name, "builds", parts.builder != nil,
		"replica", d.reps.id, "shared_runtime", d.act.Shared())
	return d, nil
}

// openReplicas sets up this process's part in the replicas: its identity,
// and over a shared runtime the election on the store's lease and the load
// reports. Over a runtime that is not shared this process always leads.
func (d *Daemon) openReplicas(cfg config.Config, reg prometheus.Registerer) error {
	id := cfg.ReplicaID
	if id == "" {
		id = defaultReplicaID()
	}
	d.reps = &replicas{id: id, adminURL: advertisedAdminURL(cfg, d.adminLn.Addr()), act: d.act, rec: d.recorder, lease: d.store,
		token: d.token, log: d.log.With("component", "replicas")}
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wisp_leader",
		Help: "1 while this replica leads (starts, scales and removes instances), else 0; always 1 on a runtime that is not shared."},
		func() float64 {
			if d.act.Leading() {
				return 1
			}
			return 0
		})); err != nil {
		return err
	}
	if !d.act.Shared() {
		return nil
	}
	if cfg.AdminToken == "" {
		d.log.Warn("the runtime is shared by replicas, but the admin token is generated per data dir: give every replica the same --admin-token, or they cannot report their load to the leader")
	}
	var err error
	if d.reps.client, err = reportClient(cfg); err != nil {
		return err
	}
	d.reps.elector, err = leader.New(leader.Config{Lease: d.store, Holder: d.reps.holderIdentity(), TTL: cfg.LeaderLease,
		Logger: d.log.With("component", "leader")})
	return err
}

// serverInfo is what GET /v1/info reports.
func serverInfo(name, store, replica string, rt runtime.Runtime) core.ServerInfo {
	bi := buildinfo.Read()
	_, pauses := rt.(runtime.Pauser)
	return core.ServerInfo{Version: bi.Version, Commit: bi.Commit, Go: bi.Go, Runtime: name, Store: store,
		Replica: replica, Leader: true, NoPause: !pauses}
}

// acquire adapts the activator to the router.
func (d *Daemon) acquire(ctx context.Context, v *core.Version) (router.Lease, error) {
	l, err := d.act.Acquire(ctx, v)
	if err != nil {
		return router.Lease{}, err
	}
	return router.Lease{Addr: l.Addr, Instance: l.InstanceID, ColdStart: l.ColdStart, QueueWait: l.QueueWait, Handle: l}, nil
}

// activatorFeed and routerFeed adapt the activator and the router to the
// feed.
type activatorFeed struct{ a *activator.Activator }

func (f activatorFeed) Apply(states []core.ServiceState) {
	for _, s := range states {
		f.a.Apply(s)
	}
}

func (f activatorFeed) Remove(names []string) {
	for _, n := range names {
		f.a.Remove(n)
	}
}

func (f activatorFeed) Replace(states []core.ServiceState) { f.a.Sync(states) }

// logsFeed keeps the log store's retention per service as the policies
// say, and drops a deleted service's logs (a service created again under
// the same name starts with none).
type logsFeed struct{ l *logs.Logs }

func (f logsFeed) Apply(states []core.ServiceState) {
	for _, s := range states {
		f.l.SetRetention(s.Service.Name, s.Service.Policy.Retention())
	}
}

func (f logsFeed) Remove(names []string) {
	for _, n := range names {
		f.l.RemoveService(n)
	}
}

func (f logsFeed) Replace(states []core.ServiceState) { f.Apply(states) }

type routerFeed struct{ r *router.Router }

func (f routerFeed) Apply(states []core.ServiceState)   { f.r.Apply(states...) }
func (f routerFeed) Remove(names []string)              { f.r.Remove(names...) }
func (f routerFeed) Replace(states []core.ServiceState) { f.r.Swap(router.NewSnapshot(states)) }

// AdminAddr is the bound address of the admin API.
func (d *Daemon) AdminAddr() net.Addr { return d.adminLn.Addr() }

// RouterAddr is the bound address of the router.
func (d *Daemon) RouterAddr() net.Addr { return d.publicLn.Addr() }

// NATSURL is the embedded NATS server's client URL when --nats-listen
// opened it, else "".
func (d *Daemon) NATSURL() string { return d.natsURL }

// Token is the admin API's bearer token.
func (d *Daemon) Token() string { return d.token }

// Run serves until ctx is cancelled, then shuts down in order: stop
// accepting and drain in-flight requests (router, then admin API), stop the
// control loops, stop instances (unless KeepInstances), close the runtime
// client and the store.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.feed.Load(ctx); err != nil {
		d.undoOpen()
		if ctx.Err() != nil {
			return nil // stopped before it began to serve
		}
		return err
	}
	// Adopt the instances of an earlier run; on a shared runtime, until
	// this replica leads, mirror the ready ones, so its router serves them
	// at once.
	if err := d.act.Reconcile(ctx); err != nil {
		d.log.Warn("could not adopt existing instances", "err", err)
	}
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	// The log store outlives the loops and the instances' stop, so that
	// their last lines and events are kept.
	logsCtx, stopLogs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLogs()
	logsDone := make(chan error, 1)
	go func() { logsDone <- d.logs.Run(logsCtx) }()
	var g errgroup.Group
	if !d.noCapture {
		g.Go(func() error { return runCaptures(loopCtx, d.act, d.logs) })
	}
	g.Go(func() error { return d.act.Run(loopCtx) })
	g.Go(func() error { return d.feed.Run(loopCtx) })
	g.Go(func() error { return d.storeHealth.Run(loopCtx) })
	g.Go(func() error { return d.sampler.Run(loopCtx) })
	if d.calls != nil {
		g.Go(func() error { return d.calls.Run(loopCtx) })
		g.Go(func() error { return d.triggers.Run(loopCtx) })
		if d.reps.elector != nil && d.cfg.NATSURL == "" {
			// Replicas each with their own embedded NATS do not share
			// schedules' records: only the leader fires them.
			d.log.Warn("several replicas share this runtime, but each keeps async calls in its own embedded NATS: a call's status is known only to the replica that took it, and only the leader fires schedules; give every replica one NATS with --nats-url, such as wisp nats (deploy/kubernetes runs one)")
			d.leaderSchedules = true
		} else {
			g.Go(func() error { return d.schedules.Run(loopCtx) })
		}
	}
	if e := d.reps.elector; e != nil {
		// The autoscaler runs in the leader's terms only.
		g.Go(func() error { return e.Run(loopCtx, d.lead) })
		g.Go(func() error { return d.reps.runReports(loopCtx) })
	} else {
		g.Go(func() error { return d.scaler.Run(loopCtx) })
		g.Go(func() error { return d.rollouts.Run(loopCtx) })
	}

	errc := make(chan error, 2)
	go func() { errc <- serve(d.admin, d.adminLn, "admin API") }()
	go func() { errc <- serve(d.public, d.publicLn, "router") }()
	d.log.Info("admin API listening", "addr", d.AdminAddr().String(), "docs", adminScheme(d.cfg)+"://"+d.AdminAddr().String()+"/v1/openapi.json")
	d.log.Info("router listening", "addr", d.RouterAddr().String(), "example", "curl -H 'Host: <service>."+d.cfg.Domain+"' http://"+d.RouterAddr().String()+"/")

	var runErr error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down: draining requests")
	case runErr = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ShutdownTimeout)
	defer cancel()
	// Builds first: cancelling them ends the streams that follow their logs.
	if d.builds != nil {
		if err := d.builds.Close(shutdownCtx); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	if err := d.public.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("router shutdown: %w", err))
	}
	d.router.CloseIdleConnections()
	// Followed logs would hold the admin API's shutdown open.
	d.logs.EndFollows()
	if err := d.admin.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("admin API shutdown: %w", err))
	}
	stopLoops()
	if err := g.Wait(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if err := d.act.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("stop instances: %w", err))
	}
	stopLogs()
	if err := <-logsDone; err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("logs: %w", err))
	}
	d.endLife()
	d.closeQ()
	if err := d.closeR(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close runtime: %w", err))
	}
	if err := d.store.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close store: %w", err))
	}
	d.log.Info("stopped")
	return runErr
}

func serve(s *http.Server, ln net.Listener, name string) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// findWatchdog returns the watchdog binary stdio builds use: the configured
// one, else wisp-watchdog next to this executable, else "" (stdio builds
// are then refused with a message that says how to fix it).
func findWatchdog(configured string, logger *slog.Logger) (string, error) {
	if configured != "" {
		if fi, err := os.Stat(configured); err != nil || !fi.Mode().IsRegular() {
			return "", fmt.Errorf("watchdog (--watchdog) %s is not a file: build it with make build", configured)
		}
		return configured, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", nil //nolint:nilerr // no executable path: stdio builds are off, as documented
	}
	path := filepath.Join(filepath.Dir(exe), "wisp-watchdog")
	if _, err := os.Stat(path); err != nil {
		logger.Info("no wisp-watchdog next to the wisp binary: stdio builds are off (make build builds it; or --watchdog)", "looked_for", path)
		return "", nil
	}
	return path, nil
}

// IDFileName keeps the ID of this installation, which labels its containers.
const IDFileName = "installation-id"

// loadOrCreateID returns the installation's ID, generating it on first use.
func loadOrCreateID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, IDFileName)
	b, err := os.ReadFile(path) //nolint:gosec // G304: the operator's own data dir
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read installation ID: %w", err)
	}
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save installation ID: %w", err)
	}
	return id, nil
}

// loadOrCreateToken reads the admin token kept in dataDir, or generates one,
// saves it with mode 0600 and says on out where it is.
func loadOrCreateToken(dataDir string, out io.Writer) (string, error) {
	path := config.TokenPath(dataDir)
	tok, err := config.ReadToken(dataDir)
	if err == nil && tok != "" {
		return tok, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	tok = hex.EncodeToString(b)
	// O_EXCL: two daemons starting at once on one data dir cannot both win.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // G304: the path is the operator's own data dir
	if errors.Is(err, fs.ErrExist) {
		return config.ReadToken(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("save admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("save admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("save admin token: %w", err)
	}
	// Where it is, not the token itself: stdout and stderr of a service end
	// up in journald and other logs.
	fmt.Fprintf(out, "wisp: generated an admin token and saved it in %s (mode 0600).\n"+
		"The wisp CLI on this machine reads it from there; other clients send \"Authorization: Bearer $(cat %s)\".\n", path, path)
	return tok, nil
}
