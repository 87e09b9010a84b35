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
	s.versionTrafficChanged(r.Context(), r, v)
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
	e, err := s.setKeepingTags(r.Context(), name, t)
	if err != nil {
		return err
	}
	s.trafficChanged(r, e, client(r))
	out, err := s.toSeedTraffic(r.Context(), e)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

// seedAttempts bounds how often a seed traffic write re-reads the tags it
// keeps when another change slipped in between.
const seedAttempts = 5

// setKeepingTags sets t's weights with the current tags, request rules, mirror and
// stickiness: they are not part of the seed API, and a script must not
// silently drop them.
// The write is conditional on the entry the tags were read from, so a
// concurrent change of the tags is not lost either; on a conflict it reads
// again.
func (s *Server) setKeepingTags(ctx context.Context, name string, t core.Traffic) (core.TrafficEntry, error) {
	for attempt := 1; ; attempt++ {
		cur, err := s.store.GetTraffic(ctx, name)
		var cond int64
		switch {
		case err == nil:
			t.Tags, t.Rules, t.Mirror, t.Sticky, cond = cur.Tags, cur.Rules, t.MirrorFor(cur.Mirror), cur.Sticky, cur.ID
		case errors.Is(err, core.ErrNotFound):
			// No traffic yet (or no service: SetTraffic says which).
			t.Tags, t.Rules, t.Mirror, t.Sticky = nil, nil, nil, false
		default:
			return core.TrafficEntry{}, err
		}
		e, err := s.store.SetTraffic(ctx, name, t, cond)
		if errors.Is(err, core.ErrPreconditionFailed) && attempt < seedAttempts {
			continue
		}
		return e, err
	}
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

func (s *Server) toSeedTraffic(ctx context.Context, e core.TrafficEntry) (seedTraffic, error) {
	list, err := s.store.ListVersions(ctx, e.Service)
	if err != nil {
		return seedTraffic{}, err
	}
	return seedWeights(list, e.Traffic), nil
}

// seedWeights names t's versions by their global IDs.
func seedWeights(versions []core.Version, t core.Traffic) seedTraffic {
	out := seedTraffic{Weights: make([]seedWeight, 0, len(t.Weights))}
	ids := make(map[int]int64, len(versions))
	for _, v := range versions {
		ids[v.Number] = v.ID
	}
	for _, w := range t.Weights {
		if id, ok := ids[w.Version]; ok {
			out.Weights = append(out.Weights, seedWeight{ServiceVersionID: id, Weight: w.Percent})
		}
	}
	return out
}

func (s *Server) seedGetTraffic(w http.ResponseWriter, r *http.Request) error {
	// One read: the versions and the split agree.
	st, err := s.store.ServiceState(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if st.Traffic == nil {
		// A service without versions has no split yet: answer an empty one,
		// as the walkthrough's scripts expect a list they can read.
		return writeJSON(w, http.StatusOK, seedTraffic{Weights: []seedWeight{}})
	}
	return writeJSON(w, http.StatusOK, seedWeights(st.Versions, st.Traffic.Traffic))
}
