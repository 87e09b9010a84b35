// Command greeter is Wisp's test and demo image: a static HTTP server that
// answers "Hello, $GREETING!". Built FROM scratch, it needs no registry.
//
// Environment: PORT (default 8080), GREETING (default World). For tests:
// START_DELAY_MS delays listening, NEVER_LISTEN=1 never opens the port,
// EXIT_CODE=N exits at once with N after printing to stderr; LOG_RATE=N
// prints N lines a second to stdout ("greeter: line K of HOSTNAME") while it
// runs.
//
// Paths: / greets; /sleep?ms=N greets after N ms; /healthz; /headers echoes
// the request headers; /stream writes ten lines, one every ?ms=N (default 10);
// /max reports the most requests it has served at once;
// /log?stream=stdout|stderr&text=T prints T on that stream; /freeze makes
// every later request hang (until its client gives up), as a deadlocked
// server does while it still accepts connections.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if code := os.Getenv("EXIT_CODE"); code != "" {
		n, _ := strconv.Atoi(code)
		fmt.Fprintf(os.Stderr, "greeter: exiting at once with code %d as asked\n", n)
		os.Exit(n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if os.Getenv("NEVER_LISTEN") == "1" {
		fmt.Fprintln(os.Stderr, "greeter: never listening, as asked")
		<-ctx.Done()
		return
	}
	if ms, _ := strconv.Atoi(os.Getenv("START_DELAY_MS")); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	if rate, _ := strconv.Atoi(os.Getenv("LOG_RATE")); rate > 0 {
		go printLines(ctx, rate)
	}
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "World"
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	// ERROR_EVERY=N answers 500 to every Nth request of / (5: 20%).
	errorEvery, _ := strconv.Atoi(os.Getenv("ERROR_EVERY"))
	var served atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if errorEvery > 0 && served.Add(1)%int64(errorEvery) == 0 {
			http.Error(w, "failing on purpose (ERROR_EVERY)", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "Hello, %s!\n", greeting)
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "Hello, %s!\n", greeting)
	})
	mux.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		out := os.Stdout
		if r.URL.Query().Get("stream") == "stderr" {
			out = os.Stderr
		}
		fmt.Fprintln(out, r.URL.Query().Get("text"))
		fmt.Fprintln(w, "logged")
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{"Host": r.Host, "Path": r.URL.Path}
		for k := range r.Header {
			h[k] = r.Header.Get(k)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil {
			ms = 10
		}
		f, _ := w.(http.Flusher)
		for i := range 10 {
			fmt.Fprintf(w, "line %d\n", i)
			if f != nil {
				f.Flush()
			}
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
	})
	var inflight, peak atomic.Int64
	var frozen atomic.Bool
	mux.HandleFunc("/freeze", func(w http.ResponseWriter, r *http.Request) {
		frozen.Store(true)
		fmt.Fprintln(w, "frozen")
	})
	mux.HandleFunc("/max", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, peak.Load()) })
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if frozen.Load() {
			<-r.Context().Done()
			return
		}
		if r.URL.Path != "/max" {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
		}
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: ":" + port, Handler: counted, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "greeter: listening on :%s\n", port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "greeter:", err)
		os.Exit(1)
	}
}

// printLines prints rate lines a second, in bursts every 10 ms.
func printLines(ctx context.Context, rate int) {
	host, _ := os.Hostname()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	start, n := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := int(now.Sub(start).Seconds() * float64(rate))
			for ; n < due; n++ {
				fmt.Fprintf(os.Stdout, "greeter: line %d of %s\n", n+1, host)
			}
		}
	}
}
