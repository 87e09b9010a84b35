package api

// The seed-compatible routes keep scripts written for the "Build Your Own
// Serverless" (cLess) walkthrough working. That project stored gorm models,
// so its JSON carries gorm's untagged fields (ID, CreatedAt, UpdatedAt,
// DeletedAt) beside snake_case ones, and its scripts read .host and .[].ID.
// These handlers map those shapes onto the same model and validation as /v1.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

type seedService struct {
	ID        int64      `json:"ID"`
	CreatedAt time.Time  `json:"CreatedAt"`
	UpdatedAt time.Time  `json:"UpdatedAt"`
	DeletedAt *time.Time `json:"DeletedAt"`
	Name      string     `json:"name"`
	Host      string     `json:"host"`
	URL       string     `json:"url"`
}

type seedVersionRequest struct {
	ImageName string   `json:"image_name"`
	ImageTag  string   `json:"image_tag"`
	Port      int      `json:"port"`
	EnvVars   []string `json:"env_vars"`
}

type seedVersion struct {
	ID                  int64      `json:"ID"`
	CreatedAt           time.Time  `json:"CreatedAt"`
	UpdatedAt           time.Time  `json:"UpdatedAt"`
	DeletedAt           *time.Time `json:"DeletedAt"`
	ServiceDefinitionID int64      `json:"service_definition_id"`
	Number              int        `json:"number"`
	ImageName           string     `json:"image_name"`
	ImageTag            string     `json:"image_tag"`
	Port                int        `json:"port"`
	EnvVars             []string   `json:"env_vars"`
}

type seedWeight struct {
	ServiceVersionID int64 `json:"service_version_id"`
	Weight           int   `json:"weight"`
}

type seedTraffic struct {
	Weights []seedWeight `json:"weights"`
}

func (s *Server) toSeedService(sv core.Service) seedService {
	sv = s.decorate(sv)
	return seedService{ID: sv.ID, CreatedAt: sv.CreatedAt, UpdatedAt: sv.UpdatedAt, Name: sv.Name, Host: sv.Host, URL: sv.URL}
}

func toSeedVersion(serviceID int64, v core.Version) seedVersion {
	name, tag := splitImage(v.Image)
	return seedVersion{ID: v.ID, CreatedAt: v.CreatedAt, UpdatedAt: v.CreatedAt, ServiceDefinitionID: serviceID,
		Number: v.Number, ImageName: name, ImageTag: tag, Port: v.Port, EnvVars: v.Env}
}

// splitImage splits "registry:5000/hello:1" into "registry:5000/hello" and "1".
func splitImage(ref string) (name, tag string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

func (s *Server) seedCreateService(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := s.decode(w, r, &req, false); err != nil {
		return err
	}
	sv, err := s.store.CreateService(r.Context(), core.Service{Name: req.Name, Policy: core.DefaultPolicy()})
	if err != nil {
		return err
	}
	s.onChange(r.Context())
	return writeJSON(w, http.StatusCreated, s.toSeedService(sv))
}

func (s *Server) seedListServices(w http.ResponseWriter, r *http.Request) error {
	list, err := s.store.ListServices(r.Context())
	if err != nil {
		return err
	}
	out := make([]seedService, 0, len(list))
	for _, sv := range list {
		out = append(out, s.toSeedService(sv))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) seedGetService(w http.ResponseWriter, r *http.Request) error {
	sv, err := s.store.GetService(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.toSeedService(sv))
}

func (s *Server) seedCreateVersion(w http.ResponseWriter, r *http.Request) error {
	var req seedVersionRequest
	if err := s.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.ImageName == "" {
		return core.Invalidf("image_name", "image_name is required, for example \"hello\"")
	}
	if strings.ContainsAny(req.ImageName, "@") || strings.ContainsAny(req.ImageTag, ":@/") {
		return core.Invalidf("image_tag", "give the image as image_name %q and image_tag %q without ':' or '@' in the tag", req.ImageName, req.ImageTag)
	}
	tag := req.ImageTag
	if tag == "" {
		tag = "latest"
	}
	ref := req.ImageName + ":" + tag
	if err := core.ValidateImageRef("image_name", ref); err != nil {
		return err
	}
	if err := core.ValidateEnv("env_vars", req.EnvVars); err != nil {
		return err
	}
	sv, err := s.store.GetService(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	spec := core.VersionSpec{Image: ref, Port: req.Port, Env: req.EnvVars}
	imageID, err := s.pinImage(r.Context(), sv.Name, spec)
	if err != nil {
		return err
	}
	v, err := s.store.CreateVersion(r.Context(), core.Version{Service: sv.Name, ImageID: imageID, VersionSpec: spec})
	if err != nil {
		return err
	}
	s.onChange(r.Context())
	return writeJSON(w, http.StatusCreated, toSeedVersion(sv.ID, v))
}

func (s *Server) seedListVersions(w http.ResponseWriter, r *http.Request) error {
	sv, err := s.store.GetService(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	list, err := s.store.ListVersions(r.Context(), sv.Name)
	if err != nil {
		return err
	}
	out := make([]seedVersion, 0, len(list))
	for _, v := range list {
		out = append(out, toSeedVersion(sv.ID, v))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) seedSetTraffic(w http.ResponseWriter, r *http.Request) error {
	var req seedTraffic
	if err := s.decode(w, r, &req, false); err != nil {
		return err
	}
	name := r.PathValue("name")
	t := core.Traffic{Weights: make([]core.Weight, 0, len(req.Weights))}
	for i, sw := range req.Weights {
		v, err := s.versionByID(r.Context(), name, sw.ServiceVersionID, i)
		if err != nil {
			return err
		}
		t.Weights = append(t.Weights, core.Weight{Version: v.Number, Percent: sw.Weight})
	}
	// Tags and stickiness are not part of the seed API; keep the current ones
	// so a script cannot silently drop them.
	if cur, err := s.store.GetTraffic(r.Context(), name); err == nil {
		t.Tags, t.Sticky = cur.Tags, cur.Sticky
	}
	e, err := s.store.SetTraffic(r.Context(), name, t, 0)
	if err != nil {
		return err
	}
	s.onChange(r.Context())
	return writeJSON(w, http.StatusCreated, s.toSeedTraffic(r.Context(), e))
}

// versionByID resolves a global version ID of the seed API to a version of
// service, or says which service it belongs to.
func (s *Server) versionByID(ctx context.Context, service string, id int64, i int) (core.Version, error) {
	field := "weights[" + strconv.Itoa(i) + "].service_version_id"
	if id < 1 {
		return core.Version{}, core.Invalidf(field, "weights[%d]: service_version_id must be a version ID (the ID field of a version), got %d", i, id)
	}
	v, err := s.store.GetVersionByID(ctx, id)
	if err != nil {
		if _, serr := s.store.GetService(ctx, service); serr != nil {
			return core.Version{}, serr
		}
		return core.Version{}, core.Invalidf(field, "weights[%d]: there is no version with ID %d", i, id)
	}
	if v.Service != service {
		return core.Version{}, core.Invalidf(field, "weights[%d]: version ID %d belongs to service %q, not %q", i, id, v.Service, service)
	}
	return v, nil
}

func (s *Server) toSeedTraffic(ctx context.Context, e core.TrafficEntry) seedTraffic {
	out := seedTraffic{Weights: make([]seedWeight, 0, len(e.Weights))}
	ids := map[int]int64{}
	if list, err := s.store.ListVersions(ctx, e.Service); err == nil {
		for _, v := range list {
			ids[v.Number] = v.ID
		}
	}
	for _, w := range e.Weights {
		if id, ok := ids[w.Version]; ok {
			out.Weights = append(out.Weights, seedWeight{ServiceVersionID: id, Weight: w.Percent})
		}
	}
	return out
}

func (s *Server) seedGetTraffic(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	e, err := s.store.GetTraffic(r.Context(), name)
	if errors.Is(err, core.ErrNotFound) {
		// A service without versions has no split yet: answer an empty one,
		// as the walkthrough's scripts expect a list they can read.
		if _, serr := s.store.GetService(r.Context(), name); serr != nil {
			return serr
		}
		return writeJSON(w, http.StatusOK, seedTraffic{Weights: []seedWeight{}})
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.toSeedTraffic(r.Context(), e))
}
