package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Rollouts (docs/rollouts.md). The handlers start one and apply a person's
// actions; the controller, on the leader, does the steps and the checks.

func (s *Server) startRollout(w http.ResponseWriter, r *http.Request) error {
	var spec core.RolloutSpec
	if err := s.decode(w, r, &spec, false); err != nil {
		return err
	}
	ro, err := s.store.CreateRollout(r.Context(), r.PathValue("name"), spec)
	if err != nil {
		return err
	}
	s.rolloutEvent(r, core.EventRolloutStarted, ro, fmt.Sprintf("rollout %d started by %s: version %d in steps %s every %s", ro.ID, client(r), ro.To, core.RolloutSteps(ro.Steps), ro.Interval))
	s.rolloutTrafficChanged(r, ro)
	return writeJSON(w, http.StatusCreated, ro)
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) error {
	ro, err := s.store.GetRollout(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ro)
}

// rolloutAction serves POST …/rollout/{pause,resume,promote,abort}.
func (s *Server) rolloutAction(action, event string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		by := client(r)
		ro, err := s.store.UpdateRollout(r.Context(), r.PathValue("name"), core.RolloutAction(action, by, time.Now()))
		if err != nil {
			return err
		}
		s.rolloutEvent(r, event, ro, fmt.Sprintf("rollout %d: %s", ro.ID, ro.Reason))
		if action == core.RolloutPromote || action == core.RolloutAbort {
			s.rolloutTrafficChanged(r, ro)
		}
		return writeJSON(w, http.StatusOK, ro)
	}
}

func (s *Server) rolloutEvent(r *http.Request, event string, ro core.Rollout, msg string) {
	if s.events == nil {
		return
	}
	s.events.Append(core.PlatformEvent(event, ro.Service, ro.To, "", msg, "rollout", strconv.FormatInt(ro.ID, 10), "to", strconv.Itoa(ro.To),
		"step", strconv.Itoa(ro.Step), "percent", strconv.Itoa(ro.Percent), "by", client(r)))
}

// rolloutTrafficChanged reports the entry a rollout action wrote.
func (s *Server) rolloutTrafficChanged(r *http.Request, ro core.Rollout) {
	if s.events == nil {
		return
	}
	if e, err := s.store.GetTraffic(r.Context(), ro.Service); err == nil && e.ID == ro.LastEntry {
		s.trafficChanged(r, e, client(r))
	}
}
