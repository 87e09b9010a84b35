package api

import (
	"net/http"

	"github.com/wisp-run/wisp/internal/core"
)

type trafficHistory struct {
	Entries []core.TrafficEntry `json:"entries"`
}

type rollbackRequest struct {
	// ToEntry is the history entry to restore; 0 or omitted means the entry
	// before the current one.
	ToEntry int64 `json:"to_entry"`
}

func (s *Server) setTraffic(w http.ResponseWriter, r *http.Request) error {
	var t core.Traffic
	if err := s.decode(w, r, &t, false); err != nil {
		return err
	}
	e, err := s.store.SetTraffic(r.Context(), r.PathValue("name"), t, 0)
	if err != nil {
		return err
	}
	s.onChange(r.Context())
	return writeJSON(w, http.StatusOK, e)
}

func (s *Server) getTraffic(w http.ResponseWriter, r *http.Request) error {
	e, err := s.store.GetTraffic(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Server) trafficHistory(w http.ResponseWriter, r *http.Request) error {
	list, err := s.store.TrafficHistory(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, trafficHistory{Entries: list})
}

func (s *Server) rollbackTraffic(w http.ResponseWriter, r *http.Request) error {
	var req rollbackRequest
	if err := s.decode(w, r, &req, true); err != nil {
		return err
	}
	if req.ToEntry < 0 {
		return core.Invalidf("to_entry", "to_entry must be a traffic entry ID, got %d", req.ToEntry)
	}
	e, err := s.store.RollbackTraffic(r.Context(), r.PathValue("name"), req.ToEntry, 0)
	if err != nil {
		return err
	}
	s.onChange(r.Context())
	return writeJSON(w, http.StatusCreated, e)
}
