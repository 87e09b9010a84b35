package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/wisp-run/wisp/internal/core"
)

// MirrorReporter gives the report of a service's mirror over every
// replica (wired by the daemon: on several replicas, the leader's router
// adds what the others sent it, and a follower asks the leader).
type MirrorReporter interface {
	// MirrorReport returns the report; an error wrapping core.ErrNotFound
	// for a service the router does not know.
	MirrorReport(ctx context.Context, service string) (core.MirrorReport, error)
}

// LeaderMirrorReporter is the optional ability of a MirrorReporter to
// answer the followers' requests for the leader's combined report.
type LeaderMirrorReporter interface {
	// LeaderMirrorReport returns the leader's combined report, never
	// asking another replica; an error wrapping core.ErrConflict when this
	// replica does not lead, core.ErrNotFound for a service its router
	// does not know.
	LeaderMirrorReport(service string) (core.MirrorReport, error)
}

// WithMirrorReports serves GET /v1/services/{name}/mirror/report and, when
// m is a LeaderMirrorReporter, the followers' GET
// /v1/internal/services/{name}/mirror/report.
func WithMirrorReports(m MirrorReporter) Option { return func(s *Server) { s.mirrors = m } }

// setMirror appends a traffic entry that is the current one with the mirror
// given (PUT) or none (DELETE). The write is conditional on the entry read,
// so a concurrent change of the weights is not lost; on a conflict it reads
// again.
func (s *Server) setMirror(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var m *core.Mirror
	if r.Method == http.MethodPut {
		m = new(core.Mirror)
		if err := s.decode(w, r, m, false); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		cur, err := s.store.GetTraffic(r.Context(), name)
		if err != nil {
			return err
		}
		t := cur.Traffic
		t.Mirror = m
		if m != nil {
			t.Message = "mirror " + m.String()
		} else {
			if cur.Mirror == nil {
				return writeEntry(w, http.StatusOK, cur) // already off
			}
			t.Message = fmt.Sprintf("mirror to v%d off", cur.Mirror.Version)
		}
		e, err := s.store.SetTraffic(r.Context(), name, t, cur.ID)
		if errors.Is(err, core.ErrPreconditionFailed) && attempt < seedAttempts {
			continue
		}
		if err != nil {
			return err
		}
		s.trafficChanged(r, e, client(r))
		return writeEntry(w, http.StatusOK, e)
	}
}

func (s *Server) mirrorReport(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := s.store.GetService(r.Context(), name); err != nil {
		return err
	}
	if s.mirrors == nil {
		return writeJSON(w, http.StatusOK, core.MirrorReport{Service: name, Pairs: []core.MirrorPair{}})
	}
	rep, err := s.mirrors.MirrorReport(r.Context(), name)
	if errors.Is(err, core.ErrNotFound) {
		// Created a moment ago and not in this replica's router yet.
		rep, err = core.MirrorReport{Service: name, Pairs: []core.MirrorPair{}}, nil
	}
	if err != nil {
		return err
	}
	rep.Replica = s.info.Replica
	return writeJSON(w, http.StatusOK, rep)
}

// leaderMirrorReport answers a follower's request for the leader's
// combined report.
func (s *Server) leaderMirrorReport(w http.ResponseWriter, r *http.Request) error {
	lm, ok := s.mirrors.(LeaderMirrorReporter)
	if !ok {
		return core.Unavailablef("this server answers no replica's mirror report")
	}
	name := r.PathValue("name")
	if _, err := s.store.GetService(r.Context(), name); err != nil {
		return err
	}
	rep, err := lm.LeaderMirrorReport(name)
	if err != nil {
		return err
	}
	rep.Replica = s.info.Replica
	return writeJSON(w, http.StatusOK, rep)
}
