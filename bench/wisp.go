package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/daemon"
)

// Wisp is a Wisp daemon run in the benchmark's own process, on a temporary
// data directory, with both servers on free loopback ports.
type Wisp struct {
	Client *apiclient.Client
	Router string // the router's host:port
	cancel context.CancelFunc
	done   chan error
	dir    string
}

// StartWisp opens and runs a daemon with cfg; its DataDir and addresses
// are set here. name labels the temporary directory and errors. Stop it
// with Stop.
func StartWisp(ctx context.Context, name string, cfg config.Config) (*Wisp, error) {
	dir, err := os.MkdirTemp("", "wisp-bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dir
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:0", "127.0.0.1:0"
	d, err := daemon.Open(ctx, cfg, slog.New(slog.DiscardHandler), daemon.Options{})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	w := &Wisp{Client: apiclient.New(d.AdminAddr().String(), d.Token()), Router: d.RouterAddr().String(),
		cancel: cancel, done: make(chan error, 1), dir: dir}
	go func() { w.done <- d.Run(rctx) }()
	return w, nil
}

// Stop stops the daemon, waits for it and removes its data directory.
func (w *Wisp) Stop() {
	w.cancel()
	if err := <-w.done; err != nil {
		fmt.Fprintln(os.Stderr, "wisp:", err)
	}
	_ = os.RemoveAll(w.dir)
}

// WaitPool waits up to a minute until the Docker runtime's sandbox pool
// holds n free sandboxes (wisp_sandboxes_free): it fills in the background
// after the start and after each take, and a cold start is measured against
// a full pool, as in steady operation.
func (w *Wisp) WaitPool(ctx context.Context, n int) error {
	want := fmt.Sprintf("wisp_sandboxes_free %d", n)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		body, err := w.Client.Raw(ctx, "GET", "/metrics", nil)
		if err != nil {
			return err
		}
		for l := range strings.SplitSeq(string(body), "\n") {
			if l == want {
				return nil
			}
		}
	}
	return fmt.Errorf("the sandbox pool did not fill to %d within a minute", n)
}
