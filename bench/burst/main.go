// Command burst measures how long a burst takes to bring a scaled-to-zero
// version to 10 ready instances through Wisp on the real engine (issue 14:
// sandboxes shorten scale-ups), in one run on this machine, for several
// settings of the Docker runtime's sandbox pool (--docker-sandboxes) and
// the autoscaler's parallel starts (--parallel-starts) and early scale-ups
// (--early-scale-up), against the defaults before issue 14 (no pool, 3
// parallel starts, scale-ups at the autoscaler's ticks only) measured in
// the same run. The load is issue 4's acceptance test: 200 workers sending
// GET /sleep?ms=100 to a version with max_concurrency 10 and
// max_instances 20. Run it with make bench-burst.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wisp-run/wisp/bench"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

const (
	image   = "wisp-greeter:bench"
	network = "wisp-bench"
	workers = 200
	target  = 10
	// limit bounds one burst: past it the row fails.
	limit = 30 * time.Second
)

// phases are the times, from the load's start, to the first ready
// instance, to the first scale-up (a second instance listed, in any
// state), and to target ready instances.
type phases struct {
	firstReady, scaleUp, ready time.Duration
}

// setting is one row: the pool size, the parallel starts, and whether
// the autoscaler scales up early (--early-scale-up) or at its ticks only.
type setting struct {
	sandboxes, parallel int
	tickOnly            bool
}

func (s setting) String() string {
	when := "early"
	if s.tickOnly {
		when = "ticks"
	}
	return fmt.Sprintf("sandboxes %2d, parallel %d, %s", s.sandboxes, s.parallel, when)
}

func main() {
	n := flag.Int("n", 3, "bursts per row")
	rows := flag.String("rows", "0:3:ticks,0:3,2:3,10:3,10:6", "settings to measure, as sandboxes:parallel-starts[:ticks] (ticks: --early-scale-up=false); the first is the baseline")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	settings, err := parseRows(*rows)
	if err == nil {
		err = run(ctx, *n, settings)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "burst:", err)
		os.Exit(1)
	}
}

func parseRows(s string) ([]setting, error) {
	var out []setting
	for f := range strings.SplitSeq(s, ",") {
		parts := strings.Split(f, ":")
		var sb, par int
		var err1, err2 error
		if len(parts) >= 2 {
			sb, err1 = strconv.Atoi(parts[0])
			par, err2 = strconv.Atoi(parts[1])
		}
		if len(parts) < 2 || len(parts) > 3 || len(parts) == 3 && parts[2] != "ticks" ||
			err1 != nil || err2 != nil || sb < 0 || sb > 64 || par < 1 || par > 100 {
			return nil, fmt.Errorf("-rows: %q: want sandboxes:parallel-starts[:ticks], e.g. 10:3 or 0:3:ticks (sandboxes 0..64, parallel starts 1..100)", f)
		}
		out = append(out, setting{sandboxes: sb, parallel: par, tickOnly: len(parts) == 3})
	}
	if len(out) == 0 {
		return nil, errors.New("-rows: no settings")
	}
	return out, nil
}

func run(ctx context.Context, n int, settings []setting) error {
	if err := dockertest.Ping(ctx); err != nil {
		return fmt.Errorf("no Docker Engine: %w", err)
	}
	fmt.Printf("building %s (static Go binary, FROM scratch)…\n", image)
	if _, err := dockertest.BuildGoImage(ctx, "./testdata/greeter", image); err != nil {
		return err
	}
	if _, err := dockertest.InspectNetwork(ctx, network); err != nil {
		if err := dockertest.CreateNetwork(ctx, network, nil, nil); err != nil {
			return err
		}
	}
	base, err := dockertest.StartBaseline(ctx, image, network, 8080, target-1, 3)
	if err != nil {
		return err
	}
	fmt.Printf("the bare engine starts %d containers, 3 at a time, in %.0f ms\n", target-1, ms(base))
	fmt.Printf("measuring %d bursts per row: %d workers, GET /sleep?ms=100, max_concurrency 10, until %d instances are ready…\n",
		n, workers, target)
	type result struct {
		s                        setting
		samples, first, scaleUps []time.Duration
	}
	var results []result
	for _, s := range settings {
		r := result{s: s}
		for i := range n {
			p, err := burst(ctx, s, i)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			r.samples = append(r.samples, p.ready)
			r.first = append(r.first, p.firstReady)
			r.scaleUps = append(r.scaleUps, p.scaleUp)
		}
		results = append(results, r)
		fmt.Printf("  %-36s median %6.0f ms   (%s); first ready %4.0f ms, scale-up listed %4.0f ms\n", s,
			ms(median(r.samples)), list(r.samples), ms(median(r.first)), ms(median(r.scaleUps)))
	}
	fmt.Println("ratios (median to 10 ready instances / the first row's; aim: at most 0.50, twice as fast):")
	b := median(results[0].samples)
	for _, r := range results[1:] {
		fmt.Printf("  %-36s %.2f\n", r.s, float64(median(r.samples))/float64(b))
	}
	return nil
}

// burst starts Wisp with s, deploys a version, and times the load's start
// to target ready instances. Wisp and the service are gone after it.
func burst(ctx context.Context, s setting, i int) (p phases, err error) {
	cfg := config.Default()
	cfg.DockerNetwork = network
	cfg.DockerSandboxes = s.sandboxes
	cfg.ParallelStarts = s.parallel
	cfg.EarlyScaleUp = !s.tickOnly
	cfg.StopGrace = time.Second
	w, err := bench.StartWisp(ctx, "burst", cfg)
	if err != nil {
		return p, err
	}
	defer w.Stop()
	c, router := w.Client, w.Router
	if s.sandboxes > 0 {
		if err := w.WaitPool(ctx, s.sandboxes); err != nil {
			return p, err
		}
	}
	name := "burst-" + strconv.Itoa(i)
	maxI, idle := 20, core.Duration(time.Minute)
	if _, err := c.CreateService(ctx, name, core.PolicyPatch{MaxInstances: &maxI, IdleTimeout: &idle}); err != nil {
		return p, err
	}
	if _, err := c.CreateVersion(ctx, name, core.VersionSpec{Image: image, MaxConcurrency: 10}); err != nil {
		return p, err
	}
	defer func() { _ = c.DeleteService(context.WithoutCancel(ctx), name) }()

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 30 * time.Second}
	lctx, stopLoad := context.WithTimeout(ctx, limit)
	defer stopLoad()
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for lctx.Err() == nil {
				req, _ := http.NewRequestWithContext(lctx, "GET", "http://"+router+"/sleep?ms=100", nil)
				req.Host = name + ".localhost"
				resp, err := hc.Do(req)
				if err != nil {
					if lctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	var reached time.Duration
	for lctx.Err() == nil && reached == 0 {
		ins, err := c.Instances(lctx, name)
		if err == nil {
			ready := 0
			for _, in := range ins {
				if in.State == core.InstanceReady {
					ready++
				}
			}
			now := time.Since(start)
			if ready >= 1 && p.firstReady == 0 {
				p.firstReady = now
			}
			if len(ins) >= 2 && p.scaleUp == 0 {
				p.scaleUp = now
			}
			if ready >= target {
				reached = now
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopLoad()
	wg.Wait()
	hc.CloseIdleConnections()
	if reached == 0 {
		return p, fmt.Errorf("fewer than %d ready instances after %s", target, limit)
	}
	if n := failed.Load(); n > 0 {
		return p, fmt.Errorf("%d requests failed during the burst (every one must answer 200)", n)
	}
	p.ready = reached
	return p, nil
}

// waitPool waits until the daemon's /metrics shows n free sandboxes.
func median(s []time.Duration) time.Duration {
	c := append([]time.Duration(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[len(c)/2]
}

func list(s []time.Duration) string {
	var parts []string
	for _, d := range s {
		parts = append(parts, strconv.FormatFloat(ms(d), 'f', 0, 64))
	}
	return strings.Join(parts, ", ") + " ms"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
