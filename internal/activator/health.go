package activator

import (
	"context"
	"fmt"
	"time"
)

// Health. An instance that fails a request (it timed out, broke the
// connection, answered garbage) becomes suspect: it gets no new request and
// is probed at once and then every suspectProbeEvery. A probe is an HTTP
// request (the readiness path, or / where any answer will do), never just a
// TCP connect: the kernel accepts connections for a frozen or hung process.
// It is ready again when a probe passes, and replaced when none passes
// within SuspectTimeout. After its first failed probe, requests no longer
// wait for it: with nothing else ready, a new instance is started.
//
// A version with a liveness probe (core.Probe) has its ready instances
// checked every period; after failure_threshold failures in a row the
// instance is replaced.

const suspectProbeEvery = 500 * time.Millisecond

// suspect marks in suspect and starts probing it, unless it already is.
func (a *Activator) suspect(in *instance, reason string) {
	vs := in.vs
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if in.state != Ready {
		return
	}
	a.log.Warn("instance failed a request; probing it before it gets more", "instance", in.id, "why", reason)
	a.move(in, Suspect, reason)
	in.unhealthy = false
	addr, path := in.addr, vs.ver.ReadinessPath
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.recover(in, addr, path)
	}()
}

func (a *Activator) recover(in *instance, addr, path string) {
	vs := in.vs
	deadline := a.now().Add(a.cfg.SuspectTimeout)
	for {
		err := a.health(a.life, addr, path, time.Second)
		vs.mu.Lock()
		switch {
		case in.state != Suspect:
			vs.mu.Unlock()
			return
		case err == nil:
			a.move(in, Ready, "")
			vs.mu.Unlock()
			a.log.Info("instance recovered", "instance", in.id)
			return
		case !a.now().Before(deadline):
			a.retire(in, fmt.Sprintf("it failed a request (%s) and no health probe passed within %s (last: %v)", in.why, a.cfg.SuspectTimeout, err))
			vs.mu.Unlock()
			return
		case !in.unhealthy:
			in.unhealthy = true
			vs.broadcast() // waiters start another instance if nothing else serves
		}
		vs.mu.Unlock()
		select {
		case <-a.life.Done():
			return
		case <-time.After(suspectProbeEvery):
		}
	}
}

// checkLiveness probes the ready instances whose liveness check is due.
// Only a leader does: it replaces the failing ones for every replica.
func (a *Activator) checkLiveness(now time.Time) {
	if !a.leading.Load() {
		return
	}
	for _, vs := range a.allVersions() {
		vs.mu.Lock()
		p := vs.ver.Liveness
		if p == nil {
			vs.mu.Unlock()
			continue
		}
		for _, in := range vs.instances {
			if in.state != Ready || now.Before(in.nextLive) {
				continue
			}
			if in.nextLive.IsZero() { // first look: one period after it became ready
				in.nextLive = in.settled.Add(p.Period.Std())
				if now.Before(in.nextLive) {
					continue
				}
			}
			in.nextLive = now.Add(p.Period.Std())
			addr, port, proxied := in.addr, vs.ver.Port, in.proxied
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				var err error
				switch {
				case p.Path != "":
					err = probeHTTP(a.life, addr, p.Path, p.Timeout.Std())
				case proxied:
					// docker-proxy accepts for a dead process too: any
					// HTTP answer stands for the connect.
					err = probeHTTP(a.life, addr, "", p.Timeout.Std())
				default:
					err = probeTCP(a.life, addr, p.Timeout.Std())
				}
				vs.mu.Lock()
				defer vs.mu.Unlock()
				if in.state != Ready && in.state != Suspect {
					return
				}
				if err == nil {
					in.liveFailures = 0
					return
				}
				in.liveFailures++
				a.log.Warn("liveness probe failed", "instance", in.id, "failures", in.liveFailures, "port", port, "err", err)
				if in.liveFailures >= p.FailureThreshold {
					a.metrics.livenessFailed(&vs.ver)
					a.retire(in, fmt.Sprintf("its liveness probe failed %d times in a row (last: %v)", in.liveFailures, err))
				}
			}()
		}
		vs.mu.Unlock()
	}
}

// probeHTTP GETs path (or /, where any status will do) within timeout.
func probeHTTP(ctx context.Context, addr, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	anyStatus := path == ""
	if anyStatus {
		path = "/"
	}
	return getOnce(ctx, addr, path, anyStatus)
}
