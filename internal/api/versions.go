package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/wisp-run/wisp/internal/core"
)

type versionList struct {
	Versions []core.Version `json:"versions"`
}

// versionRequest is a version spec as a client sends it. Timeout shadows
// the spec's: an omitted timeout means the default, but an explicit 0 is
// refused rather than taken for "omitted" (issue 10).
type versionRequest struct {
	core.VersionSpec
	Timeout *core.Duration `json:"timeout"`
}

func (r versionRequest) spec() (core.VersionSpec, error) {
	s := r.VersionSpec
	if r.Timeout != nil {
		if *r.Timeout == 0 {
			return s, core.Invalidf("timeout", "timeout must be between 1s and 1h, got 0s; leave it out for the default of %s", core.DefaultTimeout)
		}
		s.Timeout = *r.Timeout
	}
	return s, nil
}

func (s *Server) createVersion(w http.ResponseWriter, r *http.Request) error {
	var req versionRequest
	if err := s.decode(w, r, &req, false); err != nil {
		return err
	}
	spec, err := req.spec()
	if err != nil {
		return err
	}
	imageID, err := s.pinImage(r.Context(), r.PathValue("name"), spec)
	if err != nil {
		return err
	}
	v, err := s.store.CreateVersion(r.Context(), core.Version{Service: r.PathValue("name"), ImageID: imageID, VersionSpec: spec})
	if err != nil {
		return err
	}
	s.versionTrafficChanged(r.Context(), r, v)
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
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pinImage validates spec and resolves its image to the ID that every
// instance of the version will run. It checks the service first, so a typo
// in the service name is reported as such rather than as a missing image.
func (s *Server) pinImage(ctx context.Context, service string, spec core.VersionSpec) (string, error) {
	if err := spec.WithDefaults().Validate(); err != nil {
		return "", err
	}
	if _, err := s.store.GetService(ctx, service); err != nil {
		return "", err
	}
	if s.images == nil {
		return "", nil
	}
	return s.images.ResolveImage(ctx, spec.Image)
}

type instanceList struct {
	Instances []core.InstanceInfo `json:"instances"`
}

func (s *Server) serviceInstances(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := s.store.GetService(r.Context(), name); err != nil {
		return err
	}
	list := []core.InstanceInfo{}
	if s.instances != nil {
		list = s.instances.Instances(name)
	}
	return writeJSON(w, http.StatusOK, instanceList{Instances: list})
}

func (s *Server) allInstances(w http.ResponseWriter, r *http.Request) error {
	list := []core.InstanceInfo{}
	if s.instances != nil {
		list = s.instances.Instances("")
	}
	return writeJSON(w, http.StatusOK, instanceList{Instances: list})
}
