package api

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

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
	split := FormatTraffic(e.Traffic)
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

// FormatTraffic writes a split as "1=90,2=10", followed by the tags, if
// any, as " canary=2,beta=3" (by name).
func FormatTraffic(t core.Traffic) string {
	var b strings.Builder
	for i, w := range t.Weights {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(w.Version) + "=" + strconv.Itoa(w.Percent))
	}
	if len(t.Tags) > 0 {
		names := make([]string, 0, len(t.Tags))
		for n := range t.Tags {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			if i == 0 {
				b.WriteByte(' ')
			} else {
				b.WriteByte(',')
			}
			b.WriteString(n + "=" + strconv.Itoa(t.Tags[n]))
		}
	}
	return b.String()
}
