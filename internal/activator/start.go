package activator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// backoff holds a version's starts back after failures: MinBackoff after
// the first, doubling up to MaxBackoff, until a start succeeds. It applies
// to every start of the version, those requests ask for and the
// autoscaler's, so a crash loop costs one container per backoff period, not
// one per request.
type backoff struct {
	failures int
	until    time.Time
	last     string // the last failure, for messages
}

func (b *backoff) fail(now time.Time, first, limit time.Duration, reason string) time.Duration {
	b.failures++
	d := first << min(b.failures-1, 16)
	if d > limit || d <= 0 {
		d = limit
	}
	b.until, b.last = now.Add(d), reason
	return d
}

func (b *backoff) active(now time.Time) bool { return now.Before(b.until) }

// startNow starts an instance of vs for the requests waiting for one,
// whatever the start slots: a spare if there is one, else a new instance.
// A queued scale-up start, if any, is dropped: this one stands for it.
// Caller holds vs.mu.
func (a *Activator) startNow(vs *versionState) {
	if q := vs.first(Queued); q != nil {
		a.retire(q, "a request started an instance at once")
	}
	in := vs.first(Spare)
	fromSpare := in != nil
	if fromSpare {
		a.move(in, Starting, "")
		in.ahead = false
	} else {
		in = a.add(vs, newInstanceID(vs.ver.Service, vs.ver.Number), Starting, "")
	}
	in.onDemand = true
	in.reason = a.startReason(vs, core.StartFirstRequest)
	a.launchStart(in, fromSpare, nil)
}

// queueStart adds a scale-up start that waits for one of the start slots;
// reason is why it starts (a core.Start… value). Caller holds vs.mu.
func (a *Activator) queueStart(vs *versionState, reason string) {
	in := a.add(vs, newInstanceID(vs.ver.Service, vs.ver.Number), Queued, "")
	in.dropped = make(chan struct{})
	in.reason = a.startReason(vs, reason)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case a.slots <- struct{}{}:
		case <-in.dropped:
			return
		case <-a.life.Done():
			vs.mu.Lock()
			if in.state == Queued {
				a.retire(in, "shutdown")
			}
			vs.mu.Unlock()
			return
		}
		vs.mu.Lock()
		if in.state != Queued { // dropped while we got the slot
			vs.mu.Unlock()
			<-a.slots
			return
		}
		a.move(in, Starting, "")
		done := make(chan struct{})
		a.launchStart(in, false, done)
		vs.mu.Unlock()
		<-done
		<-a.slots
	}()
}

// launchStart starts in (in state starting) in the background: the
// runtime's start, then readiness. done, if not nil, is closed at the end.
// Caller holds in.vs.mu.
func (a *Activator) launchStart(in *instance, fromSpare bool, done chan struct{}) {
	ctx, cancel := context.WithTimeout(a.life, a.cfg.StartTimeout)
	in.cancel = cancel
	v := in.vs.ver
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		if done != nil {
			defer close(done)
		}
		a.runStart(ctx, in, &v, fromSpare)
	}()
}

// runStart does the work of a start and moves the instance to ready or,
// on failure, to stopping with the reason; a failure that is the
// version's (not a cancellation) counts towards its backoff.
func (a *Activator) runStart(ctx context.Context, in *instance, v *core.Version, fromSpare bool) {
	vs := in.vs
	t0 := a.now()
	var ri runtime.Instance
	var err error
	vs.mu.Lock()
	single := vs.policy.Singleton
	vs.mu.Unlock()
	if single {
		// Not before every other instance of the service is gone
		// (singleton.go); the wait counts toward the start timeout.
		err = a.takeSingleton(ctx, in)
		t0 = a.now()
	}
	if err == nil && fromSpare {
		if ri, err = a.pc.StartCreated(ctx, in.id); err != nil && ctx.Err() == nil {
			// The spare is broken: remove it and start a new instance in
			// its place, for the same waiters.
			a.log.Warn("the spare instance did not start; starting a new one", "instance", in.id, "err", err)
			vs.mu.Lock()
			next := a.add(vs, newInstanceID(v.Service, v.Number), Starting, "")
			next.onDemand, next.cancel, next.abort, next.reason = in.onDemand, in.cancel, in.abort, in.reason
			in.cancel = nil
			a.move(in, Stopping, "the spare failed to start")
			vs.mu.Unlock()
			in = next
			fromSpare, err = false, nil // the new one is started below
		}
	}
	if err == nil && !fromSpare {
		t0 = a.now()
		ri, err = a.rt.Start(ctx, spec(v, in.id))
	}
	probing := err == nil
	if probing {
		a.announceStart(in, v, t0)
		ri, err = a.ready(ctx, ri, v)
	}
	elapsed := a.now().Sub(t0)
	vs.mu.Lock()
	defer vs.mu.Unlock()
	in.cancel = nil
	switch {
	case err == nil && in.abort == "" && !vs.gone:
		in.addr, in.proxied, in.startedAt = ri.Addr, ri.Proxied, a.now()
		in.lastRequest.Store(a.now().UnixNano())
		a.move(in, Ready, "")
		vs.backoff = backoff{}
		if vs.background {
			a.weigh(in, true) // weight.go
		}
		a.metrics.started(v, true, elapsed.Seconds())
		a.log.Info("instance ready", "service", v.Service, "version", v.Number, "instance", in.id, "addr", ri.Addr,
			"ready", elapsed.Round(time.Millisecond))
		a.emit(time.Time{}, core.EventInstanceReady, v, in.id, fmt.Sprintf("ready in %d ms", elapsed.Milliseconds()),
			"duration_ms", core.Millis(elapsed))
		if in.onDemand {
			a.ensureSpare(vs) // for the next cold start
		}
		if in.standby && in.inflight.Load() == 0 && vs.waiters == 0 && a.standbyOf(vs) > 0 {
			// Under the lock Acquire takes: no request got it since it
			// became ready, so it is frozen before any can.
			a.beginPause(in, 0, "paused as a standby, once ready")
		}
		in.standby = false
	case err == nil || in.abort != "" || vs.gone:
		why := in.abort
		if vs.gone {
			why = "its version was deleted"
		}
		a.move(in, Stopping, why)
	default:
		reason := a.startFailure(ctx, in, err)
		if errors.Is(ctx.Err(), context.Canceled) {
			a.move(in, Stopping, reason) // shutdown: not the version's fault
			return
		}
		wait := vs.backoff.fail(a.now(), a.cfg.MinBackoff, a.cfg.MaxBackoff, reason)
		a.metrics.started(v, false, 0)
		if probing {
			a.emit(time.Time{}, core.EventReadinessFailed, v, in.id, "not ready: "+reason, "error", reason)
		} else {
			a.emit(time.Time{}, core.EventInstanceStartFailed, v, in.id, "start failed: "+reason, "error", reason)
		}
		a.emit(time.Time{}, core.EventBackoff, v, "",
			fmt.Sprintf("%d failed start(s) in a row; the next try is in %s s", vs.backoff.failures, seconds(wait)),
			"failures", strconv.Itoa(vs.backoff.failures), "retry_in_ms", core.Millis(wait))
		a.log.Warn("start failed", "service", v.Service, "version", v.Number, "instance", in.id, "err", reason,
			"failures", vs.backoff.failures, "retry_in", wait)
		a.move(in, Stopping, "start failed: "+reason)
	}
}

// announceStart emits instance.starting for in, now that the runtime has
// it, timed at asked (just before the start was asked of the runtime).
func (a *Activator) announceStart(in *instance, v *core.Version, asked time.Time) {
	in.vs.mu.Lock()
	in.announced = true
	reason := in.reason
	in.vs.mu.Unlock()
	if reason == "" {
		reason = core.StartFirstRequest
	}
	a.emit(asked, core.EventInstanceStarting, v, in.id, "starting ("+reason+")", "reason", reason)
}

// ready waits until a started instance is ready: the runtime says so when it
// can tell (ReadinessWaiter), else Wisp probes it.
func (a *Activator) ready(ctx context.Context, ri runtime.Instance, v *core.Version) (runtime.Instance, error) {
	if a.rw != nil {
		return a.rw.WaitReady(ctx, ri.ID)
	}
	return ri, a.prober.probe(ctx, a.rt, ri, v)
}

// startFailure explains a failed start: the runtime's error or the
// probe's, why the context ended, and the end of the instance's output.
// Caller holds in.vs.mu (it is released around the log read).
func (a *Activator) startFailure(ctx context.Context, in *instance, err error) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("not ready within the start timeout of %s (%w)", a.cfg.StartTimeout, err)
	case a.life.Err() != nil:
		err = errors.New("start cancelled: wisp is shutting down")
	case ctx.Err() != nil && in.abort != "":
		err = errors.New("start cancelled: " + in.abort)
	}
	reason := err.Error()
	if in.oom {
		reason += " (it ran out of memory)"
	}
	in.vs.mu.Unlock()
	tail := a.logTail(in.id)
	in.vs.mu.Lock()
	if tail != "" {
		reason += "; its last output: " + tail
	}
	return reason
}

// logTail returns the last lines an instance wrote, as one short line.
func (a *Activator) logTail(id string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.life), 2*time.Second)
	defer cancel()
	r, err := a.rt.Logs(ctx, id, runtime.LogOptions{Tail: 5})
	if err != nil {
		return ""
	}
	defer r.Close()
	var lines []string
	for {
		l, err := r.Next()
		if err != nil {
			break
		}
		lines = append(lines, l.Text)
	}
	return trimOutput(strings.Join(lines, "\n"))
}

// adoptRunning probes an instance found running at start-up (or by a
// re-list): it may have been starting when an earlier run stopped, so it
// takes requests only once it is ready, and requests wait for it as for a
// cold start. Caller holds in.vs.mu; in is in state starting.
func (a *Activator) adoptRunning(in *instance, ri runtime.Instance) {
	ctx, cancel := context.WithTimeout(a.life, a.cfg.StartTimeout)
	in.cancel = cancel
	v := in.vs.ver
	began := a.now()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		ri, err := a.ready(ctx, ri, &v)
		vs := in.vs
		vs.mu.Lock()
		defer vs.mu.Unlock()
		in.cancel = nil
		switch {
		case in.state != Starting:
			// A ready event (promote) settled it first.
		case err == nil && in.abort == "" && !vs.gone:
			in.addr, in.proxied = ri.Addr, ri.Proxied
			a.move(in, Ready, "")
			a.log.Info("adopted instance is ready", "instance", in.id, "service", v.Service, "version", v.Number)
			d := a.now().Sub(began)
			a.emit(time.Time{}, core.EventInstanceReady, &v, in.id, fmt.Sprintf("ready in %d ms (adopted)", d.Milliseconds()),
				"duration_ms", core.Millis(d))
		case err == nil:
			a.move(in, Stopping, in.abort)
		default:
			reason := a.startFailure(ctx, in, err)
			a.emit(time.Time{}, core.EventReadinessFailed, &v, in.id, "adopted, but not ready: "+reason, "error", reason)
			a.move(in, Stopping, "adopted, but did not become ready: "+reason)
		}
	}()
}

// ensureSpare creates, in the background, the container the version's next
// cold start will only need to start, unless it has one, the runtime cannot
// or the version is not routed to. Caller holds vs.mu.
func (a *Activator) ensureSpare(vs *versionState) {
	if a.pc == nil || vs.noSpare || vs.gone || !vs.routable || vs.policy.Singleton || a.closing.Load() || !a.leading.Load() ||
		vs.first(Spare) != nil || vs.first(Creating) != nil {
		return
	}
	v := vs.ver
	in := a.add(vs, newInstanceID(v.Service, v.Number), Creating, "")
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		// Not cancelled by shutdown: a create cut short could leave a
		// container behind; Shutdown's abort removes it instead.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.life), 30*time.Second)
		defer cancel()
		_, err := a.pc.Create(ctx, spec(&v, in.id))
		vs.mu.Lock()
		defer vs.mu.Unlock()
		switch {
		case err != nil:
			// Never again for this version: starts work the ordinary way.
			vs.noSpare = true
			a.log.Debug("no spare instance", "service", v.Service, "version", v.Number, "err", err)
			a.move(in, Stopping, "the spare could not be created")
		case in.abort != "" || vs.gone || !vs.routable:
			why := in.abort
			if why == "" {
				why = "its version has no traffic"
			}
			a.move(in, Stopping, why)
		default:
			a.move(in, Spare, "")
		}
	}()
}

// beginWake thaws a paused instance in the background; the channel is
// closed when the thaw is over. Caller holds in.vs.mu.
func (a *Activator) beginWake(in *instance) <-chan struct{} {
	a.move(in, Waking, "")
	began := a.now()
	done := make(chan struct{})
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(done)
		err := a.unpause(in.id)
		vs := in.vs
		vs.mu.Lock()
		defer vs.mu.Unlock()
		switch {
		case in.abort != "":
			a.move(in, Stopping, in.abort)
		case err != nil:
			a.log.Warn("wake failed; removing the instance", "instance", in.id, "err", err)
			a.move(in, Stopping, "it could not be thawed: "+err.Error())
		default:
			in.lastRequest.Store(a.now().UnixNano())
			a.move(in, Ready, "")
			d := a.now().Sub(began)
			a.emit(time.Time{}, core.EventInstanceWoken, &vs.ver, in.id, fmt.Sprintf("woken in %d ms", d.Milliseconds()),
				"duration_ms", core.Millis(d))
		}
	}()
	return done
}

func (a *Activator) unpause(id string) error {
	// Past shutdown: a thaw cut short would lose a kept instance.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.life), 10*time.Second)
	defer cancel()
	err := a.pauser.Unpause(ctx, id)
	if err == nil {
		return nil
	}
	// A pause that failed leaves it running: that is a success.
	if in, ierr := a.rt.Inspect(ctx, id); ierr == nil && in.State == runtime.StateRunning {
		return nil
	}
	return err
}

// beginPause freezes an instance idle for idle in the background; msg is
// the message of its instance.paused event. A request that wants it
// meanwhile marks it, and it is thawed as soon as the pause is done, so a
// pause and a wake never run at once. Caller holds in.vs.mu.
func (a *Activator) beginPause(in *instance, idle time.Duration, msg string) {
	a.move(in, Pausing, "")
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.life), 10*time.Second)
		err := a.pauser.Pause(ctx, in.id)
		cancel()
		vs := in.vs
		vs.mu.Lock()
		defer vs.mu.Unlock()
		switch {
		case in.abort != "":
			a.move(in, Stopping, in.abort)
		case err != nil:
			a.log.Warn("pause failed; it keeps running", "instance", in.id, "err", err)
			a.move(in, Ready, "")
		default:
			a.move(in, Paused, "")
			a.log.Debug("instance paused", "instance", in.id)
			a.emit(time.Time{}, core.EventInstancePaused, &vs.ver, in.id, msg, "idle_ms", core.Millis(idle))
			if in.wakeAfterPause {
				in.wakeAfterPause = false
				a.beginWake(in)
			}
		}
	}()
}
