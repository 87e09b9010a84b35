// Package fake is an in-memory runtime for tests. Each instance is a real HTTP
// server on 127.0.0.1, so the router and activator talk to it exactly as they
// talk to a container; starts can be delayed, made to fail, or made to exit,
// and instances can be killed or removed "by hand".
//
// In shared mode (Config.Shared) it plays a cluster that several Wisp
// replicas share: it is a runtime.Shared and reports EventReady when an
// instance starts listening, to every watcher.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

var (
	_ runtime.Runtime    = (*Runtime)(nil)
	_ runtime.Precreator = (*Runtime)(nil)
	_ runtime.Pauser     = (*Runtime)(nil)
	_ runtime.Watcher    = (*Runtime)(nil)
	_ runtime.Shared     = (*Runtime)(nil)
)

// Behavior scripts what an instance does when it starts.
type Behavior struct {
	StartDelay  time.Duration // Start itself takes this long
	ReadyDelay  time.Duration // the process listens only after this
	StartErr    error         // Start fails with this
	NeverListen bool          // the process never opens its port
	ExitAtOnce  bool          // the process exits right after start
	NoAddr      bool          // with ExitAtOnce: gone before Start read its address, as on Docker
	ExitCode    int
	Logs        string // what the process printed
}

// Config configures the fake runtime.
type Config struct {
	// Images maps image references to IDs; others are "not present".
	Images map[string]string
	// Behave returns the behavior for an instance; nil means a healthy one.
	Behave func(spec runtime.InstanceSpec) Behavior
	// Handler serves an instance's requests; nil means Greeter.
	Handler func(spec runtime.InstanceSpec) http.Handler
	// Shared makes the runtime one that several replicas share, as a
	// cluster is: SharedAcrossReplicas is true and EventReady is reported.
	Shared bool
}

// Runtime is the fake runtime.
type Runtime struct {
	cfg         Config
	starts      atomic.Int64
	attempts    atomic.Int64
	creates     atomic.Int64
	fromCreated atomic.Int64
	stops       atomic.Int64

	mu        sync.Mutex
	instances map[string]*instance
	watchers  []chan runtime.Event
}

type instance struct {
	runtime.Instance
	spec   runtime.InstanceSpec
	srv    *http.Server
	logs   []runtime.LogLine
	more   chan struct{} // closed and replaced when a line is added or the instance ends
	ended  bool          // the process is gone: followers stop
	paused chan struct{} // closed when not paused; replaced on pause
	hung   chan struct{} // closed when not hung; replaced by Hang
}

// print adds a line of output. Caller holds r.mu.
func (in *instance) print(stream, text string) {
	in.logs = append(in.logs, runtime.LogLine{Time: time.Now(), Stream: stream, Text: text})
	close(in.more)
	in.more = make(chan struct{})
}

// end marks the process gone, for followers. Caller holds r.mu.
func (in *instance) end() {
	if !in.ended {
		in.ended = true
		close(in.more)
		in.more = make(chan struct{})
	}
}

// New returns a fake runtime.
func New(cfg Config) *Runtime {
	if cfg.Behave == nil {
		cfg.Behave = func(runtime.InstanceSpec) Behavior { return Behavior{} }
	}
	r := &Runtime{cfg: cfg, instances: map[string]*instance{}}
	if r.cfg.Handler == nil {
		r.cfg.Handler = func(spec runtime.InstanceSpec) http.Handler {
			return greeter(spec.Env, func(stream, text string) { r.Print(spec.ID, stream, text) })
		}
	}
	return r
}

// SharedAcrossReplicas implements runtime.Shared.
func (r *Runtime) SharedAcrossReplicas() bool { return r.cfg.Shared }

// Starts returns how many instances were started.
func (r *Runtime) Starts() int { return int(r.starts.Load()) }

// Attempts returns how many times Start was called, failures included.
func (r *Runtime) Attempts() int { return int(r.attempts.Load()) }

// ResolveImage implements runtime.Runtime.
func (r *Runtime) ResolveImage(ctx context.Context, ref string) (string, error) {
	if id, ok := r.cfg.Images[ref]; ok {
		return id, nil
	}
	return "", core.Invalidf("image", "image %q is not present on this machine", ref)
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	r.attempts.Add(1)
	b := r.cfg.Behave(spec)
	if b.StartDelay > 0 {
		select {
		case <-time.After(b.StartDelay):
		case <-ctx.Done():
			return runtime.Instance{}, ctx.Err()
		}
	}
	if b.StartErr != nil {
		return runtime.Instance{}, b.StartErr
	}
	known := false
	for _, id := range r.cfg.Images {
		known = known || id == spec.Image
	}
	if !known {
		return runtime.Instance{}, fmt.Errorf("no such image: %s", spec.Image)
	}
	r.starts.Add(1)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return runtime.Instance{}, err
	}
	addr := ln.Addr().String()
	in := &instance{
		Instance: runtime.Instance{ID: spec.ID, ContainerID: "fake-" + spec.ID, Service: spec.Service, VersionID: spec.VersionID,
			VersionNumber: spec.VersionNumber, Addr: addr, State: runtime.StateRunning, StartedAt: time.Now()},
		spec:   spec,
		more:   make(chan struct{}),
		paused: closed(),
		hung:   closed(),
	}
	for _, l := range strings.Split(strings.TrimRight(b.Logs, "\n"), "\n") {
		if l != "" {
			in.print(runtime.Stdout, l)
		}
	}
	handler := r.cfg.Handler(spec)
	in.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// A paused instance is frozen and a hung one never answers:
		// requests wait until it thaws (or the client gives up).
		r.mu.Lock()
		paused, hung := in.paused, in.hung
		r.mu.Unlock()
		for _, gate := range []chan struct{}{paused, hung} {
			select {
			case <-gate:
			case <-req.Context().Done():
				return
			}
		}
		handler.ServeHTTP(w, req)
	}), ReadHeaderTimeout: 10 * time.Second}
	if !b.ExitAtOnce && !b.NeverListen {
		in.print(runtime.Stdout, "fake: listening on "+addr)
	}
	switch {
	case b.ExitAtOnce:
		_ = ln.Close()
		in.State, in.ExitCode = runtime.StateExited, b.ExitCode
		in.end()
		if b.NoAddr {
			in.Addr = ""
		}
	case b.NeverListen:
		_ = ln.Close() // nobody listens on addr
	case b.ReadyDelay > 0:
		_ = ln.Close()
		go func() {
			time.Sleep(b.ReadyDelay)
			ln2, err := lc.Listen(context.WithoutCancel(ctx), "tcp", addr)
			if err != nil {
				return
			}
			r.ready(spec.ID)
			_ = in.srv.Serve(ln2)
		}()
	default:
		go func() { _ = in.srv.Serve(ln) }()
	}
	r.mu.Lock()
	r.instances[spec.ID] = in
	r.mu.Unlock()
	switch {
	case b.ExitAtOnce:
		r.emit(runtime.Event{Kind: runtime.EventDied, InstanceID: spec.ID, ExitCode: b.ExitCode})
	case !b.NeverListen && b.ReadyDelay <= 0:
		r.ready(spec.ID) // it accepts connections from here on
	}
	return in.Instance, nil
}

// ready reports, in shared mode, that instance id listens.
func (r *Runtime) ready(id string) {
	if !r.cfg.Shared {
		return
	}
	r.mu.Lock()
	in, ok := r.instances[id]
	var snap runtime.Instance
	if ok {
		snap = in.Instance
	}
	r.mu.Unlock()
	if ok && snap.State == runtime.StateRunning {
		r.emit(runtime.Event{Kind: runtime.EventReady, InstanceID: id, Instance: snap})
	}
}

// Create implements runtime.Precreator: the instance is listed as created
// and serves nothing until StartCreated.
func (r *Runtime) Create(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	known := false
	for _, id := range r.cfg.Images {
		known = known || id == spec.Image
	}
	if !known {
		return runtime.Instance{}, fmt.Errorf("no such image: %s", spec.Image)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	in := &instance{
		Instance: runtime.Instance{ID: spec.ID, ContainerID: "fake-" + spec.ID, Service: spec.Service, VersionID: spec.VersionID,
			VersionNumber: spec.VersionNumber, State: runtime.StateCreated},
		spec: spec,
		srv:  &http.Server{ReadHeaderTimeout: time.Second},
		more: make(chan struct{}),
	}
	r.instances[spec.ID] = in
	r.creates.Add(1)
	return in.Instance, nil
}

// StartCreated implements runtime.Precreator.
func (r *Runtime) StartCreated(ctx context.Context, id string) (runtime.Instance, error) {
	r.mu.Lock()
	in, ok := r.instances[id]
	if ok && in.State == runtime.StateCreated {
		delete(r.instances, id)
	}
	r.mu.Unlock()
	switch {
	case !ok:
		return runtime.Instance{}, core.NotFoundf("instance %s not found", id)
	case in.State != runtime.StateCreated:
		return runtime.Instance{}, core.Conflictf("instance %s is %s, not created", id, in.State)
	}
	r.fromCreated.Add(1)
	return r.Start(ctx, in.spec)
}

// Creates returns how many instances were created ahead; FromCreated how
// many of those were started.
func (r *Runtime) Creates() int     { return int(r.creates.Load()) }
func (r *Runtime) FromCreated() int { return int(r.fromCreated.Load()) }

// Stops returns how many times Stop was called, of instances that existed
// or not.
func (r *Runtime) Stops() int { return int(r.stops.Load()) }

// Stop implements runtime.Runtime.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	r.stops.Add(1)
	r.mu.Lock()
	in, ok := r.instances[id]
	if ok {
		delete(r.instances, id)
		if in.State == runtime.StatePaused {
			close(in.paused)
		}
		in.end()
	}
	r.mu.Unlock()
	if !ok {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := in.srv.Shutdown(sctx); err != nil {
		_ = in.srv.Close()
	}
	r.emit(runtime.Event{Kind: runtime.EventRemoved, InstanceID: id})
	return nil
}

// Kill makes an instance's process exit, as if it crashed or was killed by
// hand; the instance stays listed as exited.
func (r *Runtime) Kill(id string, code int) {
	r.mu.Lock()
	in, ok := r.instances[id]
	if ok {
		in.State, in.ExitCode = runtime.StateExited, code
		in.end()
	}
	r.mu.Unlock()
	if ok {
		_ = in.srv.Close()
		r.emit(runtime.Event{Kind: runtime.EventDied, InstanceID: id, ExitCode: code})
	}
}

// OOM kills an instance as the kernel does when it exceeds its memory
// limit: an oom event, then died with code 137.
func (r *Runtime) OOM(id string) {
	r.emit(runtime.Event{Kind: runtime.EventOOM, InstanceID: id})
	r.Kill(id, 137)
}

// Hang makes an instance's process stop answering requests while it still
// accepts connections, as a deadlocked server does; Unhang ends it.
func (r *Runtime) Hang(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in, ok := r.instances[id]; ok {
		in.hung = make(chan struct{})
	}
}

// Unhang makes a hung instance answer again.
func (r *Runtime) Unhang(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in, ok := r.instances[id]; ok {
		select {
		case <-in.hung:
		default:
			close(in.hung)
		}
	}
}

// Print adds a line to an instance's output, as if its process wrote it.
func (r *Runtime) Print(id, stream, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in, ok := r.instances[id]; ok {
		in.print(stream, text)
	}
}

// Remove deletes an instance behind Wisp's back, like `docker rm -f`.
func (r *Runtime) Remove(id string) {
	r.mu.Lock()
	in, ok := r.instances[id]
	delete(r.instances, id)
	if ok {
		in.end()
	}
	r.mu.Unlock()
	if ok {
		_ = in.srv.Close()
		r.emit(runtime.Event{Kind: runtime.EventRemoved, InstanceID: id})
	}
}

// Inspect implements runtime.Runtime.
func (r *Runtime) Inspect(ctx context.Context, id string) (runtime.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, ok := r.instances[id]
	if !ok {
		return runtime.Instance{}, core.NotFoundf("instance %s not found", id)
	}
	return in.Instance, nil
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]runtime.Instance, 0, len(r.instances))
	for _, in := range r.instances {
		out = append(out, in.Instance)
	}
	return out, nil
}

// Logs implements runtime.Runtime.
func (r *Runtime) Logs(ctx context.Context, id string, opts runtime.LogOptions) (runtime.LogReader, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, ok := r.instances[id]
	if !ok {
		return nil, core.NotFoundf("instance %s not found", id)
	}
	next := 0
	if !opts.Since.IsZero() {
		for next < len(in.logs) && in.logs[next].Time.Before(opts.Since) {
			next++
		}
	}
	if opts.Tail > 0 && len(in.logs)-next > opts.Tail {
		next = len(in.logs) - opts.Tail
	}
	ctx, cancel := context.WithCancel(ctx)
	return &logReader{r: r, in: in, next: next, follow: opts.Follow, ctx: ctx, cancel: cancel}, nil
}

type logReader struct {
	r      *Runtime
	in     *instance
	next   int
	follow bool
	ctx    context.Context
	cancel context.CancelFunc
}

func (l *logReader) Next() (runtime.LogLine, error) {
	for {
		l.r.mu.Lock()
		if l.next < len(l.in.logs) {
			line := l.in.logs[l.next]
			l.next++
			l.r.mu.Unlock()
			return line, nil
		}
		more, ended := l.in.more, l.in.ended
		l.r.mu.Unlock()
		if !l.follow || ended {
			return runtime.LogLine{}, io.EOF
		}
		select {
		case <-more:
		case <-l.ctx.Done():
			return runtime.LogLine{}, io.EOF
		}
	}
}

func (l *logReader) Close() error { l.cancel(); return nil }

// Pause implements runtime.Pauser: requests wait until Unpause. Like the
// Docker Engine, it reports a paused event, whoever asked (a test pausing
// "by hand" calls it too).
func (r *Runtime) Pause(ctx context.Context, id string) error {
	if err := r.transition(id, runtime.StateRunning, runtime.StatePaused); err != nil {
		return err
	}
	r.emit(runtime.Event{Kind: runtime.EventPaused, InstanceID: id})
	return nil
}

// Unpause implements runtime.Pauser, and reports an unpaused event.
func (r *Runtime) Unpause(ctx context.Context, id string) error {
	if err := r.transition(id, runtime.StatePaused, runtime.StateRunning); err != nil {
		return err
	}
	r.emit(runtime.Event{Kind: runtime.EventUnpaused, InstanceID: id})
	return nil
}

// transition moves an instance between running and paused.
func (r *Runtime) transition(id string, from, to runtime.State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, ok := r.instances[id]
	switch {
	case !ok:
		return core.NotFoundf("instance %s not found", id)
	case in.State != from:
		return core.Conflictf("instance %s is %s, not %s", id, in.State, from)
	}
	in.State = to
	if to == runtime.StatePaused {
		in.paused = make(chan struct{})
	} else {
		close(in.paused)
	}
	return nil
}

func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Watch implements runtime.Watcher.
func (r *Runtime) Watch(ctx context.Context) (<-chan runtime.Event, <-chan error) {
	ch := make(chan runtime.Event, 64)
	errc := make(chan error, 1)
	r.mu.Lock()
	r.watchers = append(r.watchers, ch)
	r.mu.Unlock()
	go func() {
		<-ctx.Done()
		r.mu.Lock()
		for i, w := range r.watchers {
			if w == ch {
				r.watchers = append(r.watchers[:i], r.watchers[i+1:]...)
				break
			}
		}
		r.mu.Unlock()
		errc <- nil
	}()
	return ch, errc
}

// Watchers says how many Watch subscriptions are open. Events have no
// history here: a test that makes one right after starting its watcher
// waits for this first, or the event may reach nobody.
func (r *Runtime) Watchers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.watchers)
}

func (r *Runtime) emit(e runtime.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.watchers {
		select {
		case w <- e:
		default: // a slow watcher re-lists instead
		}
	}
}

// Greeter is the handler of the test image: "Hello, $GREETING!", and
// /sleep?ms=N answers after N milliseconds.
func Greeter(env []string) http.Handler { return greeter(env, nil) }

// greeter is Greeter with /log?stream=stdout|stderr&text=T, which prints T
// to the instance's output, as testdata/greeter does.
func greeter(env []string, print func(stream, text string)) http.Handler {
	greeting := "World"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GREETING="); ok {
			greeting = v
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/log" && print != nil {
			stream := runtime.Stdout
			if r.URL.Query().Get("stream") == runtime.Stderr {
				stream = runtime.Stderr
			}
			print(stream, r.URL.Query().Get("text"))
			fmt.Fprintln(w, "logged")
			return
		}
		if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil && strings.HasPrefix(r.URL.Path, "/sleep") {
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "Hello, %s!\n", greeting)
	})
}

// ErrStart is a start failure to script with Behavior.StartErr.
var ErrStart = errors.New("fake: start failed")
