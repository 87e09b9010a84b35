// Command async measures durable async calls through the real binary (make
// bench-async): one `wisp serve` with the Docker runtime and one function
// container (testdata/recorder; min_instances 1, async_concurrency 50),
// and, in alternating rounds bounded in time,
//
//   - durable submissions: POST /async/<service>/ at 50 connections, each
//     answered 202 once the call is stored in JetStream (202s/s, p50, p99),
//     after which the backlog is drained and timed;
//   - the sync baseline: GET / on the same function at 50 connections
//     (req/s, p50, p99);
//
// then enqueue-to-start with capacity free: one call at a time, the time
// from the client reading the 202 to the function receiving the attempt
// (the function notes its arrival on the host's clock, which a container
// shares), and the daemon's own view from the call records (attempts[0].
// started_at minus submitted_at). It prints the ratios and the aims
// (≥ 5,000 durable submissions/s, enqueue-to-start p50 ≤ 5 ms).
package main

import (
	"bufio"
	"context"
	"encoding/json"
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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wisp-run/wisp/bench"
	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
)

const (
	image   = "wisp-recorder:bench-async"
	service = "benchasync"
	host    = service + ".localhost"
)

func main() {
	dur := flag.Duration("d", 10*time.Second, "duration of each measurement (after a 1 s warm-up)")
	rounds := flag.Int("rounds", 2, "rounds (each measures async submissions, then sync requests)")
	conns := flag.Int("c", 50, "connections")
	single := flag.Int("n", 200, "calls submitted one at a time for enqueue-to-start")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dur, *rounds, *conns, *single); err != nil {
		fmt.Fprintln(os.Stderr, "bench-async:", err)
		os.Exit(1)
	}
}

type env struct {
	router, admin, token string
	wisp                 *exec.Cmd
	c                    *apiclient.Client
	hc                   *http.Client
}

func run(ctx context.Context, dur time.Duration, rounds, conns, single int) error {
	tmp, bin, err := bench.PrepareImage(ctx, "async", "./testdata/recorder", image)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dataDir := filepath.Join(tmp, "data")
	e := &env{admin: bench.FreeAddr(ctx), router: bench.FreeAddr(ctx), hc: &http.Client{Timeout: 30 * time.Second}}
	e.wisp = exec.CommandContext(context.WithoutCancel(ctx), bin, "serve", "--data-dir", dataDir, "--admin-addr", e.admin,
		"--addr", e.router, "--log-level", "warn", "--docker-network", "wisp-bench-async")
	e.wisp.Stderr = os.Stderr
	if err := e.wisp.Start(); err != nil {
		return err
	}
	defer func() {
		_ = e.wisp.Process.Signal(syscall.SIGINT)
		_ = e.wisp.Wait()
	}()
	if err := bench.WaitHTTP(ctx, "http://"+e.admin+"/healthz"); err != nil {
		return err
	}
	token, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		return err
	}
	e.token = strings.TrimSpace(string(token))
	e.c = apiclient.New(e.admin, e.token)
	one, asyncConc := 1, 50
	idle := core.Duration(time.Hour)
	if _, err := e.c.CreateService(ctx, service, core.PolicyPatch{MinInstances: &one, MaxInstances: &one, IdleTimeout: &idle,
		PauseAfter: new(core.Duration), AsyncConcurrency: &asyncConc}); err != nil {
		return err
	}
	if _, err := e.c.CreateVersion(ctx, service, core.VersionSpec{Image: image, MaxConcurrency: 1000}); err != nil {
		return err
	}
	if err := waitReady(ctx, e.c); err != nil {
		return err
	}
	fmt.Printf("wisp serve (Docker runtime), one %s container, async_concurrency %d; %d connections, %s per measurement after 1 s of warm-up\n",
		image, asyncConc, conns, dur)

	async := []byte("POST /async/" + service + "/job HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wisp-bench\r\n" +
		"Content-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"n\":12345}")
	sync := []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: wisp-bench\r\n\r\n")
	var asyncRes, syncRes []loadResult
	for r := range rounds {
		before, err := e.seenCount(ctx)
		if err != nil {
			return err
		}
		cpu0 := bench.CPUSeconds(e.wisp.Process.Pid)
		a, err := load(ctx, e.router, async, http.StatusAccepted, conns, dur)
		if err != nil {
			return fmt.Errorf("round %d, async: %w", r+1, err)
		}
		a.wispCores = (bench.CPUSeconds(e.wisp.Process.Pid) - cpu0) / a.window.Seconds()
		// Drain: every call submitted (warm-up included) reaches the function.
		t0 := time.Now()
		drained, err := e.drain(ctx, before+a.all, 3*time.Minute)
		if err != nil {
			return fmt.Errorf("round %d, drain: %w", r+1, err)
		}
		a.drain = time.Since(t0)
		a.drained = drained - before
		fmt.Printf("  round %d  async  %7.0f 202s/s  p50 %6.2f ms  p99 %6.2f ms  wisp %.2f cores; %d calls run %.1f s after the load (dispatched %.0f/s overall)\n",
			r+1, a.rps, ms(a.p50), ms(a.p99), a.wispCores, a.drained, a.drain.Seconds(),
			float64(a.drained)/(a.window+time.Second+a.drain).Seconds())
		asyncRes = append(asyncRes, a)

		cpu0 = bench.CPUSeconds(e.wisp.Process.Pid)
		s, err := load(ctx, e.router, sync, http.StatusOK, conns, dur)
		if err != nil {
			return fmt.Errorf("round %d, sync: %w", r+1, err)
		}
		s.wispCores = (bench.CPUSeconds(e.wisp.Process.Pid) - cpu0) / s.window.Seconds()
		fmt.Printf("  round %d  sync   %7.0f req/s   p50 %6.2f ms  p99 %6.2f ms  wisp %.2f cores\n",
			r+1, s.rps, ms(s.p50), ms(s.p99), s.wispCores)
		syncRes = append(syncRes, s)
	}

	fmt.Printf("enqueue-to-start, capacity free: %d calls submitted one at a time, 20 ms apart\n", single)
	clientLat, recordLat, err := e.startLatency(ctx, single)
	if err != nil {
		return err
	}

	ar, sr := meanRPS(asyncRes), meanRPS(syncRes)
	ap50, ap99 := meanDur(asyncRes, false), meanDur(asyncRes, true)
	sp50, sp99 := meanDur(syncRes, false), meanDur(syncRes, true)
	c50, c99 := pct(clientLat, 50), pct(clientLat, 99)
	r50, r99 := pct(recordLat, 50), pct(recordLat, 99)
	fmt.Printf(`
durable submissions at %d conns: %.0f 202s/s, p50 %.2f ms, p99 %.2f ms (mean of %d rounds)
sync requests at %d conns:       %.0f req/s,  p50 %.2f ms, p99 %.2f ms
ratio async/sync: throughput %.2f, p50 %.2f, p99 %.2f
enqueue-to-start (client's 202 → the function receives it): p50 %.2f ms, p99 %.2f ms (min %.2f, max %.2f)
enqueue-to-start (record: attempts[0].started_at - submitted_at): p50 %.2f ms, p99 %.2f ms
aim ≥ 5,000 durable submissions/s: %s (%.0f)
aim enqueue-to-start p50 ≤ 5 ms:   %s (%.2f ms, client's view)
`, conns, ar, ms(ap50), ms(ap99), rounds, conns, sr, ms(sp50), ms(sp99), ar/sr, float64(ap50)/float64(sp50), float64(ap99)/float64(sp99),
		ms(c50), ms(c99), ms(pct(clientLat, 0)), ms(pct(clientLat, 100)), ms(r50), ms(r99),
		verdict(ar >= 5000), ar, verdict(c50 <= 5*time.Millisecond), ms(c50))
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
	window   time.Duration
	all      int // requests answered, warm-up included
	// Set by the caller.
	wispCores float64
	drain     time.Duration
	drained   int
}

// load sends raw on conns keep-alive connections for dur after a second of
// warm-up; every answer must have status want.
func load(ctx context.Context, addr string, raw []byte, want, conns int, dur time.Duration) (loadResult, error) {
	var mu sync.Mutex
	var lats []time.Duration
	var all int
	var firstErr error
	var wg sync.WaitGroup
	warmUntil := time.Now().Add(time.Second)
	stop := warmUntil.Add(dur)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, n, err := loop(ctx, addr, raw, want, warmUntil, stop)
			mu.Lock()
			lats = append(lats, l...)
			all += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	return loadResult{rps: float64(len(lats)) / dur.Seconds(), p50: pct(lats, 50), p99: pct(lats, 99), window: dur, all: all}, nil
}

func loop(ctx context.Context, addr string, raw []byte, want int, warmUntil, stop time.Time) ([]time.Duration, int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	lats := make([]time.Duration, 0, 4096)
	n := 0
	req := &http.Request{Method: string(raw[:strings.IndexByte(string(raw), ' ')])}
	for {
		t0 := time.Now()
		if t0.After(stop) || ctx.Err() != nil {
			return lats, n, nil
		}
		_ = conn.SetDeadline(t0.Add(10 * time.Second))
		if _, err := conn.Write(raw); err != nil {
			return lats, n, err
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return lats, n, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err == nil && resp.StatusCode != want {
			err = fmt.Errorf("status %d, want %d", resp.StatusCode, want)
		}
		if err != nil {
			return lats, n, err
		}
		if resp.Close {
			return lats, n, errors.New("the router closed the connection")
		}
		n++
		if t0.After(warmUntil) {
			lats = append(lats, time.Since(t0))
		}
	}
}

// pct returns the p-th percentile of sorted xs (0: the least, 100: the most).
func pct(xs []time.Duration, p int) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	i := (len(xs) - 1) * p / 100
	return xs[i]
}

func meanRPS(rs []loadResult) float64 {
	var s float64
	for _, r := range rs {
		s += r.rps
	}
	return s / float64(len(rs))
}

func meanDur(rs []loadResult, p99 bool) time.Duration {
	var s time.Duration
	for _, r := range rs {
		if p99 {
			s += r.p99
		} else {
			s += r.p50
		}
	}
	return s / time.Duration(len(rs))
}

type attempt struct {
	ID string `json:"id"`
	At int64  `json:"at"`
}

type seenLog struct {
	Count int       `json:"count"`
	Seen  []attempt `json:"seen"`
}

func (e *env) seen(ctx context.Context, countOnly bool) (seenLog, error) {
	u := "http://" + e.router + "/seen"
	if countOnly {
		u += "?count=1"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Host = host
	res, err := e.hc.Do(req)
	if err != nil {
		return seenLog{}, err
	}
	defer res.Body.Close()
	var l seenLog
	if err := json.NewDecoder(res.Body).Decode(&l); err != nil {
		return seenLog{}, fmt.Errorf("GET /seen: %d: %w", res.StatusCode, err)
	}
	return l, nil
}

func (e *env) seenCount(ctx context.Context) (int, error) {
	l, err := e.seen(ctx, true)
	return l.Count, err
}

// drain waits until the function has seen want attempts.
func (e *env) drain(ctx context.Context, want int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		n, err := e.seenCount(ctx)
		if err != nil {
			return 0, err
		}
		if n >= want {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("the function saw %d of %d calls after %s", n, want, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startLatency submits n calls one at a time and returns, sorted, the time
// from each 202 to the function receiving the call, and the same as the
// call records tell it.
func (e *env) startLatency(ctx context.Context, n int) (client, record []time.Duration, err error) {
	got := map[string]time.Time{}
	for range n {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.router+"/async/"+service+"/one", strings.NewReader("{}"))
		res, err := e.hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		at := time.Now()
		if res.StatusCode != http.StatusAccepted {
			return nil, nil, fmt.Errorf("submit: status %d", res.StatusCode)
		}
		got[res.Header.Get("Wisp-Call-Id")] = at
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	l, err := e.seen(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range l.Seen {
		if t, ok := got[a.ID]; ok {
			client = append(client, time.Unix(0, a.At).Sub(t))
		}
	}
	if len(client) != n {
		return nil, nil, fmt.Errorf("the function saw %d of the %d calls", len(client), n)
	}
	for id := range got {
		var call core.Call
		b, err := e.c.Raw(ctx, http.MethodGet, "/v1/calls/"+id, nil)
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, &call); err != nil {
			return nil, nil, err
		}
		if len(call.Attempts) > 0 {
			record = append(record, call.Attempts[0].StartedAt.Sub(call.SubmittedAt))
		}
	}
	sort.Slice(client, func(i, j int) bool { return client[i] < client[j] })
	sort.Slice(record, func(i, j int) bool { return record[i] < record[j] })
	return client, record, nil
}

func waitReady(ctx context.Context, c *apiclient.Client) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ins, err := c.Instances(ctx, service)
		if err != nil {
			return err
		}
		for _, in := range ins {
			if in.State == core.InstanceReady {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("no instance ready within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
