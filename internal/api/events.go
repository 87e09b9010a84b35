package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/wisp-run/wisp/internal/core"
)

// EventSink receives the platform events of the API (traffic.changed, see
// docs/events.md). Append must never block.
type EventSink interface {
	Append(e core.LogEntry)
}

// WithEvents sends a traffic.changed event to sink after every change of
// a service's traffic through the API.
func WithEvents(sink EventSink) Option { return func(s *Server) { s.events = sink } }

// client names who asks, from the Wisp-Client header: cli, dashboard, or
// api for anything else.
func client(r *http.Request) string {
	switch c := r.Header.Get(core.ClientHeader); c {
	case "cli", "dashboard":
		return c
	}
	return "api"
}

// trafficChanged reports that entry e is the service's traffic now, made
// by by (a client, or "rollback" with client given as a field).
func (s *Server) trafficChanged(r *http.Request, e core.TrafficEntry, by string) {
	if s.events == nil {
		return
	}
	split := core.TrafficSummary(e.Traffic)
	fields := []string{"by", by, "traffic", split, "entry", strconv.FormatInt(e.ID, 10)}
	msg := fmt.Sprintf("traffic changed by %s: %s (entry %d)", by, split, e.ID)
	if by == "rollback" {
		c := client(r)
		fields = append(fields, "client", c)
		msg = fmt.Sprintf("traffic rolled back by %s: %s (entry %d)", c, split, e.ID)
	}
	s.events.Append(core.PlatformEvent(core.EventTrafficChanged, e.Service, 0, "", msg, fields...))
}

// versionTrafficChanged reports the traffic a new version v was given, if
// its creation shifted traffic to it (a service's first version gets all).
func (s *Server) versionTrafficChanged(ctx context.Context, r *http.Request, v core.Version) {
	if s.events == nil {
		return
	}
	e, err := s.store.GetTraffic(ctx, v.Service)
	if err != nil || e.PercentOf(v.Number) == 0 {
		return
	}
	s.trafficChanged(r, e, client(r))
}
