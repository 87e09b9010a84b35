package activator

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// prober decides when a started instance is ready.
type prober interface {
	probe(ctx context.Context, rt runtime.Runtime, in runtime.Instance, v *core.Version) error
}

// defaultProber connects to the instance's port (or GETs its readiness path)
// until it answers, checking now and then that the process still runs, so a
// process that exits at once fails the start at once.
type defaultProber struct{}

var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

func (defaultProber) probe(ctx context.Context, rt runtime.Runtime, in runtime.Instance, v *core.Version) error {
	if in.Addr == "" {
		// A process that exits at once can be gone before the runtime
		// reads its address; say that, not that the address is missing.
		if cur, err := rt.Inspect(ctx, in.ID); err == nil && cur.State == runtime.StateExited {
			return exitedBeforeReady(cur, v)
		}
		return fmt.Errorf("the runtime reported no address for instance %s", in.ID)
	}
	wait := time.Millisecond
	lastCheck := time.Now()
	var lastErr error
	for {
		if err := probeOnce(ctx, in.Addr, v.ReadinessPath, in.Proxied); err == nil {
			return nil
		} else {
			lastErr = err
		}
		if time.Since(lastCheck) > 200*time.Millisecond {
			lastCheck = time.Now()
			cur, err := rt.Inspect(ctx, in.ID)
			switch {
			case err != nil && ctx.Err() == nil:
				return fmt.Errorf("instance %s disappeared while starting: %w", in.ID, err)
			case err == nil && cur.State == runtime.StateExited:
				return exitedBeforeReady(cur, v)
			}
		}
		select {
		case <-ctx.Done():
			what := fmt.Sprintf("port %d", v.Port)
			if v.ReadinessPath != "" {
				what = "readiness path " + v.ReadinessPath
			}
			return fmt.Errorf("%s did not answer in time (last probe: %w)", what, lastErr)
		case <-time.After(wait):
		}
		if wait < 50*time.Millisecond {
			wait = wait * 3 / 2
			if wait == time.Millisecond {
				wait = 2 * time.Millisecond
			}
		}
	}
}

func exitedBeforeReady(cur runtime.Instance, v *core.Version) error {
	return fmt.Errorf("the process exited with code %d before opening port %d", cur.ExitCode, v.Port)
}

// probeOnce checks addr once: a TCP connect, or a GET of path that must
// answer 2xx or 3xx. Behind a proxy without a path, any HTTP answer to GET /
// shows that the process is up.
func probeOnce(ctx context.Context, addr, path string, proxied bool) error {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	switch {
	case path != "":
		return getOnce(pctx, addr, path, false)
	case proxied:
		return getOnce(pctx, addr, "/", true)
	}
	// A short dial timeout: connecting to the bridge address of a container
	// that already exited stalls on ARP, and the state check between probes
	// is what reports the exit.
	return probeTCP(pctx, addr, 250*time.Millisecond)
}

// probeTCP connects to addr within timeout.
func probeTCP(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// getOnce GETs path at addr; unless anyStatus, the answer must be 2xx or 3xx.
func getOnce(ctx context.Context, addr, path string, anyStatus bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if !anyStatus && (resp.StatusCode < 200 || resp.StatusCode >= 400) {
		return fmt.Errorf("GET %s answered %d", path, resp.StatusCode)
	}
	return nil
}

// trimOutput turns a log tail into one short line.
func trimOutput(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	out := strings.Join(lines, " | ")
	if len(out) > 500 {
		out = "…" + out[len(out)-500:]
	}
	return out
}
