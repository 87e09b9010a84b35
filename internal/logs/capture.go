package logs

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

// Runtime is what capture needs of the runtime port.
type Runtime interface {
	Logs(ctx context.Context, id string, opts runtime.LogOptions) (runtime.LogReader, error)
}

// removedGrace is how long a capture keeps reading after the instance's
// EventInstanceRemoved: the runtime may still hand over its last lines.
const removedGrace = 5 * time.Second

// captureCoalesce is how long a capture lets an instance's new lines
// gather before it reads them (runtime.LogOptions.Coalesce): a line
// reaches the store at most this much later, and a busy instance costs a
// read, a wake-up and a hand-off to the writer per batch instead of per
// line (docs/benchmarks.md, bench-logs).
const captureCoalesce = 50 * time.Millisecond

// maxCaptureBatch bounds the lines of one hand-off to the writer.
const maxCaptureBatch = 512

// captureRec is one instance's capture.
type captureRec struct {
	removed    chan struct{} // closed on EventInstanceRemoved
	wasRemoved bool
}

// captureEventLocked starts or ends a capture as platform entry e says.
// Captures run under Run's context; one per instance at a time.
func (l *Logs) captureEventLocked(ctx context.Context, wg *sync.WaitGroup, e core.LogEntry) {
	if l.cfg.Runtime == nil || e.Instance == "" {
		return
	}
	switch e.Event {
	case core.EventInstanceStarting, core.EventInstanceAdopted:
		if _, ok := l.captures[e.Instance]; ok {
			return
		}
		rec := &captureRec{removed: make(chan struct{})}
		l.captures[e.Instance] = rec
		// Lines at or before the newest stored one of this instance were
		// captured by an earlier run (an adoption after a restart); those
		// printed while no Wisp ran come from there on.
		skip := l.lastTime[e.Instance]
		since := e.Time
		if !skip.IsZero() {
			since = skip
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.capture(ctx, rec, e, since, skip)
			l.mu.Lock()
			if l.captures[e.Instance] == rec {
				delete(l.captures, e.Instance)
			}
			if rec.wasRemoved {
				// A removed instance is never adopted: forget its newest line.
				delete(l.lastTime, e.Instance)
			}
			l.mu.Unlock()
		}()
	case core.EventInstanceRemoved:
		if rec, ok := l.captures[e.Instance]; ok && !rec.wasRemoved {
			rec.wasRemoved = true
			close(rec.removed)
		}
	}
}

// capture copies instance e.Instance's output into the stream: it opens
// the runtime's log stream (retrying with backoff while that fails, as it
// does for a pod not running yet, until the instance is removed or
// CaptureRetry passes) and reads it to its end.
func (l *Logs) capture(ctx context.Context, rec *captureRec, e core.LogEntry, since, skip time.Time) {
	log := l.log.With("instance", e.Instance, "service", e.Service)
	deadline := time.Now().Add(l.cfg.CaptureRetry)
	backoff := 50 * time.Millisecond
	for {
		r, err := l.cfg.Runtime.Logs(ctx, e.Instance, runtime.LogOptions{Follow: true, Since: since, Coalesce: captureCoalesce})
		if err == nil {
			l.copyLines(ctx, rec, r, e, skip)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			log.Warn("capture an instance's output", "error", err)
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-rec.removed:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (l *Logs) copyLines(ctx context.Context, rec *captureRec, r runtime.LogReader, e core.LogEntry, skip time.Time) {
	stop := make(chan struct{})
	var closer sync.WaitGroup
	closer.Add(1)
	go func() {
		defer closer.Done()
		select {
		case <-stop:
			return
		case <-ctx.Done():
		case <-rec.removed:
			t := time.NewTimer(removedGrace)
			defer t.Stop()
			select {
			case <-stop:
				return
			case <-ctx.Done():
			case <-t.C:
			}
		}
		_ = r.Close()
	}()
	defer func() {
		close(stop)
		closer.Wait()
		_ = r.Close()
	}()
	next := batchesOf(r)
	var lines []runtime.LogLine
	for {
		var err error
		lines, err = next(lines[:0])
		batch := make([]core.LogEntry, 0, len(lines))
		for _, line := range lines {
			if !skip.IsZero() && !line.Time.IsZero() && !line.Time.After(skip) {
				continue
			}
			t := line.Time
			if t.IsZero() {
				t = time.Now()
			}
			stream := line.Stream
			if stream == "" {
				stream = runtime.Stdout
			}
			batch = append(batch, core.LogEntry{Time: t, Kind: core.LogApp, Service: e.Service, Version: e.Version,
				Instance: e.Instance, Stream: stream, Message: line.Text})
		}
		for len(batch) > 0 {
			n := min(len(batch), maxCaptureBatch)
			if l.appendBatchWait(ctx, batch[:n]) != nil {
				return
			}
			batch = batch[n:]
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				l.log.Warn("read an instance's output", "instance", e.Instance, "error", err)
			}
			return
		}
	}
}

// batchesOf reads r a batch at a time: with NextBatch when r has it, else
// a line at a time.
func batchesOf(r runtime.LogReader) func([]runtime.LogLine) ([]runtime.LogLine, error) {
	if br, ok := r.(runtime.LogBatchReader); ok {
		return br.NextBatch
	}
	return func(dst []runtime.LogLine) ([]runtime.LogLine, error) {
		line, err := r.Next()
		if err != nil {
			return dst, err
		}
		return append(dst, line), nil
	}
}
