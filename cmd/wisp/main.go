// Command wisp is the Wisp serverless platform: `wisp serve` runs the daemon,
// the other commands drive it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wisp-run/wisp/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling so that a
		// second one ends a slow shutdown at once.
		<-ctx.Done()
		stop()
	}()
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
