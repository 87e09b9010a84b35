package activator

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// Config configures the activator.
type Config struct {
	// StartTimeout bounds a cold start: runtime start plus readiness probe.
	StartTimeout time.Duration
	// MaxWaiters bounds the requests that may wait per version; more get 503.
	MaxWaiters int
	// WaitTimeout bounds how long a request waits for an instance.
	WaitTimeout time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL when stopping.
	StopGrace time.Duration
	// ReapInterval is how often idle instances are looked for.
	ReapInterval time.Duration
	// ResyncInterval is how often the runtime is re-listed, as a safety net
	// for missed events.
	ResyncInterval time.Duration
	// KeepInstances leaves instances running at shutdown, for adoption by the
	// next start.
	KeepInstances bool
	// ParallelStarts bounds the scale-up starts in flight, across all
	// versions; the rest wait their turn. An engine starts containers
	// largely one after another (Docker here: ten at once took 5.8s, ten
	// in a row 6.7s), so twenty starts at once make every instance ready
	// late, while a few at a time make the first ones ready early. The
	// start of a version's first instance, which requests wait for, is
	// never held back by it.
	ParallelStarts int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Registerer receives the activator's metrics; nil means none are exported.
	Registerer prometheus.Registerer
}

// Defaults of Config.
const (
	DefaultStartTimeout   = 30 * time.Second
	DefaultMaxWaiters     = 1000
	DefaultStopGrace      = 10 * time.Second
	DefaultReapInterval   = time.Second
	DefaultResyncInterval = 30 * time.Second
	DefaultParallelStarts = 3
)

// Validate fills defaults and checks bounds.
func (c *Config) Validate() error {
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.MaxWaiters == 0 {
		c.MaxWaiters = DefaultMaxWaiters
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = c.StartTimeout + 5*time.Second
	}
	if c.StopGrace == 0 {
		c.StopGrace = DefaultStopGrace
	}
	if c.ReapInterval == 0 {
		c.ReapInterval = DefaultReapInterval
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.ParallelStarts == 0 {
		c.ParallelStarts = DefaultParallelStarts
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.StartTimeout < 0 || c.WaitTimeout < 0 || c.StopGrace < 0:
		return errors.New("activator: timeouts must not be negative")
	case c.MaxWaiters < 0:
		return errors.New("activator: max waiters must not be negative")
	case c.ParallelStarts < 0:
		return errors.New("activator: parallel starts must not be negative")
	case c.ReapInterval < 10*time.Millisecond || c.ResyncInterval < 10*time.Millisecond:
		return errors.New("activator: reap and resync intervals must be at least 10ms")
	}
	return nil
}

// Catalog answers which versions exist; store.Store satisfies it.
type Catalog interface {
	GetVersionByID(ctx context.Context, id int64) (core.Version, error)
	GetService(ctx context.Context, name string) (core.Service, error)
}

// Activator owns every instance.
type Activator struct {
	cfg     Config
	rt      runtime.Runtime
	pauser  runtime.Pauser     // nil when the runtime cannot pause
	pc      runtime.Precreator // nil when it cannot create ahead
	catalog Catalog
	log     *slog.Logger
	prober  prober
	metrics *metrics
	// startSlots holds a token per scale-up start in flight
	// (Config.ParallelStarts).
	startSlots chan struct{}

	mu      sync.Mutex
	pools   map[int64]*pool      // by version ID
	byID    map[string]*instance // every instance in a pool
	pending map[string]bool      // instances being started or stopped
	spares  map[string]int64     // created, not started: ID → version ID
	closing atomic.Bool          // Shutdown has begun
	// live holds the versions that exist, once Sync has been called; a
	// request routed by an older snapshot must not start a deleted one.
	live    map[int64]bool
	baseCtx context.Context // lives as long as Run
	wg      sync.WaitGroup  // starts and stops in flight
}

// New returns an activator over rt. Call Run before Acquire.
func New(cfg Config, rt runtime.Runtime, catalog Catalog, logger *slog.Logger) (*Activator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Activator{
		cfg:     cfg,
		rt:      rt,
		catalog: catalog,
		log:     logger.With("component", "activator"),
		pools:   map[int64]*pool{},
		byID:    map[string]*instance{},
		pending: map[string]bool{},
		spares:  map[string]int64{},
		baseCtx: context.Background(),

		startSlots: make(chan struct{}, cfg.ParallelStarts),
	}
	a.pauser, _ = rt.(runtime.Pauser)
	a.pc, _ = rt.(runtime.Precreator)
	a.prober = defaultProber{}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var err error
	if a.metrics, err = newMetrics(reg, a); err != nil {
		return nil, err
	}
	return a, nil
}

// pool is the instances of one version.
type pool struct {
	mu        sync.Mutex
	version   core.Version
	policy    core.ScalingPolicy
	instances []*instance
	start     *startOp // the coalesced start in progress, if any
	scaling   int      // starts asked for by Scale, in progress or queued
	// queued of those wait for a start slot (Config.ParallelStarts), and
	// dropped of the queued are no longer wanted: each gives its slot back
	// at once when it gets one.
	queued, dropped int
	waiters         int           // requests waiting for an instance
	requests        atomic.Uint64 // requests handed an instance
	freed           chan struct{} // closed and replaced when capacity frees up
	gone            bool          // the version no longer exists
	// Scale-up starts that fail back off: no new one before retryAt.
	retryAt  time.Time
	failures int
	// spare is a created, never started instance for the next cold start.
	spare     string
	spareBusy bool // being created
	noSpare   bool // the runtime refused to create ahead
	// idle: the version has no share of traffic and no tag (per Sync), so
	// it keeps no spare.
	idle bool
}

type instance struct {
	id, addr  string
	service   string
	versionID int64
	version   int
	startedAt time.Time

	inflight    atomic.Int64
	lastRequest atomic.Int64 // unix nanoseconds
	// suspect: the instance failed a request; it gets none until a probe
	// succeeds.
	suspect atomic.Bool

	// Guarded by pool.mu.
	state string
	wake  *op // the coalesced unpause in progress, if any

	// opMu serialises runtime calls that change the instance (pause, unpause).
	opMu sync.Mutex
}

type op struct {
	done chan struct{}
	err  error
}

type startOp struct {
	op
	cancel  context.CancelFunc
	waiters int
	started time.Time
}

func (a *Activator) now() time.Time { return a.cfg.Now() }

// ctx is the context that background work (starts, stops, pauses) runs under:
// Run's, once Run has begun.
func (a *Activator) ctx() context.Context {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.baseCtx
}

func newInstanceID(service string, version int) string {
	b := make([]byte, 4)
	_, _ = crand.Read(b)
	return fmt.Sprintf("%s-v%d-%s", service, version, hex.EncodeToString(b))
}

// poolFor returns the pool of v, creating it, and records the latest policy.
// It returns nil for a version that Sync said is gone.
func (a *Activator) poolFor(v *core.Version, policy core.ScalingPolicy) *pool {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pools[v.ID]
	if p == nil {
		if a.live != nil && !a.live[v.ID] {
			return nil
		}
		p = &pool{version: *v, policy: policy, freed: make(chan struct{})}
		a.pools[v.ID] = p
	}
	return p
}

// Lease is one request's hold on an instance; Release it when the request ends.
type Lease struct {
	InstanceID string
	Addr       string
	// ColdStart is how long the request waited for an instance to start or
	// wake; 0 when one was ready.
	ColdStart time.Duration

	a    *Activator
	p    *pool
	inst *instance
	once sync.Once
}

// Fail reports that the instance could not be reached (its address refused
// the connection): it is dropped at once and removed, so the caller can
// acquire again and get a new one.
func (l *Lease) Fail() {
	l.p.mu.Lock()
	live := false
	for _, in := range l.p.instances {
		live = live || in == l.inst
	}
	if live {
		l.p.remove(l.inst)
	}
	l.p.mu.Unlock()
	if live {
		l.a.forget(l.inst.id)
		l.a.log.Warn("instance unreachable; replacing it", "instance", l.inst.id)
		l.a.stopAsync(l.inst.id, "unreachable")
	}
}

// Suspect reports that the instance failed a request (it broke the
// connection or answered garbage): it gets no request until a readiness
// probe succeeds again.
func (l *Lease) Suspect() {
	if l.inst.suspect.Swap(true) {
		return // already being probed
	}
	l.a.log.Warn("instance failed a request; probing it before it gets more", "instance", l.inst.id)
	l.a.wg.Add(1)
	go func() {
		defer l.a.wg.Done()
		l.a.recover(l.p, l.inst)
	}()
}

// Release returns the instance's capacity.
func (l *Lease) Release() {
	l.once.Do(func() {
		l.inst.lastRequest.Store(l.a.now().UnixNano())
		l.inst.inflight.Add(-1)
		l.p.mu.Lock()
		if l.p.waiters > 0 { // every waiter counts itself before it waits
			close(l.p.freed)
			l.p.freed = make(chan struct{})
		}
		l.p.mu.Unlock()
	})
}

// Acquire returns a lease on a ready instance of v, starting or waking one
// when needed, and waiting at most WaitTimeout (and no longer than ctx).
// Errors: core.ErrUnavailable (start failed, too many waiting, nothing ready
// in time) or ctx's error.
func (a *Activator) Acquire(ctx context.Context, v *core.Version, policy core.ScalingPolicy) (*Lease, error) {
	p := a.poolFor(v, policy)
	if p == nil {
		return nil, core.NotFoundf("version %d of %s was deleted", v.Number, v.Service)
	}
	began := a.now()
	var deadline <-chan time.Time
	waited := false
	for {
		p.mu.Lock()
		p.policy = policy
		if inst := p.pickReady(); inst != nil {
			inst.inflight.Add(1)
			inst.lastRequest.Store(a.now().UnixNano())
			p.requests.Add(1)
			p.mu.Unlock()
			l := &Lease{InstanceID: inst.id, Addr: inst.addr, a: a, p: p, inst: inst}
			if waited {
				l.ColdStart = a.now().Sub(began)
				a.metrics.queueWait.WithLabelValues(v.Service, strconv.Itoa(v.Number)).Observe(l.ColdStart.Seconds())
			}
			return l, nil
		}
		if deadline == nil {
			t := time.NewTimer(a.cfg.WaitTimeout)
			defer t.Stop()
			deadline = t.C
		}
		waited = true
		if p.waiters >= a.cfg.MaxWaiters {
			p.mu.Unlock()
			return nil, core.Unavailablef("%d requests are already waiting for version %d of %s; retry shortly", a.cfg.MaxWaiters, v.Number, v.Service)
		}
		// A paused instance is thawed; otherwise, with no instance at all,
		// one is started. Both are shared by every waiting request.
		if inst := p.pickPaused(); inst != nil {
			w := a.beginWake(p, inst)
			p.mu.Unlock()
			select {
			case <-w.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-deadline:
				return nil, a.timeoutErr(v)
			}
			continue
		}
		if len(p.instances) == 0 && p.scaling-p.queued == 0 {
			// Nothing runs or is starting: start one now, whatever the
			// start slots (requests wait for it). It stands in for a
			// queued scale-up start, if there is one.
			s := p.start
			if s == nil {
				s = a.beginStart(p)
				if p.queued > p.dropped {
					p.dropped++
				}
			}
			s.waiters++
			p.waiters++
			p.mu.Unlock()
			var err error
			select {
			case <-s.done:
				err = s.err
			case <-ctx.Done():
				err = ctx.Err()
			case <-deadline:
				err = a.timeoutErr(v)
			}
			p.mu.Lock()
			s.waiters--
			p.waiters--
			if s.waiters == 0 && p.start == s {
				s.cancel() // nobody waits for this start any more
			}
			p.mu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		}
		// Every instance is busy (max_concurrency) or changing state: wait
		// for capacity to free up.
		freed := p.freed
		p.waiters++
		p.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-ctx.Done():
			err = ctx.Err()
		case <-deadline:
			err = a.timeoutErr(v)
		}
		p.mu.Lock()
		p.waiters--
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

func (a *Activator) timeoutErr(v *core.Version) error {
	return core.Unavailablef("no instance of version %d of %s was ready within %s; retry shortly", v.Number, v.Service, a.cfg.WaitTimeout)
}

// eligible reports whether inst can take one more request now.
func (p *pool) eligible(in *instance) bool {
	limit := int64(p.version.MaxConcurrency)
	return in.state == core.InstanceReady && !in.suspect.Load() && (limit == 0 || in.inflight.Load() < limit)
}

// pickReady picks an instance that can take one more request, or nil: of
// two chosen at random, the one with fewer requests in flight ("power of two
// choices": nearly as balanced as the least loaded of all, without every
// request looking at every instance). Caller holds p.mu.
func (p *pool) pickReady() *instance {
	n := len(p.instances)
	switch n {
	case 0:
		return nil
	case 1:
		if p.eligible(p.instances[0]) {
			return p.instances[0]
		}
		return nil
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := p.instances[i], p.instances[j]
	okA, okB := p.eligible(a), p.eligible(b)
	switch {
	case okA && okB:
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case okA:
		return a
	case okB:
		return b
	}
	// Both were busy: fall back to the least loaded of all.
	var best *instance
	for _, in := range p.instances {
		if p.eligible(in) && (best == nil || in.inflight.Load() < best.inflight.Load()) {
			best = in
		}
	}
	return best
}

// pickPaused returns a paused or waking instance, or nil. Caller holds p.mu.
func (p *pool) pickPaused() *instance {
	for _, in := range p.instances {
		if in.state == core.InstancePaused || in.state == core.InstanceWaking {
			return in
		}
	}
	return nil
}

// beginWake starts (or joins) thawing inst. Caller holds p.mu.
func (a *Activator) beginWake(p *pool, inst *instance) *op {
	if inst.wake != nil {
		return inst.wake
	}
	w := &op{done: make(chan struct{})}
	inst.wake = w
	inst.state = core.InstanceWaking
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := a.unpause(inst)
		p.mu.Lock()
		inst.wake = nil
		if err == nil {
			inst.state = core.InstanceReady
			inst.lastRequest.Store(a.now().UnixNano())
		} else {
			a.log.Warn("wake failed; removing the instance", "instance", inst.id, "err", err)
			p.remove(inst)
			a.forget(inst.id)
			a.stopAsync(inst.id, "wake failed")
		}
		w.err = err
		close(w.done)
		p.mu.Unlock()
	}()
	return w
}

func (a *Activator) unpause(inst *instance) error {
	inst.opMu.Lock()
	defer inst.opMu.Unlock()
	ctx, cancel := context.WithTimeout(a.ctx(), 10*time.Second)
	defer cancel()
	err := a.pauser.Unpause(ctx, inst.id)
	if err == nil {
		return nil
	}
	// The pause may have failed, leaving it running: that is a success.
	if in, ierr := a.rt.Inspect(ctx, inst.id); ierr == nil && in.State == runtime.StateRunning {
		return nil
	}
	return err
}

// remove drops inst from the pool. Caller holds p.mu.
func (p *pool) remove(inst *instance) {
	for i, in := range p.instances {
		if in == inst {
			p.instances = append(p.instances[:i], p.instances[i+1:]...)
			break
		}
	}
	close(p.freed) // waiters re-evaluate: they may need a new start
	p.freed = make(chan struct{})
}

// register makes a started instance known and no longer pending, at once.
func (a *Activator) register(inst *instance) {
	a.mu.Lock()
	a.byID[inst.id] = inst
	delete(a.pending, inst.id)
	a.mu.Unlock()
}

func (a *Activator) forget(id string) {
	a.mu.Lock()
	delete(a.byID, id)
	a.mu.Unlock()
}

// beginStart launches a coalesced start for p. Caller holds p.mu.
func (a *Activator) beginStart(p *pool) *startOp {
	ctx, cancel := context.WithTimeout(a.ctx(), a.cfg.StartTimeout)
	s := &startOp{op: op{done: make(chan struct{})}, cancel: cancel, started: a.now()}
	p.start = s
	v := p.version
	spareID := a.takeSpare(p)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		inst, err := a.startInstance(ctx, &v, spareID)
		p.mu.Lock()
		p.start = nil
		close(p.freed) // waiters for capacity re-evaluate too
		p.freed = make(chan struct{})
		if err == nil && p.gone {
			err = core.Unavailablef("version %d of %s was deleted", v.Number, v.Service)
			a.stopAsync(inst.id, "version deleted")
			a.setPending(inst.id, false)
		} else if err == nil {
			p.instances = append(p.instances, inst)
			a.register(inst)
			a.ensureSpare(p) // for the next cold start
		}
		s.err = err
		close(s.done)
		p.mu.Unlock()
	}()
	return s
}

// startInstance runs one instance of v and waits until it is ready. On
// failure it removes the instance and returns core.ErrUnavailable with the
// reason (and the end of its logs). On success the instance stays pending
// (invisible to Reconcile) until the caller has registered or stopped it,
// so a re-list in between cannot adopt it twice.
//
// With spareID, the instance is that pre-created spare (already pending),
// which only needs starting; if that fails, a new instance is started.
func (a *Activator) startInstance(ctx context.Context, v *core.Version, spareID string) (inst *instance, err error) {
	id := spareID
	if id == "" {
		id = newInstanceID(v.Service, v.Number)
	}
	a.setPending(id, true)
	defer func() {
		if err != nil {
			a.setPending(id, false)
		}
	}()
	t0 := a.now()
	var in runtime.Instance
	if spareID != "" {
		in, err = a.pc.StartCreated(ctx, spareID)
		if err != nil {
			a.log.Warn("the spare instance did not start; starting a new one", "instance", spareID, "err", err)
			a.stopAsync(spareID, "spare failed to start") // pending until stopped
			id = newInstanceID(v.Service, v.Number)
			a.setPending(id, true)
		}
	}
	if spareID == "" || err != nil {
		in, err = a.rt.Start(ctx, spec(v, id))
	}
	if err != nil {
		if ctx.Err() != nil {
			err = a.startCtxErr(ctx, v)
		}
		a.log.Warn("start failed", "service", v.Service, "version", v.Number, "err", err)
		a.metrics.started(v, false, 0)
		return nil, core.Unavailablef("version %d of %s failed to start: %v", v.Number, v.Service, err)
	}
	started := a.now()
	if err := a.prober.probe(ctx, a.rt, in, v); err != nil {
		if ctx.Err() != nil {
			err = a.startCtxErr(ctx, v)
		}
		reason := err.Error()
		if tail := a.logTail(in.ID); tail != "" {
			reason += "; its last output: " + tail
		}
		a.stopAsync(in.ID, "start failed")
		a.log.Warn("start failed", "service", v.Service, "version", v.Number, "instance", in.ID, "err", reason)
		a.metrics.started(v, false, 0)
		return nil, core.Unavailablef("version %d of %s failed to start: %s", v.Number, v.Service, reason)
	}
	now := a.now()
	a.metrics.started(v, true, now.Sub(t0).Seconds())
	a.log.Info("instance ready", "service", v.Service, "version", v.Number, "instance", in.ID, "addr", in.Addr,
		"start", started.Sub(t0).Round(time.Millisecond), "ready", now.Sub(t0).Round(time.Millisecond))
	inst = &instance{id: in.ID, addr: in.Addr, service: v.Service, versionID: v.ID, version: v.Number,
		startedAt: now, state: core.InstanceReady}
	inst.lastRequest.Store(now.UnixNano())
	return inst, nil
}

func (a *Activator) startCtxErr(ctx context.Context, v *core.Version) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("not ready within the start timeout of %s", a.cfg.StartTimeout)
	case a.ctx().Err() != nil:
		return errors.New("start cancelled: wisp is shutting down")
	}
	return errors.New("start cancelled: no request waits for it any more")
}

func (a *Activator) logTail(id string) string {
	ctx, cancel := context.WithTimeout(a.ctx(), 2*time.Second)
	defer cancel()
	rc, err := a.rt.Logs(ctx, id, 5)
	if err != nil {
		return ""
	}
	defer rc.Close()
	buf := make([]byte, 2048)
	n, _ := io.ReadFull(rc, buf)
	return trimOutput(string(buf[:n]))
}

func (a *Activator) setPending(id string, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if on {
		a.pending[id] = true
	} else {
		delete(a.pending, id)
	}
}

// stopAsync stops and removes an instance in the background.
func (a *Activator) stopAsync(id, why string) {
	a.setPending(id, true)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer a.setPending(id, false)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx()), a.cfg.StopGrace+30*time.Second)
		defer cancel()
		if err := a.rt.Stop(ctx, id, a.cfg.StopGrace); err != nil {
			a.log.Error("stop failed", "instance", id, "why", why, "err", err)
			return
		}
		a.log.Info("instance removed", "instance", id, "why", why)
	}()
}

// Instances describes the instances of service (all services when "").
func (a *Activator) Instances(service string) []core.InstanceInfo {
	a.mu.Lock()
	pools := make([]*pool, 0, len(a.pools))
	for _, p := range a.pools {
		pools = append(pools, p)
	}
	a.mu.Unlock()
	out := []core.InstanceInfo{}
	for _, p := range pools {
		p.mu.Lock()
		if service == "" || p.version.Service == service {
			for range p.starting() {
				out = append(out, core.InstanceInfo{Service: p.version.Service, Version: p.version.Number, VersionID: p.version.ID,
					State: core.InstanceStarting})
			}
			for _, in := range p.instances {
				out = append(out, core.InstanceInfo{ID: in.id, Service: in.service, Version: in.version, VersionID: in.versionID,
					State: in.state, Address: in.addr, StartedAt: in.startedAt,
					LastRequestAt: time.Unix(0, in.lastRequest.Load()), InFlight: in.inflight.Load()})
			}
		}
		p.mu.Unlock()
	}
	sortInstances(out)
	return out
}

// recover probes a suspect instance until it answers again (then it gets
// requests again) or leaves the pool.
func (a *Activator) recover(p *pool, inst *instance) {
	ctx := a.ctx()
	p.mu.Lock()
	v := p.version
	p.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		p.mu.Lock()
		live := false
		for _, in := range p.instances {
			live = live || in == inst
		}
		p.mu.Unlock()
		if !live {
			return
		}
		if probeOnce(ctx, inst.addr, v.ReadinessPath, false) == nil {
			inst.suspect.Store(false)
			p.mu.Lock()
			close(p.freed)
			p.freed = make(chan struct{})
			p.mu.Unlock()
			a.log.Info("instance recovered", "instance", inst.id)
			return
		}
	}
}

// Load reports the live load of every version with a pool.
func (a *Activator) Load() []core.VersionLoad {
	a.mu.Lock()
	pools := make([]*pool, 0, len(a.pools))
	for _, p := range a.pools {
		pools = append(pools, p)
	}
	a.mu.Unlock()
	out := make([]core.VersionLoad, 0, len(pools))
	for _, p := range pools {
		p.mu.Lock()
		l := core.VersionLoad{VersionID: p.version.ID, Service: p.version.Service, Version: p.version.Number, Policy: p.policy,
			Concurrency: int64(p.waiters), Requests: p.requests.Load(), Instances: len(p.instances) + p.starting()}
		for _, in := range p.instances {
			l.Concurrency += in.inflight.Load()
		}
		p.mu.Unlock()
		out = append(out, l)
	}
	return out
}

// Scale brings the version to n instances: it starts the missing ones at
// once (each becomes available as soon as it is ready), or stops idle ones.
// Instances with requests in flight are never stopped; a later call will
// find them idle.
func (a *Activator) Scale(versionID int64, n int) {
	a.mu.Lock()
	p := a.pools[versionID]
	a.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	current := len(p.instances) + p.starting()
	if current < n && a.now().Before(p.retryAt) {
		return // starts failed lately; wait before trying again
	}
	for ; current < n; current++ {
		a.scaleUp(p)
	}
	if current <= n {
		return
	}
	// Drop the starts that have not begun, then stop idle instances.
	drop := min(current-n, p.queued-p.dropped)
	p.dropped += drop
	current -= drop
	// Stop the least recently used idle instances first.
	idle := make([]*instance, 0, len(p.instances))
	for _, in := range p.instances {
		if in.inflight.Load() == 0 && in.state != core.InstanceWaking {
			idle = append(idle, in)
		}
	}
	sortByLastRequest(idle)
	for _, in := range idle {
		if current <= n {
			break
		}
		p.remove(in)
		a.forget(in.id)
		a.stopAsync(in.id, "scaled down")
		current--
	}
}

// starting counts the instances of p being started or queued to start, and
// not dropped. Caller holds p.mu.
func (p *pool) starting() int {
	n := p.scaling - p.dropped
	if p.start != nil {
		n++
	}
	return n
}

// scaleUp starts one more instance of p in the background, when a start
// slot is free. Caller holds p.mu.
func (a *Activator) scaleUp(p *pool) {
	p.scaling++
	p.queued++
	v := p.version
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		// Wait for a start slot; the start timeout runs from when it
		// begins. Dropped (Scale wants fewer), deleted or cancelled
		// (shutdown) while queued: nothing is started.
		var cancelled bool
		select {
		case a.startSlots <- struct{}{}:
		case <-a.ctx().Done():
			cancelled = true
		}
		p.mu.Lock()
		p.queued--
		if cancelled || p.gone || p.dropped > 0 {
			p.scaling--
			p.dropped = max(p.dropped-1, 0)
			p.mu.Unlock()
			if !cancelled {
				<-a.startSlots
			}
			return
		}
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(a.ctx(), a.cfg.StartTimeout)
		inst, err := a.startInstance(ctx, &v, "")
		cancel()
		<-a.startSlots
		p.mu.Lock()
		defer p.mu.Unlock()
		p.scaling--
		switch {
		case err != nil && a.ctx().Err() != nil:
			// Shut down mid-start: not a failure of the version.
		case err != nil:
			// Back off (1s, 2s, 4s, … 30s) so a crash loop does not start
			// a container every tick. Waiters re-evaluate; with no
			// instance at all they start one.
			p.failures++
			p.retryAt = a.now().Add(min(30*time.Second, time.Second<<min(p.failures-1, 5)))
		case p.gone:
			a.stopAsync(inst.id, "version deleted")
			a.setPending(inst.id, false)
		default:
			p.failures, p.retryAt = 0, time.Time{}
			p.instances = append(p.instances, inst)
			a.register(inst)
		}
		close(p.freed)
		p.freed = make(chan struct{})
	}()
}
