// Command coldstart measures a cold start, request to first byte, through
// Wisp against the same start done by hand, in one run on this machine:
//
//   - docker run -d, docker inspect for the address, then polling until the
//     first successful request (what a shell script does);
//   - the Docker API (create, start, inspect, then polling) through the SDK,
//     the floor that Wisp's own path is built on;
//   - Wisp: the first request to a service with no instance, through the
//     router: the first start of a new version, and a cold start after the
//     version scaled to zero (which starts the pre-created spare), on the
//     bridge network; and after scale to zero on the host network (which
//     has no spares);
//
// and wake from pause: a request to Wisp's paused instance against the bare
// unpause plus request; and the first request to a service whose version
// keeps a paused standby (policy.standby 1). Run it with make
// bench-coldstart.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/wisp-run/wisp/bench"
	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

const (
	image   = "wisp-greeter:bench"
	network = "wisp-bench"
	label   = "wisp.bench"
)

func main() {
	n := flag.Int("n", 15, "cold starts per row")
	wakes := flag.Int("wakes", 10, "wake-from-pause samples")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *wakes); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, wakes int) error {
	if err := dockertest.Ping(ctx); err != nil {
		return fmt.Errorf("no Docker Engine: %w", err)
	}
	fmt.Printf("building %s (static Go binary, FROM scratch)…\n", image)
	if _, err := dockertest.BuildGoImage(ctx, "./testdata/greeter", image); err != nil {
		return err
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer cli.Close()
	defer cleanup(cli)
	if _, err := cli.NetworkInspect(ctx, network, client.NetworkInspectOptions{}); err != nil {
		if _, err := cli.NetworkCreate(ctx, network, client.NetworkCreateOptions{Driver: "bridge"}); err != nil {
			return err
		}
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

	fmt.Printf("measuring %d cold starts per row, one at a time…\n", n)
	rows := []row{}
	add := func(name string, f func(i int) (time.Duration, error)) error {
		r := row{name: name}
		for i := range n {
			d, err := f(i)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			r.samples = append(r.samples, d)
		}
		rows = append(rows, r)
		fmt.Printf("  %-34s p50 %7.1f ms\n", name, ms(r.p(50)))
		return nil
	}
	if err := add("docker run + first request", func(int) (time.Duration, error) { return dockerRun(ctx, hc) }); err != nil {
		return err
	}
	if err := add("Docker API create+start+ready", func(int) (time.Duration, error) { return dockerAPI(ctx, cli, hc) }); err != nil {
		return err
	}
	plain, err := startWisp(ctx, network, 0)
	if err != nil {
		return err
	}
	plainZero, err := plain.zeroStarts(ctx, hc)
	if err != nil {
		return err
	}
	if err := add("Wisp, bridge, no sandboxes, zero", func(int) (time.Duration, error) { return plainZero() }); err != nil {
		return err
	}
	plain.Stop()
	bridge, err := startWisp(ctx, network, 2)
	if err != nil {
		return err
	}
	if err := add("Wisp, bridge, new version", func(i int) (time.Duration, error) { return bridge.coldStart(ctx, hc, i) }); err != nil {
		return err
	}
	zero, err := bridge.zeroStarts(ctx, hc)
	if err != nil {
		return err
	}
	if err := add("Wisp, bridge + sandbox, after zero", func(int) (time.Duration, error) { return zero() }); err != nil {
		return err
	}
	wakeWisp, err := bridge.wakes(ctx, hc, wakes)
	if err != nil {
		return err
	}
	standby, err := bridge.standbyWakes(ctx)
	if err != nil {
		return err
	}
	if err := add("Wisp, waking a standby", func(int) (time.Duration, error) { return standby(hc) }); err != nil {
		return err
	}
	bridge.Stop()
	host, err := startWisp(ctx, "host", 0)
	if err != nil {
		return err
	}
	hostZero, err := host.zeroStarts(ctx, hc)
	if err != nil {
		return err
	}
	if err := add("Wisp, host, after scale to zero", func(int) (time.Duration, error) { return hostZero() }); err != nil {
		return err
	}
	host.Stop()
	wakeBare, err := bareWakes(ctx, cli, hc, wakes)
	if err != nil {
		return err
	}
	pCreate, pStart, pAnswer, pNone, err := profile(ctx, cli, hc, n)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}

	fmt.Printf("\nCold start, request to first byte (%d runs each)\n", n)
	fmt.Printf("%-34s %9s %9s\n", "", "p50 ms", "p90 ms")
	for _, r := range rows {
		fmt.Printf("%-34s %9.1f %9.1f\n", r.name, ms(r.p(50)), ms(r.p(90)))
	}
	run, api, nosb, first, wz, ws, wh := rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], rows[6]
	fmt.Printf("\nRatios (p50)\n")
	fmt.Printf("  Wisp with sandbox / docker run          %.2f   (aim: at most 0.40, and at most 100 ms)\n", ratio(wz.p(50), run.p(50)))
	fmt.Printf("  Wisp with sandbox / without             %.2f\n", ratio(wz.p(50), nosb.p(50)))
	fmt.Printf("  Wisp after scale to zero / Docker API   %.2f   (aim: at most 1.10)\n", ratio(wz.p(50), api.p(50)))
	fmt.Printf("  Wisp after scale to zero / docker run   %.2f   (aim: clearly below 1)\n", ratio(wz.p(50), run.p(50)))
	fmt.Printf("  Wisp new version / Docker API           %.2f\n", ratio(first.p(50), api.p(50)))
	fmt.Printf("  Wisp new version / docker run           %.2f\n", ratio(first.p(50), run.p(50)))
	fmt.Printf("  Wisp host / Wisp bridge (scale to zero) %.2f\n", ratio(wh.p(50), wz.p(50)))
	fmt.Printf("  Wisp waking a standby / after zero      %.2f   (p50 %.1f ms; aim: at most 20 ms)\n", ratio(ws.p(50), wz.p(50)), ms(ws.p(50)))
	fmt.Printf("\nWake from pause, request to first byte (%d runs each)\n", wakes)
	fmt.Printf("  bare unpause + request        p50 %6.2f ms\n", ms(wakeBare.p(50)))
	fmt.Printf("  Wisp, paused instance         p50 %6.2f ms   (+%.2f ms)\n", ms(wakeWisp.p(50)), ms(wakeWisp.p(50)-wakeBare.p(50)))
	printProfile(pCreate, pStart, pAnswer, pNone, wz)
	return nil
}

type row struct {
	name    string
	samples []time.Duration
}

func (r row) p(q int) time.Duration {
	s := append([]time.Duration(nil), r.samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*q/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// poll GETs url until it answers 200, and returns when the first byte came.
func poll(ctx context.Context, hc *http.Client, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s not ready within 30s", url)
}

func dockerRun(ctx context.Context, hc *http.Client) (time.Duration, error) {
	start := time.Now()
	out, err := exec.CommandContext(ctx, "docker", "run", "-d", "--network", network, "--label", label+"=1", image).Output()
	if err != nil {
		return 0, fmt.Errorf("docker run: %w", err)
	}
	id := strings.TrimSpace(string(out))
	ip, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").IPAddress}}", id).Output()
	if err != nil {
		return 0, fmt.Errorf("docker inspect: %w", err)
	}
	if err := poll(ctx, hc, "http://"+net.JoinHostPort(strings.TrimSpace(string(ip)), "8080")+"/"); err != nil {
		return 0, err
	}
	d := time.Since(start)
	_ = exec.CommandContext(ctx, "docker", "rm", "-f", id).Run()
	return d, nil
}

// startReady creates and starts a container through the SDK and waits for
// its first answer: the bare API path. It returns the container ID and URL;
// the caller removes the container.
func startReady(ctx context.Context, cli *client.Client, hc *http.Client) (id, url string, err error) {
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Labels: map[string]string{label: "1"}},
		HostConfig: &container.HostConfig{NetworkMode: network},
	})
	if err != nil {
		return "", "", err
	}
	if _, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return c.ID, "", err
	}
	in, err := cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		return c.ID, "", err
	}
	url = "http://" + net.JoinHostPort(in.Container.NetworkSettings.Networks[network].IPAddress.String(), "8080") + "/"
	return c.ID, url, poll(ctx, hc, url)
}

func remove(ctx context.Context, cli *client.Client, id string) {
	if id != "" {
		_, _ = cli.ContainerRemove(context.WithoutCancel(ctx), id, client.ContainerRemoveOptions{Force: true})
	}
}

func dockerAPI(ctx context.Context, cli *client.Client, hc *http.Client) (time.Duration, error) {
	start := time.Now()
	id, _, err := startReady(ctx, cli, hc)
	d := time.Since(start)
	remove(ctx, cli, id)
	return d, err
}

func bareWakes(ctx context.Context, cli *client.Client, hc *http.Client, n int) (row, error) {
	r := row{name: "bare unpause"}
	id, url, err := startReady(ctx, cli, hc)
	defer remove(ctx, cli, id)
	if err != nil {
		return r, err
	}
	c := struct{ ID string }{id}
	for range n {
		if _, err := cli.ContainerPause(ctx, c.ID, client.ContainerPauseOptions{}); err != nil {
			return r, err
		}
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		if _, err := cli.ContainerUnpause(ctx, c.ID, client.ContainerUnpauseOptions{}); err != nil {
			return r, err
		}
		if err := poll(ctx, hc, url); err != nil {
			return r, err
		}
		r.samples = append(r.samples, time.Since(start))
	}
	return r, nil
}

type wisp struct {
	*bench.Wisp
	c         *apiclient.Client
	router    string
	sandboxes int // the pool's size
}

func startWisp(ctx context.Context, netw string, sandboxes int) (*wisp, error) {
	cfg := config.Default()
	cfg.DockerNetwork = netw
	cfg.DockerSandboxes = sandboxes
	cfg.ReapInterval = 100 * time.Millisecond
	cfg.StopGrace = time.Second
	w, err := bench.StartWisp(ctx, "coldstart", cfg)
	if err != nil {
		return nil, err
	}
	return &wisp{Wisp: w, c: w.Client, router: w.Router, sandboxes: sandboxes}, nil
}

// coldStart deploys a new service (not timed) and times its first request,
// sent right after the deploy (which creates a spare in the background).
// With sandboxes, it first waits for a full pool: the previous run took two
// (its instance's and its spare's).
func (w *wisp) coldStart(ctx context.Context, hc *http.Client, i int) (time.Duration, error) {
	name := "bench-" + strconv.Itoa(i)
	if w.sandboxes > 0 {
		if err := w.WaitPool(ctx, w.sandboxes); err != nil {
			return 0, err
		}
	}
	if _, err := w.c.CreateService(ctx, name, core.PolicyPatch{}); err != nil {
		return 0, err
	}
	if _, err := w.c.CreateVersion(ctx, name, core.VersionSpec{Image: image}); err != nil {
		return 0, err
	}
	d, cold, err := w.timeGet(ctx, hc, name)
	if err != nil {
		return 0, err
	}
	if cold == "" {
		return 0, fmt.Errorf("the first request to %s reported no cold start", name)
	}
	if err := w.c.DeleteService(ctx, name); err != nil {
		return 0, err
	}
	// Like the other rows, which remove their container before the next
	// run: wait until the service's containers (its spare too) are gone,
	// so the next start does not share the engine with this teardown.
	time.Sleep(300 * time.Millisecond)
	deadline := time.Now().Add(20 * time.Second)
	for {
		left, err := dockertest.Containers(ctx, name)
		if err != nil {
			return 0, err
		}
		if len(left) == 0 {
			return d, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s still has containers 20s after its deletion: %v", name, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// timeGet times one request to service through the router, to first byte,
// and returns its Wisp-Cold-Start header.
func (w *wisp) timeGet(ctx context.Context, hc *http.Client, service string) (time.Duration, string, error) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+w.router+"/", nil)
	req.Host = service + ".localhost"
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	d := time.Since(start)
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, "", fmt.Errorf("GET %s: status %d: %s", service, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return d, resp.Header.Get("Wisp-Cold-Start"), nil
}

// zeroStarts deploys one service with a 1 s idle timeout and returns a
// function that waits until it has scaled to zero and times the next
// request, the cold start a scaled-to-zero service pays.
func (w *wisp) zeroStarts(ctx context.Context, hc *http.Client) (func() (time.Duration, error), error) {
	idle, never := core.Duration(time.Second), core.Duration(0)
	if _, err := w.c.CreateService(ctx, "bench-zero", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: &never}); err != nil {
		return nil, err
	}
	if _, err := w.c.CreateVersion(ctx, "bench-zero", core.VersionSpec{Image: image}); err != nil {
		return nil, err
	}
	if _, _, err := w.timeGet(ctx, hc, "bench-zero"); err != nil { // the first start; not counted
		return nil, err
	}
	return func() (time.Duration, error) {
		deadline := time.Now().Add(15 * time.Second)
		for {
			ins, err := w.c.Instances(ctx, "bench-zero")
			if err != nil {
				return 0, err
			}
			if len(ins) == 0 {
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("bench-zero did not scale to zero within 15s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // let the stop (and the spare) settle
		d, cold, err := w.timeGet(ctx, hc, "bench-zero")
		if err == nil && cold == "" {
			err = fmt.Errorf("the request after scale to zero reported no cold start")
		}
		return d, err
	}, nil
}

// standbyWakes deploys one service with standby 1 (idle timeout 1 s, no
// pause_after: the standby is paused once ready, and again at the idle
// timeout) and returns a function that waits until its instance is paused
// and times the next request, the first request after a quiet spell that a
// service with a standby pays. It fails if the standby was replaced rather
// than woken.
func (w *wisp) standbyWakes(ctx context.Context) (func(*http.Client) (time.Duration, error), error) {
	one, idle, never := 1, core.Duration(time.Second), core.Duration(0)
	if _, err := w.c.CreateService(ctx, "bench-standby", core.PolicyPatch{Standby: &one, IdleTimeout: &idle, PauseAfter: &never}); err != nil {
		return nil, err
	}
	if _, err := w.c.CreateVersion(ctx, "bench-standby", core.VersionSpec{Image: image}); err != nil {
		return nil, err
	}
	var id string
	return func(hc *http.Client) (time.Duration, error) {
		deadline := time.Now().Add(15 * time.Second)
		for {
			ins, err := w.c.Instances(ctx, "bench-standby")
			if err != nil {
				return 0, err
			}
			if len(ins) == 1 && ins[0].State == core.InstancePaused {
				if id != "" && ins[0].ID != id {
					return 0, fmt.Errorf("the standby %s was replaced by %s", id, ins[0].ID)
				}
				id = ins[0].ID
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("no paused standby within 15s: %+v", ins)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // let the pause itself finish
		d, _, err := w.timeGet(ctx, hc, "bench-standby")
		return d, err
	}, nil
}

// wakes times requests to a paused instance.
func (w *wisp) wakes(ctx context.Context, hc *http.Client, n int) (row, error) {
	r := row{name: "Wisp wake"}
	pause, idle := core.Duration(time.Second), core.Duration(time.Hour)
	if _, err := w.c.CreateService(ctx, "bench-wake", core.PolicyPatch{PauseAfter: &pause, IdleTimeout: &idle}); err != nil {
		return r, err
	}
	if _, err := w.c.CreateVersion(ctx, "bench-wake", core.VersionSpec{Image: image}); err != nil {
		return r, err
	}
	get := func() (time.Duration, error) {
		d, _, err := w.timeGet(ctx, hc, "bench-wake")
		return d, err
	}
	if _, err := get(); err != nil {
		return r, err
	}
	for range n {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ins, err := w.c.Instances(ctx, "bench-wake")
			if err != nil {
				return r, err
			}
			if len(ins) == 1 && ins[0].State == core.InstancePaused {
				break
			}
			if time.Now().After(deadline) {
				return r, fmt.Errorf("instance not paused within 10s: %+v", ins)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // let the pause itself finish
		d, err := get()
		if err != nil {
			return r, err
		}
		r.samples = append(r.samples, d)
	}
	return r, w.c.DeleteService(ctx, "bench-wake")
}

func cleanup(cli *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", label)})
	if err != nil {
		return
	}
	for _, c := range res.Items {
		_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
}
