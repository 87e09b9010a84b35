package activator

import (
	"context"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// Spares. After a cold start, the activator creates, but does not start, the
// next instance of the version (when the runtime can: runtime.Precreator).
// When the version has scaled to zero and a request arrives, that spare only
// needs starting, which skips the create step of a cold start. A spare uses
// no CPU or memory: it is a container that was never started. There is at
// most one per version, and only while the version can get requests (a
// share of traffic or a tag); it is removed with its version, when the
// version loses its traffic, and at shutdown (kept with --keep-instances and
// adopted again at start-up).

// spec returns what it takes to run an instance id of v.
func spec(v *core.Version, id string) runtime.InstanceSpec {
	image := v.ImageID
	if image == "" {
		image = v.Image
	}
	return runtime.InstanceSpec{
		ID: id, Service: v.Service, VersionID: v.ID, VersionNumber: v.Number,
		Image: image, ImageRef: v.Image, Port: v.Port, Env: v.Env, Command: v.Command, Args: v.Args,
		MemoryLimit: int64(v.MemoryLimit), CPULimit: v.CPULimit,
	}
}

// takeSpare hands over the pool's spare for a start, or "". Caller holds
// p.mu. The spare moves from the spares to the pending set at once, so a
// re-list never sees it as unknown.
func (a *Activator) takeSpare(p *pool) string {
	id := p.spare
	if id == "" {
		return ""
	}
	p.spare = ""
	a.mu.Lock()
	delete(a.spares, id)
	a.pending[id] = true
	a.mu.Unlock()
	return id
}

// ensureSpare creates the pool's spare in the background, unless it has
// one, is making one, or the runtime refused before. Caller holds p.mu.
func (a *Activator) ensureSpare(p *pool) {
	if a.pc == nil || p.spare != "" || p.spareBusy || p.noSpare || p.gone || p.idle || a.closing.Load() {
		return
	}
	p.spareBusy = true
	v := p.version
	id := newInstanceID(v.Service, v.Number)
	a.setPending(id, true)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		// Not cancelled by shutdown: a create cut short could leave a
		// container behind; the closing check below removes it instead.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx()), 30*time.Second)
		defer cancel()
		_, err := a.pc.Create(ctx, spec(&v, id))
		p.mu.Lock()
		defer p.mu.Unlock()
		p.spareBusy = false
		switch {
		case err != nil:
			// Created nothing (or something broken): never try again for
			// this version; starts work the ordinary way.
			p.noSpare = true
			a.log.Debug("no spare instance", "service", v.Service, "version", v.Number, "err", err)
			a.stopAsync(id, "spare failed") // pending until stopped
		case p.gone:
			a.stopAsync(id, "its version was deleted")
		case a.closing.Load() && !a.cfg.KeepInstances:
			a.stopAsync(id, "shutdown")
		default:
			p.spare = id
			a.mu.Lock()
			a.spares[id] = v.ID
			delete(a.pending, id)
			a.mu.Unlock()
		}
	}()
}

// adoptSpare takes a created container of a known version as that
// version's spare, at start-up. It reports whether it did.
func (a *Activator) adoptSpare(ctx context.Context, in runtime.Instance) bool {
	p, v, err := a.poolOf(ctx, in.VersionID)
	if err != nil {
		return false // Reconcile removes it
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spare != "" || p.spareBusy {
		return false
	}
	p.spare = in.ID
	a.mu.Lock()
	a.spares[in.ID] = v.ID
	a.mu.Unlock()
	a.log.Info("adopted spare instance", "instance", in.ID, "service", v.Service, "version", v.Number)
	return true
}

// dropSpare forgets a spare that the runtime no longer has.
func (a *Activator) dropSpare(id string) {
	a.mu.Lock()
	vid, ok := a.spares[id]
	delete(a.spares, id)
	p := a.pools[vid]
	a.mu.Unlock()
	if !ok || p == nil {
		return
	}
	p.mu.Lock()
	if p.spare == id {
		p.spare = ""
	}
	p.mu.Unlock()
}

// forgetSpare removes id from the spares set.
func (a *Activator) forgetSpare(id string) {
	a.mu.Lock()
	delete(a.spares, id)
	a.mu.Unlock()
}
