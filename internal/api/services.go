package api

import (
	"net/http"

	"github.com/wisp-run/wisp/internal/core"
)

type createServiceRequest struct {
	Name   string           `json:"name"`
	Policy core.PolicyPatch `json:"policy"`
}

type updateServiceRequest struct {
	Policy core.PolicyPatch `json:"policy"`
}

type serviceList struct {
	Services []core.Service `json:"services"`
}

func (s *Server) createService(w http.ResponseWriter, r *http.Request) error {
	var req createServiceRequest
	if err := s.decode(w, r, &req, false); err != nil {
		return err
	}
	sv, err := s.store.CreateService(r.Context(), core.Service{Name: req.Name, Policy: req.Policy.Apply(core.DefaultPolicy())})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/services/"+sv.Name)
	return writeJSON(w, http.StatusCreated, s.decorate(sv))
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) error {
	list, err := s.store.ListServices(r.Context())
	if err != nil {
		return err
	}
	for i := range list {
		list[i] = s.decorate(list[i])
	}
	return writeJSON(w, http.StatusOK, serviceList{Services: list})
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) error {
	sv, err := s.store.GetService(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.decorate(sv))
}

func (s *Server) updateService(w http.ResponseWriter, r *http.Request) error {
	var req updateServiceRequest
	if err := s.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.Policy.IsEmpty() {
		return core.Invalidf("policy", "nothing to change: give at least one policy field, for example {\"policy\":{\"min_instances\":1}}")
	}
	sv, err := s.store.UpdatePolicy(r.Context(), r.PathValue("name"), req.Policy)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.decorate(sv))
}

func (s *Server) deleteService(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.DeleteService(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// versionNumber reads the {number} path value: "3" or "v3".
func versionNumber(r *http.Request) (int, error) {
	raw := r.PathValue("number")
	n, ok := core.ParseVersionNumber(raw)
	if !ok {
		return 0, badRequest("number", "version %q is not a version number; use 1, 2, … (or v1, v2, …)", raw)
	}
	return n, nil
}
