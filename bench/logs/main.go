// Command logs measures what capturing instances' output costs the router:
// requests per second at 50 connections to a service of 20 instances that
// each print 500 lines a second (10,000 lines/s in all), with log capture
// on and with it off (wisp serve --log-capture=false), in one run, in
// alternating rounds, and prints the ratio (aim ≥ 0.95). Each side is a
// fresh `wisp serve` (the real binary) with its own data dir and real
// Docker instances; every load loop is bounded in time. Run it with make
// bench-logs. The storage comparison (segment files vs SQLite) is the Go
// benchmark in storage_test.go beside this file.
package main

import (
	"bufio"
	"context"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wisp-run/wisp/bench"
	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
)

const image = "wisp-greeter:bench-logs"

func main() {
	dur := flag.Duration("d", 10*time.Second, "duration of each measurement")
	rounds := flag.Int("rounds", 2, "rounds (each measures capture on, then off)")
	instances := flag.Int("instances", 20, "instances of the service")
	rate := flag.Int("rate", 500, "lines a second each instance prints")
	conns := flag.Int("c", 50, "connections")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dur, *rounds, *instances, *rate, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "bench-logs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dur time.Duration, rounds, instances, rate, conns int) error {
	tmp, bin, err := bench.Prepare(ctx, "logs", image)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var on, off []float64
	for r := range rounds {
		for _, capture := range []bool{true, false} {
			res, err := side(ctx, bin, filepath.Join(tmp, fmt.Sprintf("data-%d-%v", r, capture)), capture, dur, instances, rate, conns)
			if err != nil {
				return fmt.Errorf("round %d, capture %v: %w", r+1, capture, err)
			}
			fmt.Printf("  round %d  capture %-5v %9.0f req/s  %7d lines stored (%.0f/s)  CPU: wisp %.2f cores, engine %.2f\n",
				r+1, capture, res.rps, res.lines, float64(res.lines)/res.window.Seconds(), res.wispCores, res.engineCores)
			if capture {
				on = append(on, res.rps)
			} else {
				off = append(off, res.rps)
			}
		}
	}
	mon, moff := mean(on), mean(off)
	fmt.Printf("\n%d conns, %d instances × %d lines/s: capture on %.0f req/s, off %.0f req/s; ratio %.3f (aim ≥ 0.95)\n",
		conns, instances, rate, mon, moff, mon/moff)
	return nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

type sideResult struct {
	rps    float64
	lines  int
	window time.Duration
	// CPU used while measuring, in cores: wisp serve (router and capture)
	// and the Docker Engine (-1 when its process cannot be read).
	wispCores, engineCores float64
}

// pidOf finds a process by its command name in /proc (0 if none).
func pidOf(name string) int {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == name {
			return pid
		}
	}
	return 0
}

// side starts wisp serve, a service of instances that print, measures the
// router, and stops it all.
func side(ctx context.Context, bin, dataDir string, capture bool, dur time.Duration, instances, rate, conns int) (sideResult, error) {
	admin, router := bench.FreeAddr(ctx), bench.FreeAddr(ctx)
	wisp := exec.CommandContext(context.WithoutCancel(ctx), bin, "serve", "--data-dir", dataDir, "--admin-addr", admin, "--addr", router,
		"--log-level", "warn", "--log-capture="+fmt.Sprint(capture), "--docker-network", "wisp-bench-logs")
	wisp.Stderr = os.Stderr
	if err := wisp.Start(); err != nil {
		return sideResult{}, err
	}
	defer func() {
		_ = wisp.Process.Signal(syscall.SIGINT)
		_ = wisp.Wait()
	}()
	if err := bench.WaitHTTP(ctx, "http://"+admin+"/healthz"); err != nil {
		return sideResult{}, err
	}
	token, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		return sideResult{}, err
	}
	c := apiclient.New(admin, strings.TrimSpace(string(token)))
	idle := core.Duration(time.Hour)
	if _, err := c.CreateService(ctx, "benchlogs", core.PolicyPatch{IdleTimeout: &idle, PauseAfter: new(core.Duration),
		MinInstances: &instances, MaxInstances: &instances}); err != nil {
		return sideResult{}, err
	}
	if _, err := c.CreateVersion(ctx, "benchlogs", core.VersionSpec{Image: image, Env: []string{fmt.Sprintf("LOG_RATE=%d", rate)}}); err != nil {
		return sideResult{}, err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ins, err := c.Instances(ctx, "benchlogs")
		if err != nil {
			return sideResult{}, err
		}
		ready := 0
		for _, in := range ins {
			if in.State == core.InstanceReady {
				ready++
			}
		}
		if ready == instances {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return sideResult{}, fmt.Errorf("%d of %d instances ready after 3 minutes", ready, instances)
		}
		time.Sleep(200 * time.Millisecond)
	}
	before, err := countLines(ctx, c)
	if err != nil {
		return sideResult{}, err
	}
	start := time.Now()
	dockerd := pidOf("dockerd")
	wispCPU0, engineCPU0 := bench.CPUSeconds(wisp.Process.Pid), bench.CPUSeconds(dockerd)
	rps, err := load(ctx, router, "benchlogs.localhost", conns, dur)
	if err != nil {
		return sideResult{}, err
	}
	window := time.Since(start)
	wispCPU, engineCPU := bench.CPUSeconds(wisp.Process.Pid)-wispCPU0, bench.CPUSeconds(dockerd)-engineCPU0
	after, err := countLines(ctx, c)
	if err != nil {
		return sideResult{}, err
	}
	if capture && after-before < int(float64(instances*rate)*dur.Seconds()/2) {
		return sideResult{}, fmt.Errorf("only %d lines stored while measuring, want about %d", after-before, int(float64(instances*rate)*dur.Seconds()))
	}
	return sideResult{rps: rps, lines: after - before, window: window,
		wispCores: wispCPU / window.Seconds(), engineCores: engineCPU / window.Seconds()}, nil
}

func countLines(ctx context.Context, c *apiclient.Client) (int, error) {
	n := 0
	err := c.Logs(ctx, "benchlogs", core.LogQuery{Kinds: []core.LogKind{core.LogApp}}, func(core.LogEntry) error { n++; return nil })
	return n, err
}

// load sends GET / on conns keep-alive connections for dur (after a second
// of warm-up) and returns the requests per second.
func load(ctx context.Context, addr, host string, conns int, dur time.Duration) (float64, error) {
	raw := []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: wisp-bench\r\n\r\n")
	var mu sync.Mutex
	var total int
	var firstErr error
	var wg sync.WaitGroup
	warmUntil := time.Now().Add(time.Second)
	stop := warmUntil.Add(dur)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := loop(ctx, addr, raw, warmUntil, stop)
			mu.Lock()
			total += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(total) / dur.Seconds(), nil
}

var getReq = &http.Request{Method: "GET"}

func loop(ctx context.Context, addr string, raw []byte, warmUntil, stop time.Time) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	n := 0
	for {
		now := time.Now()
		if now.After(stop) || ctx.Err() != nil {
			return n, nil
		}
		_ = conn.SetDeadline(now.Add(10 * time.Second))
		if _, err := conn.Write(raw); err != nil {
			return n, err
		}
		resp, err := http.ReadResponse(br, getReq)
		if err != nil {
			return n, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if err != nil {
			return n, err
		}
		if resp.Close {
			return n, errors.New("the router closed the connection")
		}
		if now.After(warmUntil) {
			n++
		}
	}
}
