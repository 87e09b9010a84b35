// Command wisp-watchdog serves a stdin/stdout function over HTTP on $PORT:
// Wisp adds it to images built with the stdio runtime. Usage:
//
//	wisp-watchdog [-- command args...]     (or WISP_FUNCTION="shell command")
//
// See package watchdog for the contract.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wisp-run/wisp/internal/watchdog"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(os.Stderr, "usage: wisp-watchdog [-- command args...]   (or set WISP_FUNCTION); serves on $PORT (default 8080)")
		return
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "watchdog")
	cfg, err := watchdog.FromEnv(args, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wisp-watchdog:", err)
		os.Exit(2)
	}
	h, err := watchdog.New(cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wisp-watchdog:", err)
		os.Exit(2)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: ":" + port, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout+5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	logger.Info("listening", "port", port, "function", cfg.Command, "timeout", cfg.Timeout.String())
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "wisp-watchdog:", err)
		os.Exit(1)
	}
}
