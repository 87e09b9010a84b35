// Command proxy measures the router's hot path: requests per second and p50
// and p99 latency at 1 and at 50 connections, in one run, against
//
//   - the container directly (no proxy: the floor);
//   - a plain httputil.ReverseProxy with default settings (the baseline),
//     in its own process;
//   - Wisp's router (the real `wisp serve` binary, in its own process);
//   - the same router to a service whose split has 10 request rules
//     (issue 15), which no request meets, and which the request meets at
//     the last rule: the cost of evaluating rules on the hot path;
//   - the same router to a service that mirrors 10% of its requests to a
//     second version (issue 15): the primary's latency with mirroring,
//     closed-loop, and then paced at half the plain row's throughput, plain
//     and mirror in turn, five times each (at full load a copy's work is
//     taken from the primary's cores; paced, what is left is whether a
//     copy delays the primary);
//
// with the CPU time the router process spends per request, and prints the
// ratios. Run it with make bench-proxy. The load generator is this
// program; every loop is bounded in time.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wisp-run/wisp/bench"
	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
)

const image = "wisp-greeter:bench"

var (
	wispEnv    string
	pacedShare *float64
	pacedPairs *int
)

func main() {
	baseline := flag.String("baseline-proxy", "", "internal: serve a default ReverseProxy to this URL")
	listen := flag.String("listen", "", "internal: the baseline proxy's address")
	dur := flag.Duration("d", 10*time.Second, "duration of each run")
	conns := flag.String("c", "1,50", "connection counts")
	pacedShare = flag.Float64("paced", 0.5, "after the closed-loop rows, run the plain and mirror rows in turn at the last connection count, paced at this share of the plain row's throughput (0: not)")
	pacedPairs = flag.Int("paced-pairs", 5, "how many times the paced plain and mirror rows run, in turn")
	flag.StringVar(&wispEnv, "wisp-env", "", "extra environment for wisp serve, comma-separated KEY=VALUE (e.g. GOMAXPROCS=1)")
	flag.Parse()
	if *baseline != "" {
		serveBaseline(*baseline, *listen)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dur, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "proxy:", err)
		os.Exit(1)
	}
}

// serveBaseline is the baseline: httputil.ReverseProxy, default settings.
func serveBaseline(target, listen string) {
	u, err := url.Parse(target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Addr: listen, Handler: httputil.NewSingleHostReverseProxy(u), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dur time.Duration, connList string) error {
	var counts []int
	for _, s := range strings.Split(connList, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			return fmt.Errorf("bad connection count %q", s)
		}
		counts = append(counts, n)
	}
	if wispEnv != "" {
		for _, kv := range strings.Split(wispEnv, ",") {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return fmt.Errorf("-wisp-env: %q is not KEY=VALUE", kv)
			}
		}
	}
	tmp, bin, err := bench.Prepare(ctx, "proxy", image)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// Wisp, as users run it.
	admin, router := bench.FreeAddr(ctx), bench.FreeAddr(ctx)
	// Stopped with SIGINT below, not killed with the context.
	wisp := exec.CommandContext(context.WithoutCancel(ctx), bin, "serve", "--data-dir", filepath.Join(tmp, "data"), "--admin-addr", admin, "--addr", router, "--log-level", "warn")
	wisp.Stderr = os.Stderr
	if wispEnv != "" {
		wisp.Env = append(os.Environ(), strings.Split(wispEnv, ",")...)
	}
	if err := wisp.Start(); err != nil {
		return err
	}
	defer func() {
		_ = wisp.Process.Signal(syscall.SIGINT)
		_ = wisp.Wait()
	}()
	if err := bench.WaitHTTP(ctx, "http://"+admin+"/healthz"); err != nil {
		return err
	}
	token, err := os.ReadFile(filepath.Join(tmp, "data", "admin-token"))
	if err != nil {
		return err
	}
	c := apiclient.New(admin, strings.TrimSpace(string(token)))
	idle := core.Duration(time.Hour)
	one := 1
	if _, err := c.CreateService(ctx, "bench", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: new(core.Duration), MaxInstances: &one}); err != nil {
		return err
	}
	if _, err := c.CreateVersion(ctx, "bench", core.VersionSpec{Image: image}); err != nil {
		return err
	}
	warm := &target{name: "warm-up", url: "http://" + router + "/", host: "bench.localhost"}
	if _, err := warm.once(ctx, http.DefaultClient); err != nil {
		return err
	}
	if err := rulesService(ctx, c); err != nil {
		return err
	}
	warmRules := &target{name: "warm-up", url: "http://" + router + "/", host: "rules.localhost"}
	if _, err := warmRules.once(ctx, http.DefaultClient); err != nil {
		return err
	}
	if err := mirrorService(ctx, c); err != nil {
		return err
	}
	for _, h := range []string{"", "Wisp-Version: 2"} {
		warmMirror := &target{name: "warm-up", url: "http://" + router + "/", host: "mirror.localhost", header: h}
		if _, err := warmMirror.once(ctx, http.DefaultClient); err != nil {
			return err
		}
	}
	ins, err := c.Instances(ctx, "bench")
	if err != nil {
		return fmt.Errorf("instances: %w", err)
	}
	if len(ins) != 1 {
		return fmt.Errorf("want one instance of bench, got %+v", ins)
	}
	direct := "http://" + ins[0].Address + "/"

	// The baseline proxy, in its own process.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	baseAddr := bench.FreeAddr(ctx)
	base := exec.CommandContext(context.WithoutCancel(ctx), self, "-baseline-proxy", strings.TrimSuffix(direct, "/"), "-listen", baseAddr)
	base.Stderr = os.Stderr
	if err := base.Start(); err != nil {
		return err
	}
	defer func() { _ = base.Process.Kill(); _ = base.Wait() }()
	if err := bench.WaitHTTP(ctx, "http://"+baseAddr+"/"); err != nil {
		return err
	}

	targets := []*target{
		{name: "direct to the container", url: direct},
		{name: "httputil.ReverseProxy (baseline)", url: "http://" + baseAddr + "/"},
		{name: "Wisp router", url: "http://" + router + "/", host: "bench.localhost"},
		{name: "Wisp router, 10 rules, none match", url: "http://" + router + "/", host: "rules.localhost"},
		{name: "Wisp router, 10 rules, last matches", url: "http://" + router + "/", host: "rules.localhost", header: "X-Beta: 1"},
		{name: "Wisp router, mirror 10%", url: "http://" + router + "/", host: "mirror.localhost"},
		// The plain row again: the rule rows run later, on another
		// container; how much the plain row moves between its two runs
		// is the noise the rule rows are judged against.
		{name: "Wisp router, again", url: "http://" + router + "/", host: "bench.localhost"},
	}
	measure := func(t *target, n int, rate float64) (result, error) {
		cpu0 := processCPU(wisp.Process.Pid)
		r, err := t.load(ctx, n, dur, rate)
		if err != nil {
			return r, fmt.Errorf("%s at %d connections: %w", t.name, n, err)
		}
		// The warm-up second is not counted in rps but used CPU too.
		if total := r.rps * (dur + time.Second).Seconds(); total > 0 {
			r.cpu = time.Duration(float64(processCPU(wisp.Process.Pid)-cpu0) / total)
		}
		label := fmt.Sprintf("%2d conns", n)
		if rate > 0 {
			label = fmt.Sprintf("%2d @%5.0f/s", n, rate)
		}
		fmt.Printf("  %s  %-34s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  router CPU %5.1f µs/req\n", label, t.name, r.rps, ms(r.p50), ms(r.p99), us(r.cpu))
		return r, nil
	}
	results := map[int][]result{}
	for _, n := range counts {
		for _, t := range targets {
			r, err := measure(t, n, 0)
			if err != nil {
				return err
			}
			results[n] = append(results[n], r)
		}
	}
	// Paced: the plain and mirror rows again at a fixed offered rate, a
	// share of the plain row's closed-loop throughput, so the machine has
	// room left. At full load (above) every copy's work, the router's and
	// the mirror container's, is taken from the primary's two cores; at a
	// load the machine can carry, what remains is whether a copy delays
	// the primary.
	n := counts[len(counts)-1]
	rate := *pacedShare * (results[n][2].rps + results[n][6].rps) / 2
	var paced []result
	if *pacedShare > 0 {
		for range max(*pacedPairs, 1) {
			for _, t := range []*target{targets[2], targets[5]} {
				r, err := measure(t, n, rate)
				if err != nil {
					return err
				}
				paced = append(paced, r)
			}
		}
	}
	fmt.Printf("\n%-12s %-34s %10s %10s %10s %14s\n", "conns", "target", "req/s", "p50 ms", "p99 ms", "router µs/req")
	for _, n := range counts {
		for _, r := range results[n] {
			fmt.Printf("%-12d %-34s %10.0f %10.3f %10.3f %14.1f\n", n, r.name, r.rps, ms(r.p50), ms(r.p99), us(r.cpu))
		}
	}
	for _, r := range paced {
		fmt.Printf("%-12s %-34s %10.0f %10.3f %10.3f %14.1f\n", fmt.Sprintf("%d @%.0f/s", n, rate), r.name, r.rps, ms(r.p50), ms(r.p99), us(r.cpu))
	}
	fmt.Println("\nRatios")
	for _, n := range counts {
		d, b, w := results[n][0], results[n][1], results[n][2]
		fmt.Printf("  %2d conns: Wisp/baseline throughput %.2f (aim ≥ 1.30); Wisp/direct throughput %.2f; p50 added over direct %+.3f ms (aim ≤ 0.15 at 1 conn)\n",
			n, w.rps/b.rps, w.rps/d.rps, ms(w.p50-d.p50))
		again := results[n][6]
		plain := (w.rps + again.rps) / 2
		fmt.Printf("  %2d conns: noise: Wisp router again / first %.3f\n", n, again.rps/w.rps)
		for _, r := range results[n][3:6] {
			fmt.Printf("  %2d conns: %s / Wisp router (mean of both runs) throughput %.3f; p50 %+.3f ms (aim: within noise)\n",
				n, r.name, r.rps/plain, ms(r.p50-(w.p50+again.p50)/2))
		}
		m, pc := results[n][5], mean(w.cpu, again.cpu)
		fmt.Printf("  %2d conns: router CPU per request: plain %.1f µs, mirror 10%% %.1f µs (%+.1f µs, %+.0f%%)\n",
			n, us(pc), us(m.cpu), us(m.cpu-pc), 100*(float64(m.cpu)/float64(pc)-1))
	}
	if len(paced) > 0 {
		var plainP50, mirrorP50, plainP99, mirrorP99 []time.Duration
		for i, r := range paced {
			if i%2 == 0 {
				plainP50, plainP99 = append(plainP50, r.p50), append(plainP99, r.p99)
			} else {
				mirrorP50, mirrorP99 = append(mirrorP50, r.p50), append(mirrorP99, r.p99)
			}
		}
		fmt.Printf("  paced at %.0f req/s (%.0f%% of the plain row's throughput), %d conns, %d runs each, in turn:\n", rate, 100**pacedShare, n, len(plainP50))
		fmt.Printf("    p50: plain %s, mirror 10%% %s: medians %+.3f ms apart; the plain runs spread over %.3f ms (aim: within noise)\n",
			spread(plainP50), spread(mirrorP50), ms(median(mirrorP50)-median(plainP50)), ms(slices.Max(plainP50)-slices.Min(plainP50)))
		var paired []time.Duration
		for i := range mirrorP50 {
			paired = append(paired, mirrorP50[i]-plainP50[i])
		}
		fmt.Printf("    p50, each mirror run less the plain run before it: %s (median %+.3f ms)\n", spread(paired), ms(median(paired)))
		fmt.Printf("    p99: plain %s, mirror 10%% %s: medians %+.3f ms apart; the plain runs spread over %.3f ms\n",
			spread(plainP99), spread(mirrorP99), ms(median(mirrorP99)-median(plainP99)), ms(slices.Max(plainP99)-slices.Min(plainP99)))
	}
	return nil
}

func mean(a, b time.Duration) time.Duration { return (a + b) / 2 }

// median is the middle of ds (the mean of the two middle ones for an even
// count): one run disturbed by the machine moves it less than a mean.
func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

// spread prints durations in milliseconds, "0.912 / 1.031 / 0.977".
func spread(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.3f", ms(d)))
	}
	return strings.Join(parts, " / ") + " ms"
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// processCPU is the user and system time process pid has used (Linux).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command, which is in parentheses and may hold
	// spaces: state is the first, utime the 12th, stime the 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	_, _ = fmt.Sscan(f[11], &ut)
	_, _ = fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * (time.Second / clockTicks)
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// mirrorService creates service mirror like bench, with two versions of the
// same image: version 1 gets all requests and 10% of them are copied to
// version 2.
func mirrorService(ctx context.Context, c *apiclient.Client) error {
	idle := core.Duration(time.Hour)
	one := 1
	if _, err := c.CreateService(ctx, "mirror", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: new(core.Duration), MaxInstances: &one}); err != nil {
		return err
	}
	for range 2 {
		if _, err := c.CreateVersion(ctx, "mirror", core.VersionSpec{Image: image}); err != nil {
			return err
		}
	}
	_, err := c.SetMirror(ctx, "mirror", core.Mirror{Version: 2, Percent: 10})
	return err
}

// rulesService creates service rules like bench, with 10 request rules of
// every kind, to its one version: a request without X-Beta meets none of
// them, one with X-Beta: 1 meets the last.
func rulesService(ctx context.Context, c *apiclient.Client) error {
	idle := core.Duration(time.Hour)
	one := 1
	if _, err := c.CreateService(ctx, "rules", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: new(core.Duration), MaxInstances: &one}); err != nil {
		return err
	}
	if _, err := c.CreateVersion(ctx, "rules", core.VersionSpec{Image: image}); err != nil {
		return err
	}
	t := core.Traffic{Weights: []core.Weight{{Version: 1, Percent: 100}}}
	for _, s := range []string{
		"header:X-Group=a -> 1",
		"header:X-Group^=beta- -> 1",
		"header:User-Agent~=^curl/[0-9]+ -> 1",
		"header:X-Canary -> 1",
		"cookie:beta=1 -> 1",
		"query:beta=1 -> 1",
		"query:debug -> 1",
		"source:203.0.113.0/24 -> 1",
		"header:X-Tenant~=^(acme|initech)$ -> 1",
		"header:X-Beta=1 -> 1",
	} {
		r, err := core.ParseRequestRule(s)
		if err != nil {
			return err
		}
		t.Rules = append(t.Rules, r)
	}
	_, err := c.SetTraffic(ctx, "rules", t)
	return err
}

type target struct {
	name, url, host string
	header          string // one extra header line, "Name: value"
}

type result struct {
	name     string
	rps      float64
	p50, p99 time.Duration
	// cpu is the CPU time wisp serve spent per request (user + system).
	cpu time.Duration
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (t *target) once(ctx context.Context, hc *http.Client) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", t.url, nil)
	if err != nil {
		return 0, err
	}
	if t.host != "" {
		req.Host = t.host
	}
	if k, v, ok := strings.Cut(t.header, ":"); ok {
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return d, err
}

// load runs n connections, each sending one request after another, for dur
// (after a one-second warm-up that is not counted). Each connection is
// written and read by one goroutine, as wrk does: net/http's client hands
// every request between three goroutines, and at one connection those
// hand-overs cost about as much as the proxy being measured.
func (t *target) load(ctx context.Context, n int, dur time.Duration, rate float64) (result, error) {
	u, err := url.Parse(t.url)
	if err != nil {
		return result{}, err
	}
	host := t.host
	if host == "" {
		host = u.Host
	}
	extra := ""
	if t.header != "" {
		extra = t.header + "\r\n"
	}
	raw := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: wisp-bench\r\n" + extra + "\r\n")
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	warmUntil := time.Now().Add(time.Second)
	stop := warmUntil.Add(dur)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &rawClient{addr: u.Host, req: raw}
			defer c.close()
			lat := make([]time.Duration, 0, 1<<16)
			// Paced: this connection sends every gap, each request
			// timed from when it was due (so a late one counts its
			// wait: no coordinated omission).
			var gap time.Duration
			next := time.Now()
			if rate > 0 {
				gap = time.Duration(float64(n) / rate * float64(time.Second))
				next = next.Add(time.Duration(rand.Int64N(int64(gap))))
			}
			for {
				now := time.Now()
				if gap > 0 {
					if wait := time.Until(next); wait > 0 {
						time.Sleep(wait)
					}
					now, next = next, next.Add(gap)
				}
				if now.After(stop) || ctx.Err() != nil {
					break
				}
				if err := c.do(ctx); err != nil {
					mu.Lock()
					if firstErr == nil && !errors.Is(err, context.Canceled) {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if now.After(warmUntil) {
					lat = append(lat, time.Since(now))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	if len(all) == 0 {
		return result{}, errors.New("no request completed")
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return result{name: t.name, rps: float64(len(all)) / dur.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100]}, nil
}

// rawClient is one keep-alive HTTP/1.1 connection that sends the same
// request again and again.
type rawClient struct {
	addr string
	req  []byte
	conn net.Conn
	br   *bufio.Reader
}

var getReq = &http.Request{Method: "GET"}

func (c *rawClient) do(ctx context.Context) error {
	if c.conn == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return err
		}
		c.conn, c.br = conn, bufio.NewReader(conn)
	}
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(c.req); err != nil {
		c.close()
		return err
	}
	resp, err := http.ReadResponse(c.br, getReq)
	if err != nil {
		c.close()
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil || resp.Close {
		c.close()
	}
	return err
}

func (c *rawClient) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}
