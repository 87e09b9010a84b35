// Package daemon is Wisp's composition root: it builds the store, the admin
// API and (in later parts) the router and control loops from a Config, runs
// them, and shuts them down in order. It is the only package that imports
// adapters.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/wisp-run/wisp/internal/api"
	"github.com/wisp-run/wisp/internal/config"
	"github.com/wisp-run/wisp/internal/store/sqlite"
)

// Daemon is a running `wisp serve`.
type Daemon struct {
	cfg     config.Config
	log     *slog.Logger
	store   *sqlite.Store
	token   string
	admin   *http.Server
	adminLn net.Listener
}

// Open validates cfg, prepares the data directory, opens the store and binds
// the listeners, so that Addr reports real ports (port 0 works) before Run.
// A generated admin token is announced once on out.
func Open(ctx context.Context, cfg config.Config, logger *slog.Logger, out io.Writer) (_ *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	token := cfg.AdminToken
	if token == "" {
		if token, err = loadOrCreateToken(cfg.DataDir, out); err != nil {
			return nil, err
		}
	}
	d := &Daemon{cfg: cfg, log: logger, token: token}
	dbPath := filepath.Join(cfg.DataDir, "wisp.db")
	if d.store, err = sqlite.Open(ctx, dbPath); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = d.store.Close()
		}
	}()
	hint := ""
	if cfg.AdminToken == "" {
		hint = "; the token is in " + config.TokenPath(cfg.DataDir)
	}
	handler, err := api.New(api.Config{
		Token:      token,
		Domain:     cfg.Domain,
		RouterPort: cfg.RouterPort(),
		TokenHint:  hint,
	}, d.store, logger)
	if err != nil {
		return nil, err
	}
	d.admin = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	var lc net.ListenConfig
	if d.adminLn, err = lc.Listen(ctx, "tcp", cfg.AdminAddr); err != nil {
		return nil, fmt.Errorf("admin API: listen on %s: %w (is another wisp running? choose another address with --admin-addr)", cfg.AdminAddr, err)
	}
	logger.Info("store opened", "path", dbPath)
	return d, nil
}

// AdminAddr is the bound address of the admin API.
func (d *Daemon) AdminAddr() net.Addr { return d.adminLn.Addr() }

// Token is the admin API's bearer token.
func (d *Daemon) Token() string { return d.token }

// Run serves until ctx is cancelled, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish (bounded by the shutdown
// timeout) and closes the store.
func (d *Daemon) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- d.admin.Serve(d.adminLn) }()
	d.log.Info("admin API listening", "addr", d.AdminAddr().String(), "docs", "http://"+d.AdminAddr().String()+"/v1/openapi.json")

	var runErr error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
	case err := <-errc:
		runErr = fmt.Errorf("admin API: %w", err)
	}
	// The parent context is done; shutdown gets its own bounded one.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ShutdownTimeout)
	defer cancel()
	if err := d.admin.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("admin API shutdown: %w", err))
	}
	if err := d.store.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close store: %w", err))
	}
	d.log.Info("stopped")
	return runErr
}

// loadOrCreateToken reads the admin token kept in dataDir, or generates one,
// saves it with mode 0600 and announces it on out.
func loadOrCreateToken(dataDir string, out io.Writer) (string, error) {
	path := config.TokenPath(dataDir)
	tok, err := config.ReadToken(dataDir)
	if err == nil && tok != "" {
		return tok, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	tok = hex.EncodeToString(b)
	// O_EXCL: two daemons starting at once on one data dir cannot both win.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // G304: the path is the operator's own data dir
	if errors.Is(err, fs.ErrExist) {
		return config.ReadToken(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("save admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("save admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("save admin token: %w", err)
	}
	fmt.Fprintf(out, "wisp: generated an admin token and saved it in %s (mode 0600):\n\n    %s\n\n"+
		"The wisp CLI on this machine reads it from there; other clients send \"Authorization: Bearer <token>\".\n", path, tok)
	return tok, nil
}
