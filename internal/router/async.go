package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// AsyncSubmitter stores a request as an async call of service (the async
// calls, wired by the daemon) and returns its ID once it is durably stored.
type AsyncSubmitter interface {
	Submit(ctx context.Context, service string, r *http.Request) (id string, duplicate bool, err error)
}

// EventIngester publishes the CloudEvents of an HTTP request (structured,
// batched or binary) on subject ("" derives it from each event's type) and
// returns their IDs and the subject used.
type EventIngester interface {
	Ingest(ctx context.Context, subject string, h http.Header, body []byte) (ids []string, used string, err error)
}

// Async requests and the headers of their answer.
const (
	asyncPrefix  = "/async/"
	eventsPrefix = "/events/"
	// headerAsyncAttempt marks the dispatcher's own requests: an attempt
	// of a call is never taken for a new submission.
	headerAsyncAttempt = "Wisp-Async-Attempt"
	HeaderCallID       = "Wisp-Call-Id"
)

// preferAsync reports whether req asks to be handled as an async call
// with Prefer: respond-async (RFC 7240); an attempt of a call never does.
func preferAsync(req *http.Request) bool {
	if req.Header.Get(headerAsyncAttempt) != "" {
		return false
	}
	for _, v := range req.Header.Values("Prefer") {
		for p := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), ";")
			if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
				return true
			}
		}
	}
	return false
}

// submitAsync stores the request and answers 202 with where to read its
// result.
func (r *Router) submitAsync(w http.ResponseWriter, req *http.Request, service, pin, path string) {
	if r.cfg.Async == nil {
		writeError(w, req, http.StatusServiceUnavailable, "async calls are off on this Wisp (it runs without NATS)")
		return
	}
	if path != "" {
		u := *req.URL
		u.Path, u.RawPath = path, ""
		req.URL = &u
	}
	if pin != "" {
		req.Header.Set(HeaderVersion, pin)
	}
	id, dup, err := r.cfg.Async.Submit(req.Context(), service, req)
	if err != nil {
		r.fail(w, req, err)
		return
	}
	h := w.Header()
	h.Set(HeaderCallID, id)
	h.Set("Location", "/v1/calls/"+id)
	h.Set("Content-Type", "application/json")
	if dup {
		h.Set("Wisp-Duplicate", "true")
	}
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "service": service, "state": "queued", "status_url": "/v1/calls/" + id, "duplicate": dup})
}

// maxEventBody bounds an event posted to /events/.
const maxEventBody = 6 << 20

// ingestEvent takes the CloudEvents posted to /events/<subject>.
func (r *Router) ingestEvent(w http.ResponseWriter, req *http.Request, subject string) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, req, http.StatusMethodNotAllowed, "send events with POST /events/<subject>")
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxEventBody+1))
	if err != nil {
		writeError(w, req, http.StatusBadRequest, "read the event: "+err.Error())
		return
	}
	if len(body) > maxEventBody {
		writeError(w, req, http.StatusRequestEntityTooLarge, fmt.Sprintf("an event may be at most %d bytes", maxEventBody))
		return
	}
	ids, used, err := r.cfg.Events.Ingest(req.Context(), subject, req.Header, body)
	if err != nil {
		r.fail(w, req, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"ids": ids, "subject": used})
}
