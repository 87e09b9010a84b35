package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// LogReader reads services' log streams (the logs package).
type LogReader interface {
	// Query calls fn with each entry q matches, in Seq order; with
	// q.Follow it then waits for new ones until ctx ends (returning nil).
	// An error from fn ends it and is returned.
	Query(ctx context.Context, q core.LogQuery, fn func(core.LogEntry) error) error
}

// WithLogs serves GET /v1/services/{name}/logs from r.
func WithLogs(r LogReader) Option { return func(s *Server) { s.logs = r } }

// MaxLogTail bounds the tail parameter.
const MaxLogTail = 10000

// sseKeepalive is how often an idle event stream gets a comment, so that
// proxies and browsers keep it open.
const sseKeepalive = 15 * time.Second

// parseLogQuery reads the filters of GET /v1/services/{name}/logs; each
// bad one is a 400 naming it.
func parseLogQuery(v url.Values, now time.Time) (core.LogQuery, error) {
	var q core.LogQuery
	if s := v.Get("version"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, badRequest("version", "version must be a positive number, got %q", s)
		}
		q.Version = n
	}
	q.Instance = v.Get("instance")
	for _, name := range []string{"since", "until"} {
		s := v.Get(name)
		if s == "" {
			continue
		}
		t, err := parseLogTime(s, now)
		if err != nil {
			return q, badRequest(name, "%s must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (10m, 1h30m), got %q", name, s)
		}
		if name == "since" {
			q.Since = t
		} else {
			q.Until = t
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return q, badRequest("until", "until (%s) must be after since (%s)", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	if s := v.Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > MaxLogTail {
			return q, badRequest("tail", "tail must be a number from 0 to %d, got %q", MaxLogTail, s)
		}
		q.Tail = n
	}
	if s := v.Get("follow"); s != "" {
		f, err := strconv.ParseBool(s)
		if err != nil {
			return q, badRequest("follow", "follow must be true or false, got %q", s)
		}
		q.Follow = f
	}
	q.Contains = v.Get("q")
	for _, list := range v["kind"] {
		for k := range strings.SplitSeq(list, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			kind, err := core.ParseLogKind(k)
			if err != nil {
				return q, badRequest("kind", "kind %q is not one of app, platform, request", k)
			}
			q.Kinds = append(q.Kinds, kind)
		}
	}
	return q, nil
}

// parseLogTime reads an RFC 3339 time or a duration meaning that long
// before now.
func parseLogTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, errors.New("bad time")
	}
	return now.Add(-d), nil
}

func (s *Server) serviceLogs(w http.ResponseWriter, r *http.Request) error {
	if s.logs == nil {
		return core.Unavailablef("logs are not available on this server")
	}
	name := r.PathValue("name")
	q, err := parseLogQuery(r.URL.Query(), time.Now())
	if err != nil {
		return err
	}
	q.Service = name
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return badRequest("Last-Event-ID", "Last-Event-ID must be the seq of an entry, got %q", id)
		}
		q.AfterSeq = n
	}
	if _, err := s.store.GetService(r.Context(), name); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	if q.Follow {
		// The admin server's read timeout would otherwise end a long follow.
		_ = rc.SetReadDeadline(time.Time{})
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if sse {
		h.Set("Content-Type", "text/event-stream")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var mu sync.Mutex // the keepalive writes too
	var werr error
	write := func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if werr != nil {
			return werr
		}
		if _, werr = w.Write(b); werr == nil && q.Follow {
			werr = rc.Flush()
		}
		return werr
	}
	var keepalive sync.WaitGroup
	if sse && q.Follow {
		keepalive.Add(1)
		go func() {
			defer keepalive.Done()
			t := time.NewTicker(sseKeepalive)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if write([]byte(": keepalive\n\n")) != nil {
						cancel()
						return
					}
				}
			}
		}()
	}
	err = s.logs.Query(ctx, q, func(e core.LogEntry) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if sse {
			out := make([]byte, 0, len(b)+40)
			out = append(out, "id: "...)
			out = strconv.AppendUint(out, e.Seq, 10)
			out = append(out, "\nevent: log\ndata: "...)
			out = append(out, b...)
			out = append(out, "\n\n"...)
			return write(out)
		}
		return write(append(b, '\n'))
	})
	cancel()
	keepalive.Wait()
	if err != nil && !errors.Is(err, context.Canceled) && werr == nil {
		// The status is written: the stream just ends.
		s.log.Warn("service logs cut short", "service", name, "err", err)
	}
	if !q.Follow {
		_ = rc.Flush()
	}
	return nil
}
