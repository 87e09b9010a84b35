// Command fetcher is a test image that makes HTTP requests for its caller,
// to test what an instance can reach: a static HTTP server on $PORT (default
// 8080), built FROM scratch, so it needs no registry.
//
// Paths: / answers "fetcher $NAME"; /env?name=X answers the value of the
// environment variable X; /fetch?url=U[&host=H] sends GET U (with Host H)
// with a 2 s timeout and answers "STATUS BODY", or 502 "error: …" when U
// cannot be reached.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	client := &http.Client{Timeout: 2 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "fetcher %s\n", os.Getenv("NAME"))
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(r.URL.Query().Get("name")))
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), "GET", r.URL.Query().Get("url"), nil)
		if err != nil {
			http.Error(w, "error: "+err.Error(), http.StatusBadRequest)
			return
		}
		if h := r.URL.Query().Get("host"); h != "" {
			req.Host = h
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, "error: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		fmt.Fprintf(w, "%d %s", resp.StatusCode, b)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "fetcher:", err)
		os.Exit(1)
	}
}
