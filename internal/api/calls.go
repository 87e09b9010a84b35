package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/wisp-run/wisp/internal/core"
)

// Calls reads and replays async calls (the async package).
type Calls interface {
	// Get returns a call, or core.ErrNotFound.
	Get(ctx context.Context, id string) (*core.Call, error)
	// List returns a service's calls, newest first, in state ("" any).
	List(ctx context.Context, service, state string, limit int) ([]core.Call, error)
	// Retry queues a dead or failed call again (core.ErrConflict otherwise).
	Retry(ctx context.Context, id string) (*core.Call, error)
}

// WithCalls serves the async calls' routes from c.
func WithCalls(c Calls) Option { return func(s *Server) { s.calls = c } }

// redactedHeaders are not shown in a call's record: the admin API is
// private, but a credential has no business in a status page.
var redactedHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization"}

func redact(c *core.Call) *core.Call {
	out := *c
	if h := c.Request.Header; h != nil {
		h = h.Clone()
		for _, k := range redactedHeaders {
			if h.Get(k) != "" {
				h.Set(k, "[redacted]")
			}
		}
		out.Request.Header = h
	}
	return &out
}

func (s *Server) callsEnabled() error {
	if s.calls == nil {
		return core.Unavailablef("async calls are off on this server (it runs without NATS)")
	}
	return nil
}

func (s *Server) getCall(w http.ResponseWriter, r *http.Request) error {
	if err := s.callsEnabled(); err != nil {
		return err
	}
	c, err := s.calls.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, redact(c))
}

func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) error {
	if err := s.callsEnabled(); err != nil {
		return err
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return badRequest("limit", "limit must be a positive number, got %q", v)
		}
		limit = n
	}
	state := r.URL.Query().Get("state")
	calls, err := s.calls.List(r.Context(), r.PathValue("name"), state, limit)
	if err != nil {
		return err
	}
	for i := range calls {
		calls[i] = *redact(&calls[i])
	}
	return writeJSON(w, http.StatusOK, map[string]any{"calls": calls})
}

func (s *Server) retryCall(w http.ResponseWriter, r *http.Request) error {
	if err := s.callsEnabled(); err != nil {
		return err
	}
	c, err := s.calls.Retry(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, redact(c))
}
