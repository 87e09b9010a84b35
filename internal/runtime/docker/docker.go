// Package docker runs Wisp instances as containers on the Docker Engine
// through the official Go SDK (github.com/moby/moby/client, API version
// negotiated). SDK types never leave this package.
//
// Networking: by default every instance joins a user-defined bridge network
// ("wisp", created with traffic between containers turned off: network.go)
// without published ports and the router dials the container's address
// directly; the published-port path through docker-proxy halves
// throughput and costs a process per container. Where container addresses are
// not reachable from the host (Docker Desktop) or with Publish, the port is
// published on 127.0.0.1 with an ephemeral host port. Network "host" runs the
// instance in the host's network namespace on a $PORT that Wisp assigns:
// starts are faster (no veth and bridge set-up) but instances share the
// host's ports and are not isolated from each other.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

var (
	_ runtime.Runtime    = (*Docker)(nil)
	_ runtime.Precreator = (*Docker)(nil)
	_ runtime.Pauser     = (*Docker)(nil)
	_ runtime.Weigher    = (*Docker)(nil)
	_ runtime.Watcher    = (*Docker)(nil)
)

// HostNetwork is the Network value that runs instances in the host's network.
const HostNetwork = "host"

// Config configures the Docker runtime.
type Config struct {
	// Network is the user-defined bridge network instances join (created if
	// missing), or HostNetwork. Default "wisp".
	Network string
	// Publish publishes each instance's port on 127.0.0.1 instead of dialing
	// container addresses. Turned on automatically on Docker Desktop.
	Publish bool
	// Pull lets ResolveImage pull images that are not present. Off by
	// default: Wisp runs the images on this machine.
	Pull bool
	// PidsLimit bounds processes per instance. Default 1024.
	PidsLimit int64
	// Owner identifies this Wisp installation. Its containers are labelled
	// with it, and List and Watch see only those, so several Wisps (or a
	// test run) can share one engine without removing each other's
	// instances. Required.
	Owner string
	// Logger receives the runtime's log lines.
	Logger *slog.Logger
	// RouterAddr is the router's bound listen address (host:port). Every
	// instance gets the router's address as seen from inside its
	// container in WISP_ROUTER_URL; "" gives none.
	RouterAddr string
	// Sandboxes is how many network sandboxes are kept started ahead of
	// demand on the bridge network (sandbox.go); 0 turns them off. Not
	// used with host networking or Publish.
	Sandboxes int
}

// Docker is the Docker Engine runtime.
type Docker struct {
	// beforeStart, in tests only, runs between a start's create and its
	// ContainerStart with the sandbox taken ("" for none).
	beforeStart func(sandbox string)
	cfg         Config
	cli         *client.Client
	log         *slog.Logger
	// routerURL is WISP_ROUTER_URL for instances (network.go).
	routerURL string
	// pool holds the network sandboxes; nil when they are off.
	pool *pool
}

// Open connects to the Docker Engine (DOCKER_HOST and friends are honoured),
// checks it answers, and prepares the network.
func Open(ctx context.Context, cfg Config) (*Docker, error) {
	if cfg.Network == "" {
		cfg.Network = "wisp"
	}
	if cfg.Owner == "" {
		return nil, errors.New("docker: an owner ID is required")
	}
	if cfg.PidsLimit == 0 {
		cfg.PidsLimit = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	d := &Docker{cfg: cfg, cli: cli, log: cfg.Logger.With("component", "docker")}
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		_ = cli.Close()
		return nil, core.Unavailablef("cannot reach the Docker Engine at %s: %v (is dockerd running, and may this user use it?)", cli.DaemonHost(), err)
	}
	if strings.Contains(info.Info.OperatingSystem, "Docker Desktop") && cfg.Network != HostNetwork && !d.cfg.Publish {
		d.cfg.Publish = true
		d.log.Info("Docker Desktop: container addresses are not reachable from the host; publishing ports on 127.0.0.1")
	}
	gateway := ""
	if cfg.Network != HostNetwork {
		if gateway, err = d.ensureNetwork(ctx); err != nil {
			_ = cli.Close()
			return nil, err
		}
	}
	d.routerURL = d.routerURLFor(gateway, strings.Contains(info.Info.OperatingSystem, "Docker Desktop"))
	if cfg.Sandboxes > 0 && cfg.Network != HostNetwork && !d.cfg.Publish {
		if d.pool, err = d.openPool(ctx, cfg.Sandboxes, info.Info.Architecture); err != nil {
			d.log.Warn("network sandboxes are off: instances start on the network directly, which is slower", "err", err)
		}
	}
	d.log.Info("docker runtime ready", "engine", info.Info.ServerVersion, "api", cli.ClientVersion(),
		"network", cfg.Network, "publish", d.cfg.Publish, "sandboxes", d.pool != nil)
	return d, nil
}

// Close removes the free sandboxes and releases the client.
func (d *Docker) Close() error {
	if d.pool != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		d.pool.close(ctx)
		cancel()
	}
	return d.cli.Close()
}

// NetworkMode describes how instances are reached, for logs and docs.
func (d *Docker) NetworkMode() string {
	switch {
	case d.cfg.Network == HostNetwork:
		return "host"
	case d.cfg.Publish:
		return "publish"
	case d.pool != nil:
		return "bridge with sandboxes"
	}
	return "bridge"
}

// ResolveImage implements runtime.Runtime.
func (d *Docker) ResolveImage(ctx context.Context, ref string) (string, error) {
	res, err := d.cli.ImageInspect(ctx, ref)
	if err == nil {
		return res.ID, nil
	}
	if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("docker: inspect image %s: %w", ref, err)
	}
	if !d.cfg.Pull {
		return "", core.Invalidf("image", "image %q is not present on this machine; build it (docker build -t %s .) or pull it first, or start wisp with --docker-pull", ref, ref)
	}
	rc, err := d.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return "", core.Invalidf("image", "image %q is not present on this machine and cannot be pulled: %v", ref, err)
	}
	_, _ = io.Copy(io.Discard, rc)
	_ = rc.Close()
	res, err = d.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", core.Invalidf("image", "image %q is not present on this machine and cannot be pulled: %v", ref, err)
	}
	return res.ID, nil
}

func containerName(id string) string { return "wisp-" + id }

// Start implements runtime.Runtime: create, then start.
func (d *Docker) Start(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	in, sb, err := d.createAndStart(ctx, spec, true)
	if err != nil && sb != "" && ctx.Err() == nil && !d.running(ctx, sb) {
		// The sandbox died between the pool's take and this start (killed
		// by hand, say): not the instance's fault. Start it once more, on
		// the network directly, rather than fail the start (which would
		// hold the version's starts back).
		d.log.Warn("the instance's sandbox is gone; starting it on the network directly", "instance", spec.ID, "sandbox", sb, "err", err)
		in, _, err = d.createAndStart(ctx, spec, false)
	}
	return in, err
}

// createAndStart creates and starts the container of spec, in a sandbox
// from the pool if useSandbox and one is free, and returns the sandbox's
// name ("" for none). On failure nothing is left behind.
func (d *Docker) createAndStart(ctx context.Context, spec runtime.InstanceSpec, useSandbox bool) (runtime.Instance, string, error) {
	created, sb, err := d.create(ctx, spec, useSandbox)
	if err != nil {
		return runtime.Instance{}, sb, err
	}
	if d.beforeStart != nil {
		d.beforeStart(sb)
	}
	in, err := d.StartCreated(ctx, spec.ID)
	if err != nil {
		d.removeQuietly(ctx, created)
		d.releaseSandbox(ctx, spec.ID)
		return runtime.Instance{}, sb, err
	}
	return in, sb, nil
}

// running reports whether container name runs (paused counts: its
// namespace is there).
func (d *Docker) running(ctx context.Context, name string) bool {
	res, err := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	return err == nil && res.Container.State != nil && res.Container.State.Running
}

// Create implements runtime.Precreator. Host-network instances are not
// created ahead: their port would have to stay reserved until the start.
func (d *Docker) Create(ctx context.Context, spec runtime.InstanceSpec) (runtime.Instance, error) {
	if d.cfg.Network == HostNetwork {
		return runtime.Instance{}, errors.New("docker: host-network instances are not created ahead of time")
	}
	if _, _, err := d.create(ctx, spec, true); err != nil {
		return runtime.Instance{}, err
	}
	in, err := d.Inspect(ctx, spec.ID)
	if err != nil {
		d.removeQuietly(ctx, containerName(spec.ID))
		d.releaseSandbox(ctx, spec.ID)
	}
	return in, err
}

// StartCreated implements runtime.Precreator.
func (d *Docker) StartCreated(ctx context.Context, id string) (runtime.Instance, error) {
	if _, err := d.cli.ContainerStart(ctx, containerName(id), client.ContainerStartOptions{}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return runtime.Instance{}, core.NotFoundf("instance %s not found", id)
		}
		return runtime.Instance{}, fmt.Errorf("docker: start container for %s: %w", id, err)
	}
	return d.Inspect(ctx, id)
}

func (d *Docker) removeQuietly(ctx context.Context, containerID string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, _ = d.cli.ContainerRemove(rctx, containerID, client.ContainerRemoveOptions{Force: true})
}

// create creates the container of spec, in a sandbox from the pool if
// useSandbox and one is free, and returns its container ID and the
// sandbox's name ("" for none).
func (d *Docker) create(ctx context.Context, spec runtime.InstanceSpec, useSandbox bool) (id, sandbox string, err error) {
	port := spec.Port
	if d.cfg.Network == HostNetwork {
		p, err := freePort(ctx)
		if err != nil {
			return "", "", fmt.Errorf("docker: pick a port for %s: %w", spec.ID, err)
		}
		port = p
	}
	env := append([]string(nil), spec.Env...)
	if !hasEnv(env, "PORT") || d.cfg.Network == HostNetwork {
		env = append(env, "PORT="+strconv.Itoa(port))
	}
	if d.routerURL != "" && !hasEnv(env, EnvRouterURL) {
		env = append(env, EnvRouterURL+"="+d.routerURL)
	}
	cport, err := network.ParsePort(strconv.Itoa(port) + "/tcp")
	if err != nil {
		return "", "", fmt.Errorf("docker: port %d: %w", port, err)
	}
	cfg := &container.Config{
		Image:        spec.Image,
		Env:          env,
		ExposedPorts: network.PortSet{cport: {}},
		Labels: map[string]string{
			runtime.LabelManaged:       "true",
			runtime.LabelOwner:         d.cfg.Owner,
			runtime.LabelService:       spec.Service,
			runtime.LabelVersionID:     strconv.FormatInt(spec.VersionID, 10),
			runtime.LabelVersionNumber: strconv.Itoa(spec.VersionNumber),
			runtime.LabelInstance:      spec.ID,
		},
	}
	if len(spec.Command) > 0 {
		cfg.Entrypoint = spec.Command
	}
	if len(spec.Args) > 0 {
		cfg.Cmd = spec.Args
	}
	pids := d.cfg.PidsLimit
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(d.cfg.Network),
		SecurityOpt: []string{"no-new-privileges"},
		Resources: container.Resources{
			Memory:    spec.MemoryLimit,
			NanoCPUs:  int64(spec.CPULimit * 1e9),
			PidsLimit: &pids,
		},
	}
	if d.cfg.Publish && d.cfg.Network != HostNetwork {
		host.PortBindings = network.PortMap{cport: {{HostIP: netip.MustParseAddr("127.0.0.1")}}}
	}
	if d.pool != nil && useSandbox {
		if sb, ok := d.pool.take(spec.ID); ok {
			// The sandbox's namespace: no ports to expose, the engine
			// refuses them with this network mode.
			host.NetworkMode = container.NetworkMode("container:" + sb.name)
			cfg.ExposedPorts = nil
			cfg.Labels[LabelSandbox] = sb.name
			sandbox = sb.name
		} else {
			d.log.Debug("no free sandbox; creating the instance on the network directly", "instance", spec.ID)
		}
	}
	// Creation is not cancelled halfway: a create cancelled on the client
	// side can still finish in the engine after the caller cleaned up,
	// leaving a container behind. It is short; bound it instead.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	created, err := d.cli.ContainerCreate(cctx, client.ContainerCreateOptions{Name: containerName(spec.ID), Config: cfg, HostConfig: host})
	if err != nil {
		d.releaseSandbox(ctx, spec.ID)
		if cerrdefs.IsNotFound(err) {
			return "", sandbox, fmt.Errorf("image %s of version %d (%s) is no longer on this machine; rebuild or pull it and create a new version", shortID(spec.Image), spec.VersionNumber, spec.ImageRef)
		}
		return "", sandbox, fmt.Errorf("docker: create container for %s: %w", spec.ID, err)
	}
	return created.ID, sandbox, nil
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Stop implements runtime.Runtime.
func (d *Docker) Stop(ctx context.Context, id string, grace time.Duration) error {
	sandbox := ""
	if res, err := d.cli.ContainerInspect(ctx, containerName(id), client.ContainerInspectOptions{}); err == nil {
		if res.Container.Config != nil {
			sandbox = res.Container.Config.Labels[LabelSandbox]
		}
		// A frozen process cannot handle SIGTERM: thaw it first.
		if res.Container.State != nil && res.Container.State.Paused {
			_, _ = d.cli.ContainerUnpause(ctx, containerName(id), client.ContainerUnpauseOptions{})
		}
	}
	secs := int(grace.Round(time.Second) / time.Second)
	_, err := d.cli.ContainerStop(ctx, containerName(id), client.ContainerStopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Warn("stop failed; removing by force", "instance", id, "err", err)
	}
	_, err = d.cli.ContainerRemove(ctx, containerName(id), client.ContainerRemoveOptions{Force: true})
	switch {
	case err == nil || cerrdefs.IsNotFound(err):
		err = nil
	case cerrdefs.IsConflict(err):
		// Another removal is in progress (the engine says so while it
		// tears the container down): wait for it, so that "removed" holds.
		err = d.waitGone(ctx, id)
	default:
		return fmt.Errorf("docker: remove %s: %w", id, err)
	}
	if err == nil {
		// After the instance: it must not outlive its network.
		switch {
		case d.pool != nil:
			d.pool.release(ctx, id, sandbox)
		case sandbox != "": // made by a run with sandboxes on
			d.removeQuietly(ctx, sandbox)
		}
	}
	return err
}

// releaseSandbox removes instance id's sandbox, if it has one.
func (d *Docker) releaseSandbox(ctx context.Context, id string) {
	if d.pool != nil {
		d.pool.release(ctx, id, "")
	}
}

// sandboxAddr returns the address of sandbox name on the network.
func (d *Docker) sandboxAddr(ctx context.Context, name string) string {
	if d.pool != nil {
		return d.pool.addr(ctx, name)
	}
	return inspectAddr(ctx, d, name)
}

// waitGone waits until the engine no longer knows instance id.
func (d *Docker) waitGone(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := d.cli.ContainerInspect(ctx, containerName(id), client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker: %s is still being removed: %w", id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Inspect implements runtime.Runtime.
func (d *Docker) Inspect(ctx context.Context, id string) (runtime.Instance, error) {
	res, err := d.cli.ContainerInspect(ctx, containerName(id), client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return runtime.Instance{}, core.NotFoundf("instance %s not found", id)
	}
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: inspect %s: %w", id, err)
	}
	c := res.Container
	in := instanceFromLabels(c.ID, c.Config.Labels)
	if c.State != nil {
		in.State = mapState(string(c.State.Status))
		in.ExitCode = c.State.ExitCode
		in.StartedAt, _ = time.Parse(time.RFC3339Nano, c.State.StartedAt)
	}
	switch sb := c.Config.Labels[LabelSandbox]; {
	case sb != "":
		if a := d.sandboxAddr(ctx, sb); a != "" {
			in.Addr = net.JoinHostPort(a, envPort(c.Config.Env))
		}
	case c.NetworkSettings != nil:
		in.Addr = d.addr(c.NetworkSettings.Networks, c.NetworkSettings.Ports, c.Config.Env)
	}
	in.Proxied = d.cfg.Publish && d.cfg.Network != HostNetwork
	return in, nil
}

// addr works out where the router reaches a container.
func (d *Docker) addr(nets map[string]*network.EndpointSettings, ports network.PortMap, env []string) string {
	port := envPort(env)
	switch {
	case d.cfg.Network == HostNetwork:
		return net.JoinHostPort("127.0.0.1", port)
	case d.cfg.Publish:
		for p, bindings := range ports {
			if strconv.Itoa(int(p.Num())) == port {
				for _, b := range bindings {
					if b.HostPort != "" {
						return net.JoinHostPort("127.0.0.1", b.HostPort)
					}
				}
			}
		}
		return ""
	}
	if ep, ok := nets[d.cfg.Network]; ok && ep != nil && ep.IPAddress.IsValid() {
		return net.JoinHostPort(ep.IPAddress.String(), port)
	}
	return ""
}

// envPort returns $PORT of a container's environment.
func envPort(env []string) string {
	port := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PORT="); ok {
			port = v
		}
	}
	return port
}

func instanceFromLabels(containerID string, labels map[string]string) runtime.Instance {
	vid, _ := strconv.ParseInt(labels[runtime.LabelVersionID], 10, 64)
	vnum, _ := strconv.Atoi(labels[runtime.LabelVersionNumber])
	return runtime.Instance{
		ID:            labels[runtime.LabelInstance],
		ContainerID:   containerID,
		Service:       labels[runtime.LabelService],
		VersionID:     vid,
		VersionNumber: vnum,
	}
}

func mapState(s string) runtime.State {
	switch s {
	case "running", "restarting":
		return runtime.StateRunning
	case "paused":
		return runtime.StatePaused
	case "created":
		return runtime.StateCreated
	}
	return runtime.StateExited
}

// List implements runtime.Runtime.
func (d *Docker) List(ctx context.Context) ([]runtime.Instance, error) {
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", runtime.LabelManaged+"=true", runtime.LabelOwner+"="+d.cfg.Owner),
	})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	out := make([]runtime.Instance, 0, len(res.Items))
	// Sandboxes come in the same list (they carry no instance label).
	var sandboxes []container.Summary
	up := map[string]bool{}   // running sandboxes by name
	used := map[string]bool{} // sandboxes the instances name
	for _, c := range res.Items {
		if c.Labels[LabelRole] == RoleSandbox {
			sandboxes = append(sandboxes, c)
			up[summaryName(c)] = c.State == container.StateRunning
		} else if sb := c.Labels[LabelSandbox]; sb != "" {
			used[sb] = true
		}
	}
	for _, c := range res.Items {
		in := instanceFromLabels(c.ID, c.Labels)
		if in.ID == "" {
			continue
		}
		in.State = mapState(string(c.State))
		if sb := c.Labels[LabelSandbox]; sb != "" && !up[sb] && (in.State == runtime.StateRunning || in.State == runtime.StatePaused) {
			// Its sandbox is gone (killed while this Wisp was not
			// watching): the instance has no network left. It is
			// reported as exited and taken down.
			d.log.Warn("an instance's sandbox is not running: the instance lost its network, stopping it", "instance", in.ID, "sandbox", sb)
			d.killInstance(ctx, in.ID)
			in.State = runtime.StateExited
			out = append(out, in)
			continue
		}
		in.StartedAt = time.Unix(c.Created, 0)
		if in.State == runtime.StateRunning || in.State == runtime.StatePaused {
			// The summary lacks the environment (and so $PORT); inspect.
			if full, err := d.Inspect(ctx, in.ID); err == nil {
				in = full
			}
		}
		out = append(out, in)
	}
	if d.pool != nil {
		d.pool.sweep(ctx, sandboxes, used)
	}
	return out, nil
}

// Logs implements runtime.Runtime: the engine's log stream with
// timestamps, demultiplexed into lines (see logs.go).
func (d *Docker) Logs(ctx context.Context, id string, opts runtime.LogOptions) (runtime.LogReader, error) {
	o := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: opts.Follow, Tail: "all"}
	if opts.Tail > 0 {
		o.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		o.Since = opts.Since.UTC().Format(time.RFC3339Nano)
	}
	rc, err := d.cli.ContainerLogs(ctx, containerName(id), o)
	if cerrdefs.IsNotFound(err) {
		return nil, core.NotFoundf("instance %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("docker: logs of %s: %w", id, err)
	}
	return newLogReader(rc, opts.Coalesce), nil
}

// CPU weights (cgroup cpu.shares): Docker's default, and the one a
// background instance gets, the lowest the kernel takes, so a busy
// primary wins nearly every contended slice.
const (
	defaultCPUShares    = 1024
	backgroundCPUShares = 2
)

// SetBackground implements runtime.Weigher.
func (d *Docker) SetBackground(ctx context.Context, id string, background bool) error {
	shares := int64(defaultCPUShares)
	if background {
		shares = backgroundCPUShares
	}
	_, err := d.cli.ContainerUpdate(ctx, containerName(id), client.ContainerUpdateOptions{Resources: &container.Resources{CPUShares: shares}})
	if cerrdefs.IsNotFound(err) {
		return core.NotFoundf("instance %s not found", id)
	}
	if err != nil {
		return fmt.Errorf("docker: set the CPU weight of %s: %w", id, err)
	}
	return nil
}

// Pause implements runtime.Pauser.
func (d *Docker) Pause(ctx context.Context, id string) error {
	_, err := d.cli.ContainerPause(ctx, containerName(id), client.ContainerPauseOptions{})
	if cerrdefs.IsNotFound(err) {
		return core.NotFoundf("instance %s not found", id)
	}
	if err != nil {
		return fmt.Errorf("docker: pause %s: %w", id, err)
	}
	return nil
}

// Unpause implements runtime.Pauser.
func (d *Docker) Unpause(ctx context.Context, id string) error {
	_, err := d.cli.ContainerUnpause(ctx, containerName(id), client.ContainerUnpauseOptions{})
	if cerrdefs.IsNotFound(err) {
		return core.NotFoundf("instance %s not found", id)
	}
	if err != nil {
		return fmt.Errorf("docker: unpause %s: %w", id, err)
	}
	return nil
}

// Watch implements runtime.Watcher with the engine's event stream.
func (d *Docker) Watch(ctx context.Context) (<-chan runtime.Event, <-chan error) {
	out := make(chan runtime.Event, 64)
	errc := make(chan error, 1)
	res := d.cli.Events(ctx, client.EventsListOptions{Filters: client.Filters{}.
		Add("type", string(events.ContainerEventType)).
		Add("label", runtime.LabelManaged+"=true", runtime.LabelOwner+"="+d.cfg.Owner)})
	go func() {
		for {
			select {
			case <-ctx.Done():
				errc <- nil
				return
			case err := <-res.Err:
				if ctx.Err() != nil {
					err = nil
				}
				errc <- err
				return
			case m := <-res.Messages:
				id := m.Actor.Attributes[runtime.LabelInstance]
				if id == "" {
					continue
				}
				var e runtime.Event
				switch m.Action {
				case events.ActionDie:
					code, _ := strconv.Atoi(m.Actor.Attributes["exitCode"])
					e = runtime.Event{Kind: runtime.EventDied, InstanceID: id, ExitCode: code}
				case events.ActionDestroy:
					e = runtime.Event{Kind: runtime.EventRemoved, InstanceID: id}
					// Removed behind Wisp's back, its sandbox would stay.
					d.releaseSandbox(ctx, id)
				case events.ActionOOM:
					e = runtime.Event{Kind: runtime.EventOOM, InstanceID: id}
				case events.ActionPause:
					e = runtime.Event{Kind: runtime.EventPaused, InstanceID: id}
				case events.ActionUnPause:
					e = runtime.Event{Kind: runtime.EventUnpaused, InstanceID: id}
				default:
					continue
				}
				select {
				case out <- e:
				case <-ctx.Done():
				}
			}
		}
	}()
	return out, errc
}
