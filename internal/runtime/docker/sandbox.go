package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/wisp-run/wisp/internal/runtime"
)

// Network sandboxes (issue 14). Most of a container's start on a bridge
// network is the engine wiring its network: a veth pair, a bridge port, an
// address. A sandbox is a container that holds a network namespace set up
// ahead of demand, on Wisp's network like any instance, running a program
// that does nothing (pause.go). An instance created against a sandbox
// (NetworkMode container:<sandbox>) joins that namespace, so its start skips
// the wiring: it starts about as fast as on the host's network, keeps its
// own namespace and address, and the bridge's isolation applies to it as to
// any container on the network (the pod-sandbox model of Kubernetes, ahead
// of demand).
//
// One sandbox serves one instance for the instance's whole life and is
// removed with it: never reused, so no state crosses instances. The pool
// keeps Config.Sandboxes free sandboxes, refilled in the background one at
// a time; when it is empty, an instance is created on the network directly,
// as without sandboxes.
//
// The engine knows which sandbox an instance uses from the instance's
// label LabelSandbox, so a restart of Wisp finds every pairing again; a
// sandbox no instance names (a free one from an earlier run, or one whose
// instance was removed behind Wisp's back) is removed at Open and by List.
// A sandbox that dies takes its instance down: the pool's watcher kills the
// instance, whose death the runtime's Watch reports as any other.

// Labels of sandboxes and of the instances that use them.
const (
	// LabelRole is "sandbox" on sandbox containers (which carry no
	// LabelInstance, so they are never taken for instances).
	LabelRole   = "wisp.role"
	RoleSandbox = "sandbox"
	// LabelSandbox, on an instance, names the sandbox container it uses.
	LabelSandbox = "wisp.sandbox"
)

// sandbox is a started sandbox container.
type sandbox struct {
	name string
	addr string // its address on the network
}

// pool keeps free sandboxes and knows which instance uses which.
type pool struct {
	d     *Docker
	size  int
	image string

	mu      sync.Mutex
	free    []sandbox
	pending string            // the sandbox being created
	addrs   map[string]string // sandbox name → address, free and in use
	used    map[string]string // instance ID → sandbox name
	wake    chan struct{}
	// Counts since Open, for the metrics (SandboxStats).
	taken, misses, failed uint64

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// sandboxName makes the name of a new sandbox container.
func sandboxName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "wisp-sandbox-" + hex.EncodeToString(b[:])
}

// openPool prepares the pool: the image, the pairings of the sandboxes
// found on the engine (orphans are removed), then the refill and the
// watcher in the background.
func (d *Docker) openPool(ctx context.Context, size int, arch string) (*pool, error) {
	img, err := d.ensureSandboxImage(ctx, arch)
	if err != nil {
		return nil, err
	}
	p := &pool{d: d, size: size, image: img, addrs: map[string]string{}, used: map[string]string{}, wake: make(chan struct{}, 1)}
	if err := p.adopt(ctx); err != nil {
		return nil, err
	}
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.stop = stop
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.refill(life) }()
	go func() { defer p.wg.Done(); p.watch(life) }()
	p.kick()
	return p, nil
}

// ownSandboxes lists this Wisp's sandbox containers.
func (p *pool) ownSandboxes(ctx context.Context) ([]container.Summary, error) {
	res, err := p.d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.
		Add("label", runtime.LabelManaged+"=true", runtime.LabelOwner+"="+p.d.cfg.Owner, LabelRole+"="+RoleSandbox)})
	if err != nil {
		return nil, fmt.Errorf("docker: list sandboxes: %w", err)
	}
	return res.Items, nil
}

// adopt records the sandboxes that instances use and removes the others.
func (p *pool) adopt(ctx context.Context) error {
	ins, err := p.d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.
		Add("label", runtime.LabelManaged+"=true", runtime.LabelOwner+"="+p.d.cfg.Owner, LabelSandbox)})
	if err != nil {
		return fmt.Errorf("docker: list instances: %w", err)
	}
	using := map[string]string{} // sandbox name → instance ID
	for _, c := range ins.Items {
		if id := c.Labels[runtime.LabelInstance]; id != "" {
			using[c.Labels[LabelSandbox]] = id
		}
	}
	sbs, err := p.ownSandboxes(ctx)
	if err != nil {
		return err
	}
	removed := 0
	for _, c := range sbs {
		name := summaryName(c)
		id, ok := using[name]
		if !ok {
			p.d.removeQuietly(ctx, c.ID)
			removed++
			continue
		}
		p.used[id] = name
		if c.NetworkSettings != nil {
			if ep := c.NetworkSettings.Networks[p.d.cfg.Network]; ep != nil && ep.IPAddress.IsValid() {
				p.addrs[name] = ep.IPAddress.String()
			}
		}
	}
	if len(sbs) > 0 {
		p.d.log.Info("sandboxes found", "in_use", len(p.used), "removed", removed)
	}
	return nil
}

func summaryName(c container.Summary) string {
	if len(c.Names) == 0 {
		return ""
	}
	n := c.Names[0]
	if len(n) > 0 && n[0] == '/' {
		n = n[1:]
	}
	return n
}

// kick asks the refill loop to top the pool up.
func (p *pool) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take returns a free sandbox for instance id, or false when there is none.
func (p *pool) take(id string) (sandbox, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		p.misses++
		p.kick()
		return sandbox{}, false
	}
	p.taken++
	sb := p.free[0]
	p.free = p.free[1:]
	p.used[id] = sb.name
	p.kick()
	return sb, true
}

// addr returns sandbox name's address, inspecting it if need be.
func (p *pool) addr(ctx context.Context, name string) string {
	p.mu.Lock()
	a, ok := p.addrs[name]
	p.mu.Unlock()
	if ok {
		return a
	}
	if a = inspectAddr(ctx, p.d, name); a != "" {
		p.mu.Lock()
		p.addrs[name] = a
		p.mu.Unlock()
	}
	return a
}

// inspectAddr asks the engine for container name's address on the
// network; "" if it has none.
func inspectAddr(ctx context.Context, d *Docker, name string) string {
	res, err := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil || res.Container.NetworkSettings == nil {
		return ""
	}
	ep := res.Container.NetworkSettings.Networks[d.cfg.Network]
	if ep == nil || !ep.IPAddress.IsValid() {
		return ""
	}
	return ep.IPAddress.String()
}

// release removes instance id's sandbox, if it has one (name, when known,
// saves the look-up).
func (p *pool) release(ctx context.Context, id, name string) {
	p.mu.Lock()
	if name == "" {
		name = p.used[id]
	}
	delete(p.used, id)
	delete(p.addrs, name)
	p.mu.Unlock()
	if name != "" {
		p.d.removeQuietly(ctx, name)
	}
}

// refill keeps size sandboxes free, creating one at a time; after a
// failure it waits, doubling the wait up to 30 s.
func (p *pool) refill(ctx context.Context) {
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		for ctx.Err() == nil {
			name := sandboxName()
			p.mu.Lock()
			full := len(p.free) >= p.size
			if !full {
				p.pending = name
			}
			p.mu.Unlock()
			if full {
				break
			}
			sb, err := p.create(ctx, name)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				p.mu.Lock()
				p.failed++
				p.mu.Unlock()
				p.d.log.Warn("could not create a sandbox; instances start without one meanwhile", "err", err, "retry_in", wait)
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
				wait = min(2*wait, 30*time.Second)
				continue
			}
			wait = time.Second
			p.mu.Lock()
			p.free = append(p.free, sb)
			p.addrs[sb.name] = sb.addr
			p.pending = ""
			p.mu.Unlock()
		}
	}
}

// create creates and starts a sandbox and returns it with its address.
func (p *pool) create(ctx context.Context, name string) (sandbox, error) {
	pids := int64(4)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	_, err := p.d.cli.ContainerCreate(cctx, client.ContainerCreateOptions{Name: name,
		Config: &container.Config{Image: p.image, Labels: map[string]string{
			runtime.LabelManaged: "true", runtime.LabelOwner: p.d.cfg.Owner, LabelRole: RoleSandbox}},
		HostConfig: &container.HostConfig{
			NetworkMode:    container.NetworkMode(p.d.cfg.Network),
			SecurityOpt:    []string{"no-new-privileges"},
			CapDrop:        []string{"ALL"},
			ReadonlyRootfs: true,
			Resources:      container.Resources{PidsLimit: &pids},
		}})
	if err != nil {
		return sandbox{}, fmt.Errorf("create sandbox: %w", err)
	}
	if _, err := p.d.cli.ContainerStart(cctx, name, client.ContainerStartOptions{}); err != nil {
		p.d.removeQuietly(ctx, name)
		return sandbox{}, fmt.Errorf("start sandbox %s: %w", name, err)
	}
	res, err := p.d.cli.ContainerInspect(cctx, name, client.ContainerInspectOptions{})
	if err != nil {
		p.d.removeQuietly(ctx, name)
		return sandbox{}, fmt.Errorf("inspect sandbox %s: %w", name, err)
	}
	var addr string
	if ns := res.Container.NetworkSettings; ns != nil {
		if ep := ns.Networks[p.d.cfg.Network]; ep != nil && ep.IPAddress.IsValid() {
			addr = ep.IPAddress.String()
		}
	}
	if addr == "" {
		p.d.removeQuietly(ctx, name)
		return sandbox{}, fmt.Errorf("sandbox %s has no address on network %s", name, p.d.cfg.Network)
	}
	return sandbox{name: name, addr: addr}, nil
}

// watch follows the engine's events for sandboxes: a free one that dies
// leaves the pool (and is removed); one in use that dies takes its
// instance down, which Watch then reports. The stream is reopened after
// an error.
func (p *pool) watch(ctx context.Context) {
	for ctx.Err() == nil {
		res := p.d.cli.Events(ctx, client.EventsListOptions{Filters: client.Filters{}.
			Add("type", string(events.ContainerEventType)).
			Add("event", string(events.ActionDie), string(events.ActionDestroy)).
			Add("label", runtime.LabelManaged+"=true", runtime.LabelOwner+"="+p.d.cfg.Owner, LabelRole+"="+RoleSandbox)})
	stream:
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-res.Err:
				if ctx.Err() == nil {
					p.d.log.Warn("the sandbox event stream ended; reopening it", "err", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
				break stream
			case m := <-res.Messages:
				p.died(ctx, m.Actor.Attributes["name"])
			}
		}
	}
}

// died handles the end of sandbox name.
func (p *pool) died(ctx context.Context, name string) {
	p.mu.Lock()
	for i, sb := range p.free {
		if sb.name == name {
			p.free = append(p.free[:i:i], p.free[i+1:]...)
			delete(p.addrs, name)
			p.mu.Unlock()
			p.d.log.Warn("a free sandbox died; replacing it", "sandbox", name)
			p.d.removeQuietly(ctx, name)
			p.kick()
			return
		}
	}
	inst := ""
	for id, n := range p.used {
		if n == name {
			inst = id
		}
	}
	p.mu.Unlock()
	if inst == "" {
		return // removed with its instance, or being created
	}
	p.d.log.Warn("the sandbox of an instance died: the instance lost its network, stopping it", "sandbox", name, "instance", inst)
	p.d.killInstance(ctx, inst)
}

// killInstance kills instance id's container: its death is reported by
// Watch and handled as any other.
func (d *Docker) killInstance(ctx context.Context, id string) {
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := d.cli.ContainerUnpause(kctx, containerName(id), client.ContainerUnpauseOptions{}); err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
		d.log.Debug("unpause before kill", "instance", id, "err", err)
	}
	if _, err := d.cli.ContainerKill(kctx, containerName(id), client.ContainerKillOptions{Signal: "KILL"}); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		d.log.Warn("could not kill an instance whose sandbox died", "instance", id, "err", err)
	}
}

// close stops the loops and removes the free sandboxes; those in use stay
// with their instances (kept for adoption, or removed by their Stop).
func (p *pool) close(ctx context.Context) {
	p.stop()
	p.wg.Wait()
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, sb := range free {
		wg.Go(func() { p.d.removeQuietly(ctx, sb.name) })
	}
	wg.Wait()
}

// sweep removes sandboxes that no instance uses and that are not free:
// left by an instance removed behind Wisp's back. inUse names the
// sandboxes the instances on the engine name.
func (p *pool) sweep(ctx context.Context, sbs []container.Summary, inUse map[string]bool) {
	p.mu.Lock()
	keep := map[string]bool{p.pending: true}
	for _, sb := range p.free {
		keep[sb.name] = true
	}
	for _, n := range p.used {
		keep[n] = true // taken: its instance may be being created
	}
	p.mu.Unlock()
	for _, c := range sbs {
		n := summaryName(c)
		if !keep[n] && !inUse[n] {
			p.d.log.Info("removing a sandbox no instance uses", "sandbox", n)
			p.d.removeQuietly(ctx, c.ID)
		}
	}
}

// Sandboxes reports the pool: free sandboxes and sandboxes in use. Zero
// when sandboxes are off.
func (d *Docker) Sandboxes() (free, inUse int) {
	st := d.SandboxStats()
	return st.Free, st.InUse
}

// SandboxStats is the pool as the metrics report it.
type SandboxStats struct {
	On          bool // sandboxes are in use (not off, nor unavailable)
	Size        int  // the free sandboxes the pool keeps
	Free, InUse int
	// Since Open: instances created in a sandbox (Taken) and without one
	// because the pool was empty (Misses); sandboxes that could not be
	// created (Failed).
	Taken, Misses, Failed uint64
}

// SandboxStats reports the pool; the zero value when sandboxes are off.
func (d *Docker) SandboxStats() SandboxStats {
	p := d.pool
	if p == nil {
		return SandboxStats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return SandboxStats{On: true, Size: p.size, Free: len(p.free), InUse: len(p.used),
		Taken: p.taken, Misses: p.misses, Failed: p.failed}
}
