package activator

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	// StopGrace is the time between SIGTERM and SIGKILL when stopping, and
	// how long a draining instance may finish its requests.
	StopGrace time.Duration
	// ReapInterval is how often idle instances are looked for.
	ReapInterval time.Duration
	// ResyncInterval is how often the runtime is re-listed, as a safety net
	// for missed events.
	ResyncInterval time.Duration
	// SuspectTimeout is how long an instance that failed a request (timed
	// out, broke the connection) may take to answer a health probe again
	// before it is replaced.
	SuspectTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed start before
	// the version is started again: MinBackoff after the first failure,
	// doubling up to MaxBackoff, reset by a start that succeeds.
	MinBackoff, MaxBackoff time.Duration
	// KeepInstances leaves instances running at shutdown, for adoption by the
	// next start.
	KeepInstances bool
	// ReportTTL is how long, on a leader, another replica's load report
	// counts (replicas report every second); an older one is a replica
	// gone.
	ReportTTL time.Duration
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
	// Events receives the platform events (events.go); nil discards them.
	Events EventSink
	// Queueing, when set, is called (holding a version's lock: it must not
	// block) each time a request starts to wait for an instance of a
	// version: the daemon pokes the autoscaler with it, so that a burst
	// is met before the next tick (autoscaler.Early).
	Queueing func()
}

// Defaults of Config.
const (
	DefaultStartTimeout   = 30 * time.Second
	DefaultMaxWaiters     = 1000
	DefaultStopGrace      = 10 * time.Second
	DefaultReapInterval   = time.Second
	DefaultResyncInterval = 30 * time.Second
	DefaultSuspectTimeout = 5 * time.Second
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = 30 * time.Second
	DefaultParallelStarts = 3
	DefaultReportTTL      = 3 * time.Second
)

// Validate fills defaults and checks bounds.
func (c *Config) Validate() error {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.StartTimeout, DefaultStartTimeout}, {&c.StopGrace, DefaultStopGrace}, {&c.ReapInterval, DefaultReapInterval},
		{&c.ResyncInterval, DefaultResyncInterval}, {&c.SuspectTimeout, DefaultSuspectTimeout},
		{&c.MinBackoff, DefaultMinBackoff}, {&c.MaxBackoff, DefaultMaxBackoff}, {&c.ReportTTL, DefaultReportTTL},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxWaiters == 0 {
		c.MaxWaiters = DefaultMaxWaiters
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = c.StartTimeout + 5*time.Second
	}
	if c.ParallelStarts == 0 {
		c.ParallelStarts = DefaultParallelStarts
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.StartTimeout < 0 || c.WaitTimeout < 0 || c.StopGrace < 0 || c.SuspectTimeout < 0 || c.ReportTTL < 0:
		return errors.New("activator: timeouts must not be negative")
	case c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff:
		return errors.New("activator: backoff needs 0 ≤ min ≤ max")
	case c.MaxWaiters < 0:
		return errors.New("activator: max waiters must not be negative")
	case c.ParallelStarts < 0:
		return errors.New("activator: parallel starts must not be negative")
	case c.ReapInterval < 10*time.Millisecond || c.ResyncInterval < 10*time.Millisecond:
		return errors.New("activator: reap and resync intervals must be at least 10ms")
	}
	return nil
}

// Activator owns every instance. Its state is one registry of instances,
// each with one State (state.go), grouped by version:
//
//   - mu guards the maps of versions (byService, and writes of versions);
//   - each versionState's mu guards its instances' states, its waiters
//     and its backoff;
//   - idsMu guards ids, the index of every instance by ID.
//
// Lock order: mu, then a version's mu, then idsMu; never the reverse. No
// lock is held across a runtime call.
type Activator struct {
	cfg     Config
	rt      runtime.Runtime
	pauser  runtime.Pauser          // nil when the runtime cannot pause
	pc      runtime.Precreator      // nil when it cannot create ahead
	rw      runtime.ReadinessWaiter // nil when Wisp probes readiness itself
	vr      runtime.VersionRemover  // nil when the runtime keeps nothing per version
	weigher runtime.Weigher         // nil when it cannot lower an instance's CPU weight
	log     *slog.Logger
	prober  prober
	// health probes a suspect instance: an HTTP request, see health.go.
	health func(ctx context.Context, addr, path string, timeout time.Duration) error
	pick   picker
	// slots holds a token per scale-up start in flight (ParallelStarts).
	slots   chan struct{}
	metrics *metrics
	events  EventSink

	// Several replicas (replicas.go). shared: the runtime's instances are
	// every replica's; leading: this activator manages them (always, when
	// they are not shared); remote: on a leader, the other replicas' load;
	// demand: on a follower, a request waits for a version with nothing
	// ready, and the leader must hear of it at once.
	shared  bool
	leading atomic.Bool
	remote  *remotes
	demand  chan struct{}

	// life is the context of background work (starts, probes, pauses);
	// Shutdown ends it. Stops run past it, bounded by their own timeout.
	life    context.Context
	endLife context.CancelFunc
	closing atomic.Bool
	wg      sync.WaitGroup // every background goroutine

	versions sync.Map // version ID → *versionState; read without a lock by Acquire

	mu        sync.Mutex
	byService map[string]map[int64]*versionState
	// orphans holds containers of no known version while they are removed.
	orphans *versionState

	idsMu sync.Mutex
	ids   map[string]*instance

	// singleMu guards singles, the token of each singleton service
	// (singleton.go); it comes after every version's lock.
	singleMu sync.Mutex
	singles  map[string]*singleToken
}

// versionState is one version and its instances.
type versionState struct {
	id int64

	mu       sync.Mutex
	ver      core.Version
	policy   core.ScalingPolicy
	routable bool // a share of traffic or a tag: it keeps a spare
	// background: the version only receives mirrored copies, so its
	// instances run with a low CPU weight (weight.go).
	background bool
	// unroutedAt is when the version last lost its traffic (routable went
	// false), for policy.keep_previous; zero while it has traffic or never
	// had any.
	unroutedAt time.Time
	gone       bool // deleted: its instances are being removed
	// instances is every instance of the version in the registry, in any
	// state but gone.
	instances []*instance
	waiters   int           // requests waiting in Acquire
	changed   chan struct{} // closed and replaced on every change; nil until a waiter needs it
	backoff   backoff
	noSpare   bool // the runtime refused to create one ahead
	// standbyNoted: the policy asks for standbys this runtime cannot keep,
	// and that was logged.
	standbyNoted bool
	// replaceDue counts the instances lost lately (until replaceBy) that
	// the next starts replace (their reason is replace).
	replaceDue int
	replaceBy  time.Time

	requests atomic.Uint64 // requests handed an instance
	// remoteRequests counts, on a leader, the requests other replicas
	// handed the version's instances, from their reports.
	remoteRequests atomic.Uint64
}

// broadcast wakes every request waiting on vs. Caller holds vs.mu.
func (vs *versionState) broadcast() {
	if vs.changed != nil {
		close(vs.changed)
		vs.changed = nil
	}
}

// waitChan returns the channel the next broadcast closes. Caller holds vs.mu.
func (vs *versionState) waitChan() <-chan struct{} {
	if vs.changed == nil {
		vs.changed = make(chan struct{})
	}
	return vs.changed
}

// count returns how many instances of vs are in a state for which ok holds.
// Caller holds vs.mu.
func (vs *versionState) count(ok func(State) bool) int {
	n := 0
	for _, in := range vs.instances {
		if ok(in.state) {
			n++
		}
	}
	return n
}

// first returns an instance of vs in state s, or nil. Caller holds vs.mu.
func (vs *versionState) first(s State) *instance {
	for _, in := range vs.instances {
		if in.state == s {
			return in
		}
	}
	return nil
}

// instance is one instance in the registry.
type instance struct {
	id string
	vs *versionState

	inflight    atomic.Int64
	lastRequest atomic.Int64 // unix nanoseconds

	// Guarded by vs.mu.
	state     State
	addr      string
	proxied   bool // a userland proxy answers before the process does
	startedAt time.Time
	// settled is when the instance last entered a state in which its
	// container must exist (ready, paused, …): a re-list begun after it
	// that lacks the container means the container is gone.
	settled time.Time
	why     string // why it is suspect, draining or stopping
	// abort asks the operation that owns the current state (a start, a
	// create, a pause, a wake) to remove the instance when it ends.
	abort string
	// cancel cancels the start in progress; onDemand: that start was made
	// for waiting requests, so it is cancelled when none waits any more.
	cancel   context.CancelFunc
	onDemand bool
	adopted  bool // found running at a re-list: it was started by an earlier run
	// ahead: a spare, created ahead of need and never started; it is not
	// listed as an instance, even while it is removed.
	ahead bool
	// unhealthy: suspect, and a health probe has failed since.
	unhealthy bool
	// wakeAfterPause: a request wants it while it is being paused.
	wakeAfterPause bool
	// standby: started to be a standby, so it is paused as soon as it is
	// ready unless a request wants it.
	standby      bool
	oom          bool          // the runtime reported an out-of-memory kill
	dropped      chan struct{} // queued: closed when the start is dropped
	liveFailures int           // consecutive liveness probe failures
	nextLive     time.Time     // when the next liveness probe is due
	// withheld: on a follower, the leader said it is draining, stopping
	// or failing there, so it gets no new request here either.
	withheld bool
	// drainedAt is when it began to drain, for the replicas' part of the
	// drain (see drainedOut).
	drainedAt time.Time
	// For platform events (events.go): reason is why it starts;
	// announced: instance.starting or instance.adopted was emitted, so
	// its removal is too; idleFor: how long it was idle when the reaper
	// removed it; exited: the runtime reported its process exited, with
	// exitCode.
	reason    string
	announced bool
	idleFor   time.Duration
	exited    bool
	exitCode  int
}

// New returns an activator over rt. Background work (starts, probes) runs
// under ctx until Shutdown; Acquire may be called at once, before Run.
func New(ctx context.Context, cfg Config, rt runtime.Runtime, logger *slog.Logger) (*Activator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Activator{
		cfg:       cfg,
		rt:        rt,
		log:       logger.With("component", "activator"),
		prober:    defaultProber{},
		health:    probeHTTP,
		pick:      powerOfTwo,
		slots:     make(chan struct{}, cfg.ParallelStarts),
		byService: map[string]map[int64]*versionState{},
		ids:       map[string]*instance{},
		singles:   map[string]*singleToken{},
		orphans:   &versionState{gone: true},
		shared:    runtime.IsShared(rt),
		remote:    newRemotes(cfg.ReportTTL),
		demand:    make(chan struct{}, 1),
		events:    cfg.Events,
	}
	if a.events == nil {
		a.events = discard{}
	}
	// Over a shared runtime, an activator follows until it is told to lead.
	a.leading.Store(!a.shared)
	a.life, a.endLife = context.WithCancel(ctx)
	a.pauser, _ = rt.(runtime.Pauser)
	a.pc, _ = rt.(runtime.Precreator)
	a.rw, _ = rt.(runtime.ReadinessWaiter)
	a.vr, _ = rt.(runtime.VersionRemover)
	a.weigher, _ = rt.(runtime.Weigher)
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

func (a *Activator) now() time.Time { return a.cfg.Now() }

// lookup returns the state of version id, or nil.
func (a *Activator) lookup(id int64) *versionState {
	if v, ok := a.versions.Load(id); ok {
		return v.(*versionState)
	}
	return nil
}

// allVersions returns every known version.
func (a *Activator) allVersions() []*versionState {
	var out []*versionState
	a.versions.Range(func(_, v any) bool {
		out = append(out, v.(*versionState))
		return true
	})
	return out
}

// newInstanceID returns a fresh instance ID for version n of service: a DNS
// label of at most runtime.MaxIDLen characters, so that it can name a
// container, a pod and a label value. A long service name is cut short;
// the random part keeps IDs unique.
func newInstanceID(service string, n int) string {
	b := make([]byte, 4)
	_, _ = crand.Read(b)
	suffix := "-v" + strconv.Itoa(n) + "-" + hex.EncodeToString(b)
	if max := runtime.MaxIDLen - len(suffix); len(service) > max {
		service = service[:max]
	}
	for len(service) > 0 && service[len(service)-1] == '-' {
		service = service[:len(service)-1]
	}
	return service + suffix
}

// add puts a new instance of vs into the registry in an entry state.
// Caller holds vs.mu.
func (a *Activator) add(vs *versionState, id string, s State, why string) *instance {
	if !entryStates[s] {
		panic(fmt.Sprintf("activator: instance %s cannot enter in state %s", id, s)) // a bug in this package
	}
	in := &instance{id: id, vs: vs, state: s, why: why, ahead: s == Creating || s == Spare}
	in.lastRequest.Store(a.now().UnixNano())
	if s == Paused || s == Spare {
		in.settled = a.now()
	}
	vs.instances = append(vs.instances, in)
	a.idsMu.Lock()
	a.ids[id] = in
	a.idsMu.Unlock()
	if s == Stopping {
		a.stop(in)
	}
	vs.broadcast()
	return in
}

// known returns the instance with id, or nil.
func (a *Activator) known(id string) *instance {
	a.idsMu.Lock()
	defer a.idsMu.Unlock()
	return a.ids[id]
}

// move changes in's state, if the state machine allows it, and does what
// entering the new state takes: stopping starts the runtime's stop, gone
// leaves the registry. Every move wakes the version's waiters. Caller holds
// in.vs.mu.
func (a *Activator) move(in *instance, to State, why string) bool {
	if !canMove(in.state, to) {
		a.log.Error("refused an instance state change (a bug)", "err", errTransition{in.id, in.state, to})
		return false
	}
	vs := in.vs
	from := in.state
	in.state = to
	if why != "" {
		in.why = why
	}
	if to == Stopping && from.counts() && failed(removalReason(in.why)) {
		vs.replaceDue++
		vs.replaceBy = a.now().Add(replaceWindow)
	}
	switch to {
	case Ready, Paused, Spare:
		in.settled = a.now()
	case Stopping:
		a.stop(in)
	case Gone:
		for i, x := range vs.instances {
			if x == in {
				vs.instances = append(vs.instances[:i], vs.instances[i+1:]...)
				break
			}
		}
		a.idsMu.Lock()
		delete(a.ids, in.id)
		a.idsMu.Unlock()
		a.releaseSingleton(in) // singleton.go
	}
	vs.broadcast()
	return true
}

// retire removes in from whatever state it is in: a queued start is
// dropped, an operation in progress is asked to remove it when it ends, and
// anything else is stopped. Caller holds in.vs.mu.
func (a *Activator) retire(in *instance, why string) {
	switch in.state {
	case Queued:
		close(in.dropped)
		a.move(in, Gone, why)
	case Creating, Pausing, Waking:
		in.abort = why
	case Starting:
		in.abort = why
		if in.cancel != nil {
			in.cancel()
		}
	case Spare, Ready, Suspect, Draining, Paused:
		a.move(in, Stopping, why)
	case Stopping, Gone:
	}
}

// stop stops and removes in through the runtime, then moves it to gone. A
// failed stop is tried again a few times: the instance stays in the
// registry (stopping) meanwhile, so a re-list never stops it a second time
// or adopts it. A follower never stops an instance: the leader manages
// them, so a follower only forgets it. Caller holds in.vs.mu.
func (a *Activator) stop(in *instance) {
	why := in.why
	if !a.leading.Load() {
		a.move(in, Gone, "")
		a.log.Debug("instance no longer used by this replica", "instance", in.id, "why", why)
		return
	}
	announced, idle, v := in.announced, in.idleFor, in.vs.ver
	exited, code, oom := in.exited, in.exitCode, in.oom
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if announced && exited {
			// Before the stop removes the container and its output.
			tail := a.logTail(in.id)
			msg := fmt.Sprintf("exited with code %d", code)
			if oom {
				msg += " (out of memory)"
			}
			if tail != "" {
				msg += ": " + tail
			}
			a.emit(time.Time{}, core.EventInstanceExited, &v, in.id, msg, "exit_code", strconv.Itoa(code), "last_output", tail)
		}
		var err error
		for attempt := range 3 {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(a.life), a.cfg.StopGrace+30*time.Second)
			err = a.rt.Stop(ctx, in.id, a.cfg.StopGrace)
			cancel()
			if err == nil {
				break
			}
			a.log.Warn("stop failed", "instance", in.id, "attempt", attempt+1, "err", err)
			select {
			case <-time.After(time.Second << attempt):
			case <-a.life.Done():
			}
		}
		in.vs.mu.Lock()
		a.move(in, Gone, "")
		in.vs.mu.Unlock()
		if err != nil {
			a.log.Error("could not remove instance; the next re-list will try again", "instance", in.id, "why", why, "err", err)
			return
		}
		a.log.Info("instance removed", "instance", in.id, "why", why)
		if announced {
			reason := removalReason(why)
			fields := []string{"reason", reason}
			if reason == removedIdle {
				fields = append(fields, "idle_ms", core.Millis(idle))
			}
			a.emit(time.Time{}, core.EventInstanceRemoved, &v, in.id, removedMessage(reason, why, idle), fields...)
		}
	}()
}

// spec returns what it takes to run instance id of v.
func spec(v *core.Version, id string) runtime.InstanceSpec {
	image := v.ImageID
	if image == "" {
		image = v.Image
	}
	return runtime.InstanceSpec{
		ID: id, Service: v.Service, VersionID: v.ID, VersionNumber: v.Number,
		Image: image, ImageRef: v.Image, Port: v.Port, Env: v.Env, Command: v.Command, Args: v.Args,
		MemoryLimit: int64(v.MemoryLimit), CPULimit: v.CPULimit, ReadinessPath: v.ReadinessPath,
	}
}
