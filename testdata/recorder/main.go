// Command recorder is the function of the async chaos test and of
// bench-async: a static HTTP server that remembers every async attempt it
// serves. Built FROM scratch, it needs no registry.
//
// A request that carries Wisp-Call-Id is an attempt of an async call: it is
// recorded (call ID, Wisp-Attempt, the status answered, when it arrived)
// and answered 200, except that one call in ten (by a hash of its ID, so a
// test can tell which) gets 503 on its first attempt when FAIL_FIRST=1.
// GET /seen returns the record as JSON, with the boot nonce of this
// process (a test can tell a restarted container, whose memory is gone);
// GET /seen?count=1 only counts. Anything else is answered 200 at once (the
// sync baseline).
//
// Environment: PORT (default 8080), FAIL_FIRST=1.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Attempt is one attempt the recorder served.
type Attempt struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
	Status  int    `json:"status"`
	// At is when it arrived, in Unix nanoseconds (the host's clock: a
	// container shares the kernel's).
	At int64 `json:"at"`
}

// FailsFirst reports whether the recorder answers 503 to the first
// attempt of call id (one call in ten).
func FailsFirst(id string) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32()%10 == 0
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	failFirst := os.Getenv("FAIL_FIRST") == "1"
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	boot := hex.EncodeToString(nonce[:])

	var mu sync.Mutex
	seen := make([]Attempt, 0, 1<<14)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Wisp-Call-Id")
		if id == "" {
			fmt.Fprintln(w, "ok")
			return
		}
		at := time.Now().UnixNano()
		n, _ := strconv.Atoi(r.Header.Get("Wisp-Attempt"))
		status := http.StatusOK
		if failFirst && n == 1 && FailsFirst(id) {
			status = http.StatusServiceUnavailable
		}
		mu.Lock()
		seen = append(seen, Attempt{ID: id, Attempt: n, Status: status, At: at})
		mu.Unlock()
		if status != http.StatusOK {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "first attempt fails, as asked", status)
			return
		}
		fmt.Fprintln(w, "done", id)
	})
	mux.HandleFunc("GET /seen", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		out := struct {
			Boot  string    `json:"boot"`
			Count int       `json:"count"`
			Seen  []Attempt `json:"seen,omitempty"`
		}{Boot: boot, Count: len(seen)}
		if r.URL.Query().Get("count") == "" {
			out.Seen = append([]Attempt(nil), seen...)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		os.Exit(1)
	}
}
