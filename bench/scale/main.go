// Command scale measures how Wisp's control plane grows with the number of
// services: it starts the wisp binary as its own process (so that its RSS
// is the daemon's alone), creates services with one version each through
// the admin API up to -n, and at each size of -sizes measures
//
//   - the time to create one service with its version (the 100th, the
//     1,000th, the 10,000th, and the median of the 20 around each);
//   - an admin change until the router serves it: a PUT of traffic that
//     moves a service from one version to the other, then requests through
//     the router until one is answered by the new version, p50 and p99 over
//     -changes changes (both versions' instances are kept running, so no
//     cold start is measured);
//   - the daemon's resident memory;
//
// and prints the growth ratios between the sizes. Run it with make
// bench-scale (it needs the Docker Engine for the two instances).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

const image = "wisp-greeter:bench"

func main() {
	wisp := flag.String("wisp", "bin/wisp", "the wisp binary to measure")
	n := flag.Int("n", 10000, "services to create")
	sizesFlag := flag.String("sizes", "100,1000,10000", "sizes at which to measure")
	changes := flag.Int("changes", 60, "admin changes measured at each size")
	flag.Parse()
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 1 || v > *n {
			fmt.Fprintf(os.Stderr, "scale: bad size %q (1 to -n)\n", s)
			os.Exit(2)
		}
		sizes = append(sizes, v)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *wisp, *n, sizes, *changes); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type point struct {
	size          int
	create        time.Duration // the size-th create
	createMedian  time.Duration // median of the 20 creates around it
	changeP50     time.Duration
	changeP99     time.Duration
	rssMB         float64
	changeSamples int
}

func run(ctx context.Context, wisp string, n int, sizes []int, changes int) error {
	if err := dockertest.Ping(ctx); err != nil {
		return fmt.Errorf("no Docker Engine: %w", err)
	}
	fmt.Printf("building %s (static Go binary, FROM scratch)…\n", image)
	if _, err := dockertest.BuildGoImage(ctx, "./testdata/greeter", image); err != nil {
		return err
	}
	d, err := startDaemon(ctx, wisp)
	if err != nil {
		return err
	}
	defer d.stop()
	c := apiclient.New(d.admin, d.token)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second}

	// The service whose traffic the changes move: two versions, both kept
	// running, so that what is measured is the change, not a cold start.
	long := core.Duration(time.Hour)
	zero := core.Duration(0)
	if _, err := c.CreateService(ctx, "probe", core.PolicyPatch{IdleTimeout: &long, PauseAfter: &zero}); err != nil {
		return err
	}
	for _, g := range []string{"one", "two"} {
		if _, err := c.CreateVersion(ctx, "probe", core.VersionSpec{Image: image, Env: []string{"GREETING=" + g}}); err != nil {
			return err
		}
	}
	for _, v := range []string{"1", "2"} {
		if _, err := routerGet(ctx, hc, d.router, v); err != nil {
			return fmt.Errorf("warm version %s: %w", v, err)
		}
	}

	fmt.Printf("creating %d services with a version each through the API, measuring at %v…\n", n, sizes)
	creates := make([]time.Duration, 0, n)
	var points []point
	next := 0
	began := time.Now()
	for i := 1; i <= n; i++ {
		t0 := time.Now()
		name := fmt.Sprintf("svc-%05d", i)
		if _, err := c.CreateService(ctx, name, core.PolicyPatch{}); err != nil {
			return fmt.Errorf("create service %d: %w", i, err)
		}
		if _, err := c.CreateVersion(ctx, name, core.VersionSpec{Image: image}); err != nil {
			return fmt.Errorf("create version of service %d: %w", i, err)
		}
		creates = append(creates, time.Since(t0))
		if i%1000 == 0 {
			fmt.Printf("  %6d services, %s\n", i, time.Since(began).Round(time.Second))
		}
		if next < len(sizes) && i == sizes[next] {
			// Let the creates around the size finish first.
			p := point{size: i}
			if p.changeP50, p.changeP99, p.changeSamples, err = measureChanges(ctx, c, hc, d.router, changes); err != nil {
				return err
			}
			if p.rssMB, err = rssMB(d.pid()); err != nil {
				return err
			}
			points = append(points, p)
			next++
		}
	}
	for i := range points {
		s := points[i].size
		points[i].create = creates[s-1]
		lo, hi := max(0, s-10), min(len(creates), s+10)
		window := append([]time.Duration(nil), creates[lo:hi]...)
		points[i].createMedian = pct(window, 50)
	}
	report(points, n, time.Since(began))
	return nil
}

// measureChanges moves the probe service's traffic back and forth and
// times each move until the router serves it.
func measureChanges(ctx context.Context, c *apiclient.Client, hc *http.Client, router string, n int) (p50, p99 time.Duration, samples int, err error) {
	var ds []time.Duration
	for i := range n {
		want := strconv.Itoa(2 - i%2) // 2, 1, 2, …
		body := map[string]any{"weights": []map[string]int{{"version": 3 - atoi(want), "percent": 0}, {"version": atoi(want), "percent": 100}}}
		t0 := time.Now()
		if _, err := c.Raw(ctx, http.MethodPut, "/v1/services/probe/traffic", body); err != nil {
			return 0, 0, 0, fmt.Errorf("change %d: %w", i, err)
		}
		deadline := t0.Add(10 * time.Second)
		for {
			got, err := routerGet(ctx, hc, router, "")
			if err != nil {
				return 0, 0, 0, err
			}
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				return 0, 0, 0, fmt.Errorf("change %d: the router still serves version %s 10s later", i, got)
			}
		}
		ds = append(ds, time.Since(t0))
	}
	return pct(ds, 50), pct(ds, 99), len(ds), nil
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// routerGet sends one request to the probe service (pinned to version pin
// when set) and returns the version that answered.
func routerGet(ctx context.Context, hc *http.Client, router, pin string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+router+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = "probe.localhost"
	if pin != "" {
		req.Header.Set("Wisp-Version", pin)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("router answered %d", resp.StatusCode)
	}
	return resp.Header.Get("Wisp-Version"), nil
}

func report(ps []point, n int, total time.Duration) {
	fmt.Printf("\n%d services created in %s (%.0f/s, a service and a version each)\n\n", n, total.Round(time.Second), float64(n)/total.Seconds())
	fmt.Printf("%-9s %12s %14s %16s %16s %9s\n", "services", "create (nth)", "create (median)", "change live p50", "change live p99", "RSS")
	for _, p := range ps {
		fmt.Printf("%-9d %9.2f ms %11.2f ms %13.2f ms %13.2f ms %6.0f MB\n", p.size, ms(p.create), ms(p.createMedian),
			ms(p.changeP50), ms(p.changeP99), p.rssMB)
	}
	if len(ps) < 2 {
		return
	}
	first, last := ps[0], ps[len(ps)-1]
	fmt.Printf("\ngrowth from %d to %d services:\n", first.size, last.size)
	fmt.Printf("  create, median of 20:   %.2f×  (aim: the %dth within 2× the %dth)\n", ratio(last.createMedian, first.createMedian), last.size, first.size)
	fmt.Printf("  create, the one:        %.2f×\n", ratio(last.create, first.create))
	fmt.Printf("  admin change live p50:  %.2f×  (aim: ≤ 20 ms p50 at %d: %.2f ms)\n", ratio(last.changeP50, first.changeP50), last.size, ms(last.changeP50))
	fmt.Printf("  RSS:                    %.2f×  (aim: ≤ 300 MB at %d: %.0f MB)\n", last.rssMB/first.rssMB, last.size, last.rssMB)
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// rssMB reads a process's resident set size from /proc.
func rssMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read the daemon's RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				return 0, err
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

type daemon struct {
	cmd           *exec.Cmd
	dir           string
	admin, router string
	token         string
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// startDaemon runs wisp serve on free loopback ports with a fresh data dir.
func startDaemon(ctx context.Context, wisp string) (*daemon, error) {
	dir, err := os.MkdirTemp("", "wisp-bench-scale-")
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	d := &daemon{dir: dir, admin: freeAddr(), router: freeAddr(), token: hex.EncodeToString(tok)}
	d.cmd = exec.CommandContext(ctx, wisp, "serve", "--data-dir", dir, "--admin-addr", d.admin, "--addr", d.router,
		"--admin-token", d.token, "--docker-network", "wisp-bench", "--log-level", "warn")
	log, err := os.Create(filepath.Join(dir, "wisp.log"))
	if err != nil {
		return nil, err
	}
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (build it with make build)", wisp, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + d.admin + "/healthz") //nolint:noctx // a loopback health check
		if err == nil {
			_ = resp.Body.Close()
			return d, nil
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("wisp did not answer within 30s; its log is %s", log.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
	}
	_ = os.RemoveAll(d.dir)
}

func freeAddr() string {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
