package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
	"github.com/wisp-run/wisp/internal/store"
)

// Labels on the images that builds make.
const (
	// LabelSourceDigest is the digest of everything the image was built
	// from; an image with the same digest is reused instead of rebuilt.
	LabelSourceDigest = "wisp.source-digest"
	// LabelBuildService names the service the image was first built for.
	LabelBuildService = "wisp.build.service"
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Builder runtime.Builder
	Store   store.Store
	Logger  *slog.Logger
	// Watchdog is the path of the wisp-watchdog binary that stdio builds
	// add to their image; "" refuses stdio builds with a message that says
	// how to fix it.
	Watchdog string
	// MaxContext bounds an uploaded context (tar bytes); 0 means
	// DefaultMaxContext.
	MaxContext int64
	// Parallel is how many builds run at once; the rest wait (default 1:
	// a build uses every core it can get).
	Parallel int
	// TempDir holds uploaded contexts while they build ("" = the system's).
	TempDir string
	// Sync, when set, is called after a build deploys its version and
	// before the build is marked succeeded: it returns once what the store
	// committed is live in the router (or with an error, which the build's
	// output reports; the version exists all the same).
	Sync func(ctx context.Context) error
	// SyncTimeout bounds Sync (default 5s).
	SyncTimeout time.Duration
	// Registry, when set (host[:port][/path]), is where every built image
	// is pushed, so the nodes of a cluster can pull it: the version then
	// pins registry/service@sha256:… instead of the builder's local image
	// ID. The Builder must be a runtime.Pusher.
	Registry string
	// RegistryAuth logs in to Registry (empty: anonymous).
	RegistryAuth runtime.RegistryAuth
	// Registerer receives wisp_builds_total; nil means it is not exported.
	Registerer prometheus.Registerer
	// Events receives build.started and build.finished (docs/events.md);
	// nil discards them.
	Events EventSink
}

// EventSink receives platform events. Append must never block.
type EventSink interface {
	Append(e core.LogEntry)
}

// maxLogBytes bounds the output a build keeps (the tail).
const maxLogBytes = 1 << 20

// Runner runs builds in the daemon: it checks and spools the uploaded
// context, builds the image through the runtime (or reuses an identical
// one), then creates the version and shifts traffic. A failed build creates
// no version and changes no traffic.
type Runner struct {
	cfg    RunnerConfig
	log    *slog.Logger
	slots  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	live   map[int64]*buildLog
	closed bool

	builds *prometheus.CounterVec // finished builds by service and result
}

// NewRunner returns a Runner. Builds that a previous daemon left unfinished
// are marked failed.
func NewRunner(ctx context.Context, cfg RunnerConfig) (*Runner, error) {
	if cfg.Builder == nil || cfg.Store == nil || cfg.Logger == nil {
		return nil, errors.New("build: a runner needs a builder, a store and a logger")
	}
	builds := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wisp_builds_total",
		Help: "Finished builds, by service and result (succeeded, failed).",
	}, []string{"service", "result"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(builds); err != nil {
			return nil, fmt.Errorf("build: metrics: %w", err)
		}
	}
	if _, ok := cfg.Builder.(runtime.Pusher); cfg.Registry != "" && !ok {
		return nil, fmt.Errorf("build: the builder cannot push images to the registry %s", cfg.Registry)
	}
	if cfg.MaxContext <= 0 {
		cfg.MaxContext = DefaultMaxContext
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 1
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 5 * time.Second
	}
	n, err := cfg.Store.FailUnfinishedBuilds(ctx, "the daemon stopped during the build; deploy again")
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "build")
	if n > 0 {
		log.Warn("builds left unfinished by the last run are marked failed", "count", n)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &Runner{cfg: cfg, log: log, builds: builds, slots: make(chan struct{}, cfg.Parallel), ctx: rctx, cancel: cancel,
		live: map[int64]*buildLog{}}, nil
}

// Submit checks req and the uploaded context (a tar stream), records the
// build and starts it. It returns once the context is spooled; the build
// goes on in the background.
func (r *Runner) Submit(ctx context.Context, req core.BuildRequest, upload io.Reader) (core.Build, error) {
	if err := req.Validate(); err != nil {
		return core.Build{}, err
	}
	_, err := r.cfg.Store.GetService(ctx, req.Service)
	switch {
	case errors.Is(err, core.ErrNotFound) && !req.CreateService:
		return core.Build{}, core.NotFoundf("service %q not found; create it (wisp service create %s), or ask the build to (create_service: true, as wisp deploy does)", req.Service, req.Service)
	case err != nil && !errors.Is(err, core.ErrNotFound):
		return core.Build{}, err
	}
	extra := map[string][]byte{}
	if req.Watchdog {
		if r.cfg.Watchdog == "" {
			return core.Build{}, core.Unavailablef("this server cannot build stdio functions: wisp-watchdog was not found next to the wisp binary; run make build, or start wisp serve with --watchdog PATH")
		}
		b, err := os.ReadFile(r.cfg.Watchdog)
		if err != nil {
			return core.Build{}, core.Unavailablef("this server cannot build stdio functions: read the watchdog: %v", err)
		}
		extra[WatchdogPath] = b
	}
	dockerfile := path.Clean(firstNonEmpty(req.Dockerfile, "Dockerfile")) // "./Dockerfile" is "Dockerfile"
	sp, err := spool(r.cfg.TempDir, upload, r.cfg.MaxContext, dockerfile, extra, map[string]string{LabelBuildService: req.Service})
	if err != nil {
		return core.Build{}, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		sp.Close()
		return core.Build{}, core.Unavailablef("the server is shutting down; deploy again once it is back")
	}
	r.wg.Add(1)
	r.mu.Unlock()
	src := core.Source{Digest: sp.digest}
	if g := req.Git; g != nil {
		src.GitCommit, src.GitDescribe = g.Commit, g.Describe
	}
	b, err := r.cfg.Store.CreateBuild(ctx, core.Build{Service: req.Service, Status: core.BuildQueued, Runtime: req.Runtime,
		Promote: req.PromotePercent(), Source: src})
	if err != nil {
		sp.Close()
		r.wg.Done()
		return core.Build{}, err
	}
	log := newBuildLog()
	r.mu.Lock()
	r.live[b.ID] = log
	r.mu.Unlock()
	log.printf("wisp: build %d of %s: %d files, %s, %s", b.ID, b.Service, sp.files, HumanBytes(sp.size), sp.digest)
	go r.run(b, req, sp, log)
	return b, nil
}

func (r *Runner) run(b core.Build, req core.BuildRequest, sp *spooled, log *buildLog) {
	defer r.wg.Done()
	defer sp.Close()
	err := r.build(r.ctx, &b, req, sp, log)
	now := time.Now().UTC()
	b.FinishedAt = &now
	if err != nil {
		b.Status = core.BuildFailed
		b.Error = err.Error()
		if r.ctx.Err() != nil {
			b.Error = "canceled: the server shut down during the build; deploy again"
		}
		log.printf("wisp: build %d failed: %s", b.ID, b.Error)
		r.event(core.PlatformEvent(core.EventBuildFinished, b.Service, 0, "", fmt.Sprintf("build %d failed: %s", b.ID, b.Error),
			"build", strconv.FormatInt(b.ID, 10), "result", "failed", "error", b.Error))
		r.builds.WithLabelValues(b.Service, "failed").Inc()
		r.log.Info("build failed", "build", b.ID, "service", b.Service, "err", err)
	} else {
		b.Status = core.BuildSucceeded
		r.builds.WithLabelValues(b.Service, "succeeded").Inc()
		log.printf("wisp: build %d succeeded in %s", b.ID, b.Duration(now).Round(time.Millisecond))
		r.event(core.PlatformEvent(core.EventBuildFinished, b.Service, b.Version, "",
			fmt.Sprintf("build %d succeeded in %s: version %d", b.ID, b.Duration(now).Round(time.Millisecond), b.Version),
			"build", strconv.FormatInt(b.ID, 10), "result", "succeeded", "duration_ms", core.Millis(b.Duration(now))))
		r.log.Info("build succeeded", "build", b.ID, "service", b.Service, "version", b.Version, "reused", b.Reused,
			"duration", b.Duration(now).Round(time.Millisecond))
	}
	// Record the end even when the daemon is shutting down.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 10*time.Second)
	defer cancel()
	if err := r.cfg.Store.UpdateBuild(ctx, b); err != nil {
		r.log.Error("record the end of a build", "build", b.ID, "err", err)
	}
	if err := r.cfg.Store.SetBuildLog(ctx, b.ID, log.bytes()); err != nil {
		r.log.Error("save a build's output", "build", b.ID, "err", err)
	}
	log.finish()
	r.mu.Lock()
	delete(r.live, b.ID)
	r.mu.Unlock()
}

// event sends e to the configured sink, if any.
func (r *Runner) event(e core.LogEntry) {
	if r.cfg.Events != nil {
		r.cfg.Events.Append(e)
	}
}

// build makes (or finds) the image and deploys it.
func (r *Runner) build(ctx context.Context, b *core.Build, req core.BuildRequest, sp *spooled, log *buildLog) error {
	select {
	case r.slots <- struct{}{}:
	default:
		log.printf("wisp: waiting for another build to finish")
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-r.slots }()
	start := time.Now().UTC()
	b.Status, b.StartedAt = core.BuildRunning, &start
	r.event(core.PlatformEvent(core.EventBuildStarted, b.Service, 0, "", fmt.Sprintf("build %d started", b.ID),
		"build", strconv.FormatInt(b.ID, 10)))
	b.Image = req.Service + ":" + req.ImageTag(b.Digest)
	if err := r.cfg.Store.UpdateBuild(ctx, *b); err != nil {
		return err
	}
	id, reused, err := r.image(ctx, b, req, sp, log)
	if err != nil {
		return err
	}
	b.ImageID, b.Reused = id, reused
	if r.cfg.Registry != "" {
		if err := r.push(ctx, b, log); err != nil {
			return err
		}
	}
	if err := r.cfg.Store.UpdateBuild(ctx, *b); err != nil {
		return err
	}
	return r.deploy(ctx, b, req, log)
}

// push tags the build's image in the registry and pushes it; the build then
// names the pushed tag and pins the pushed digest.
func (r *Runner) push(ctx context.Context, b *core.Build, log *buildLog) error {
	remote := strings.TrimSuffix(r.cfg.Registry, "/") + "/" + b.Image
	if err := r.cfg.Builder.TagImage(ctx, b.ImageID, remote); err != nil {
		return err
	}
	log.printf("wisp: pushing %s", remote)
	pinned, err := r.cfg.Builder.(runtime.Pusher).Push(ctx, remote, r.cfg.RegistryAuth, log.line)
	if err != nil {
		return err
	}
	log.printf("wisp: pushed %s", pinned)
	b.Image, b.ImageID = remote, pinned
	return nil
}

// image returns the image of the build: the one already tagged b.Image when
// its content is the same (an immutable tag with other content is refused),
// else any image with the same digest, else a new build.
func (r *Runner) image(ctx context.Context, b *core.Build, req core.BuildRequest, sp *spooled, log *buildLog) (string, bool, error) {
	info, err := r.cfg.Builder.InspectImage(ctx, b.Image)
	switch {
	case err == nil && info.Labels[LabelSourceDigest] == b.Digest:
		log.printf("wisp: %s was built from the same content; reusing it", b.Image)
		return info.ID, true, nil
	case err == nil:
		return "", false, core.Conflictf("image %s exists and was built from other content; tags are immutable: "+
			"commit (and tag) the change, then deploy again", b.Image)
	case !errors.Is(err, core.ErrNotFound):
		return "", false, err
	}
	if id, ok, err := r.cfg.Builder.FindImage(ctx, map[string]string{LabelSourceDigest: b.Digest}); err != nil {
		return "", false, err
	} else if ok {
		if err := r.cfg.Builder.TagImage(ctx, id, b.Image); err != nil {
			return "", false, err
		}
		log.printf("wisp: an image built from the same content exists; reusing it as %s", b.Image)
		return id, true, nil
	}
	log.printf("wisp: building %s (runtime %s)", b.Image, firstNonEmpty(req.Runtime, "dockerfile"))
	// The labels are in the Dockerfile the spool wrote.
	id, err := r.cfg.Builder.Build(ctx, runtime.BuildRequest{Context: sp.file, Dockerfile: sp.dockerfile, Tags: []string{b.Image}}, log.line)
	return id, false, err
}

// deploy creates the service if asked, applies the policy, and creates the
// version with its traffic in one step.
func (r *Runner) deploy(ctx context.Context, b *core.Build, req core.BuildRequest, log *buildLog) error {
	if req.CreateService {
		_, err := r.cfg.Store.CreateService(ctx, core.Service{Name: req.Service, Policy: core.DefaultPolicy()})
		switch {
		case err == nil:
			log.printf("wisp: created service %s", req.Service)
		case !errors.Is(err, core.ErrAlreadyExists):
			return err
		}
	}
	if p := req.Policy; p != nil && !p.IsEmpty() {
		if _, err := r.cfg.Store.UpdatePolicy(ctx, req.Service, *p); err != nil {
			return err
		}
		log.printf("wisp: applied the scaling policy")
	}
	spec := req.Version
	spec.Image = b.Image
	percent := req.PromotePercent()
	msg := fmt.Sprintf("build %d", b.ID)
	if b.GitDescribe != "" {
		msg += " (" + b.GitDescribe + ")"
	}
	v, err := r.cfg.Store.DeployVersion(ctx, core.Version{Service: req.Service, ImageID: b.ImageID, VersionSpec: spec,
		Source: &core.Source{BuildID: b.ID, Digest: b.Digest, GitCommit: b.GitCommit, GitDescribe: b.GitDescribe}},
		percent, "deploy "+msg)
	if err != nil {
		return err
	}
	b.Version = v.Number
	log.printf("wisp: created version v%d of %s", v.Number, req.Service)
	if e, err := r.cfg.Store.GetTraffic(ctx, req.Service); err == nil && e.PercentOf(v.Number) > 0 {
		split := core.TrafficSummary(e.Traffic)
		r.event(core.PlatformEvent(core.EventTrafficChanged, req.Service, 0, "",
			fmt.Sprintf("traffic changed by build %d: %s (entry %d)", b.ID, split, e.ID),
			"by", "build", "build", strconv.FormatInt(b.ID, 10), "traffic", split, "entry", strconv.FormatInt(e.ID, 10)))
	}
	if r.cfg.Sync != nil {
		sctx, cancel := context.WithTimeout(ctx, r.cfg.SyncTimeout)
		err := r.cfg.Sync(sctx)
		cancel()
		if err != nil {
			log.printf("wisp: v%d is not live in the router yet: %v", v.Number, err)
			r.log.Warn("a built version is not live in the router yet", "build", b.ID, "service", req.Service, "version", v.Number, "err", err)
		}
	}
	switch {
	case v.Number == 1 || percent == 100:
		log.printf("wisp: v%d gets all traffic", v.Number)
	case percent == 0:
		log.printf("wisp: traffic unchanged (not promoted); send it traffic with: wisp traffic set %s %d=100", req.Service, v.Number)
	default:
		log.printf("wisp: v%d gets %d%% of traffic (canary)", v.Number, percent)
	}
	return nil
}

// Get returns build id.
func (r *Runner) Get(ctx context.Context, id int64) (core.Build, error) {
	return r.cfg.Store.GetBuild(ctx, id)
}

// List returns the newest builds of service (or of all, for "").
func (r *Runner) List(ctx context.Context, service string, limit int) ([]core.Build, error) {
	return r.cfg.Store.ListBuilds(ctx, service, limit)
}

// Logs writes the output of build id to w, calling flush after each
// write. With follow it writes until the build finishes or ctx ends.
func (r *Runner) Logs(ctx context.Context, id int64, follow bool, w io.Writer, flush func()) error {
	if _, err := r.cfg.Store.GetBuild(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	l := r.live[id]
	r.mu.Unlock()
	if l == nil {
		out, err := r.cfg.Store.BuildLog(ctx, id)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	var off int64
	for {
		data, next, done, changed := l.read(off)
		if len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				return nil //nolint:nilerr // the client went away
			}
			flush()
		}
		off = next
		if done || !follow {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// Close cancels running builds (they are recorded as failed) and waits
// for them, at most until ctx ends.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("builds did not stop: %w", ctx.Err())
	}
}

// buildLog is a live build's output: followers read it from an offset and
// wait for more. It keeps at least the last maxLogBytes (at most twice that).
type buildLog struct {
	mu      sync.Mutex
	buf     []byte
	dropped int64 // bytes dropped from the head
	done    bool
	changed chan struct{}
}

func newBuildLog() *buildLog { return &buildLog{changed: make(chan struct{})} }

func (l *buildLog) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(append(l.buf, s...), '\n')
	// Trim to the last maxLogBytes only once the buffer is twice that, so
	// a chatty build copies its output a bounded number of times, not once
	// a line.
	if over := len(l.buf) - maxLogBytes; len(l.buf) > 2*maxLogBytes {
		l.buf = append(make([]byte, 0, 2*maxLogBytes), l.buf[over:]...)
		l.dropped += int64(over)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *buildLog) printf(format string, args ...any) { l.line(fmt.Sprintf(format, args...)) }

func (l *buildLog) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	close(l.changed)
	l.changed = make(chan struct{})
}

// read returns what follows off, the offset after it, whether the log is
// complete, and a channel closed at the next change.
func (l *buildLog) read(off int64) (data []byte, next int64, done bool, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	off = max(off, l.dropped)
	data = append([]byte(nil), l.buf[off-l.dropped:]...)
	return data, l.dropped + int64(len(l.buf)), l.done, l.changed
}

// bytes returns the last maxLogBytes of the output.
func (l *buildLog) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.buf[max(0, len(l.buf)-maxLogBytes):]...)
}

// HumanBytes writes a size for people: 512 B, 3.2 KiB, 1.5 MiB.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
