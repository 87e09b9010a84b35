package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/wisp-run/wisp/internal/core"
)

// Builds runs builds from source (the build runner).
type Builds interface {
	// Submit checks the request and the uploaded context (a tar stream)
	// and starts the build.
	Submit(ctx context.Context, req core.BuildRequest, upload io.Reader) (core.Build, error)
	Get(ctx context.Context, id int64) (core.Build, error)
	List(ctx context.Context, service string, limit int) ([]core.Build, error)
	// Logs writes the build's output to w; with follow, until it ends.
	Logs(ctx context.Context, id int64, follow bool, w io.Writer, flush func()) error
}

// WithBuilds serves the /v1/builds routes.
func WithBuilds(b Builds) Option { return func(s *Server) { s.builds = b } }

type buildList struct {
	Builds []core.Build `json:"builds"`
}

const buildUsage = `POST /v1/builds takes multipart/form-data with two parts, in this order: "build", a JSON build request, and "context", the build context as a tar stream`

func (s *Server) buildsEnabled() error {
	if s.builds == nil {
		return core.Unavailablef("builds are not available on this server: its runtime cannot build images")
	}
	return nil
}

func (s *Server) createBuild(w http.ResponseWriter, r *http.Request) error {
	if err := s.buildsEnabled(); err != nil {
		return err
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return &requestError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: buildUsage + ": " + err.Error()}
	}
	part, err := mr.NextPart()
	if err != nil {
		return badRequest("build", "%s; the first part is missing: %v", buildUsage, err)
	}
	if part.FormName() != "build" {
		return badRequest("build", "%s; the first part is %q", buildUsage, part.FormName())
	}
	var in struct {
		core.BuildRequest
		Version versionRequest `json:"version"`
	}
	if err := s.decodeFrom(w, part, &in, false, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	req := in.BuildRequest
	if req.Version, err = in.Version.spec(); err != nil {
		return err
	}
	part, err = mr.NextPart()
	if err != nil {
		return badRequest("context", "%s; the context part is missing: %v", buildUsage, err)
	}
	if part.FormName() != "context" {
		return badRequest("context", "%s; the second part is %q", buildUsage, part.FormName())
	}
	b, err := s.builds.Submit(r.Context(), req, part)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/builds/"+strconv.FormatInt(b.ID, 10))
	return writeJSON(w, http.StatusAccepted, b)
}

func (s *Server) listBuilds(w http.ResponseWriter, r *http.Request) error {
	if err := s.buildsEnabled(); err != nil {
		return err
	}
	limit := 50
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit", "limit must be a number from 1 to 1000, got %q", q)
		}
		limit = n
	}
	list, err := s.builds.List(r.Context(), r.URL.Query().Get("service"), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, buildList{Builds: list})
}

func buildID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest("id", "build id must be a positive number, got %q", r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) getBuild(w http.ResponseWriter, r *http.Request) error {
	if err := s.buildsEnabled(); err != nil {
		return err
	}
	id, err := buildID(r)
	if err != nil {
		return err
	}
	b, err := s.builds.Get(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

func (s *Server) buildLogs(w http.ResponseWriter, r *http.Request) error {
	if err := s.buildsEnabled(); err != nil {
		return err
	}
	id, err := buildID(r)
	if err != nil {
		return err
	}
	follow := false
	if q := r.URL.Query().Get("follow"); q != "" {
		if follow, err = strconv.ParseBool(q); err != nil {
			return badRequest("follow", "follow must be true or false, got %q", q)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	rc := http.NewResponseController(w)
	flush := func() { _ = rc.Flush() }
	// Logs checks the build before it writes, so a missing build is still
	// a 404 in our error format.
	started := false
	err = s.builds.Logs(r.Context(), id, follow, writerFunc(func(p []byte) (int, error) {
		started = true
		return w.Write(p)
	}), flush)
	if err != nil && !started {
		return err
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("build logs cut short", "build", id, "err", err)
	}
	return nil
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
