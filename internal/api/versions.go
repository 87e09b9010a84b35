package api

import (
	"net/http"
	"strconv"

	"github.com/wisp-run/wisp/internal/core"
)

type versionList struct {
	Versions []core.Version `json:"versions"`
}

func (s *Server) createVersion(w http.ResponseWriter, r *http.Request) error {
	var spec core.VersionSpec
	if err := s.decode(w, r, &spec, false); err != nil {
		return err
	}
	v, err := s.store.CreateVersion(r.Context(), core.Version{Service: r.PathValue("name"), VersionSpec: spec})
	if err != nil {
		return err
	}
	s.onChange()
	w.Header().Set("Location", "/v1/services/"+v.Service+"/versions/"+strconv.Itoa(v.Number))
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) error {
	list, err := s.store.ListVersions(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, versionList{Versions: list})
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) error {
	n, err := versionNumber(r)
	if err != nil {
		return err
	}
	v, err := s.store.GetVersion(r.Context(), r.PathValue("name"), n)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) deleteVersion(w http.ResponseWriter, r *http.Request) error {
	n, err := versionNumber(r)
	if err != nil {
		return err
	}
	if err := s.store.DeleteVersion(r.Context(), r.PathValue("name"), n); err != nil {
		return err
	}
	s.onChange()
	w.WriteHeader(http.StatusNoContent)
	return nil
}
