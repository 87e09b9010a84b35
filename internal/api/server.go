// Package api serves Wisp's admin REST API: the /v1 routes, the routes that
// are compatible with the "Build Your Own Serverless" walkthrough
// (/serviceDefinitions…), the OpenAPI document and /healthz.
//
// Handlers return errors; one function (writeError) turns every error into a
// status and a JSON body {"error":{"code","message","field"}}.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// Config configures the admin API.
type Config struct {
	// Token is the bearer token every route but /healthz requires.
	Token string
	// Domain is the router's domain: service hello is served at hello.<Domain>.
	Domain string
	// RouterScheme and RouterPort make up the URL reported for a service.
	RouterScheme string
	RouterPort   int
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	MaxBodyBytes int64
	// TokenHint tells a user without a token where to find it.
	TokenHint string
	// SyncTimeout bounds how long a response to a change waits for the
	// change to be live (see Syncer); default DefaultSyncTimeout.
	SyncTimeout time.Duration
}

// Defaults of Config.
const (
	// DefaultMaxBodyBytes is the default request body limit (1 MiB).
	DefaultMaxBodyBytes = 1 << 20
	// DefaultSyncTimeout is how long a change's response waits for the
	// change to be live at most.
	DefaultSyncTimeout = 5 * time.Second
)

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Token == "" {
		return errors.New("api: an admin token is required")
	}
	if c.Domain == "" {
		c.Domain = "localhost"
	}
	if c.RouterScheme == "" {
		c.RouterScheme = "http"
	}
	if c.RouterPort < 0 || c.RouterPort > 65535 {
		return fmt.Errorf("api: router port %d out of range", c.RouterPort)
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.SyncTimeout < 0 {
		return fmt.Errorf("api: sync timeout %s is negative", c.SyncTimeout)
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = DefaultSyncTimeout
	}
	return nil
}

// Server is the admin API. It is an http.Handler.
type Server struct {
	cfg       Config
	store     store.Store
	log       *slog.Logger
	mux       *http.ServeMux
	routes    []string
	tokenHash [sha256.Size]byte
	syncer    Syncer
	mirrors   MirrorReporter
	images    ImageResolver
	instances InstanceLister
	metrics   http.Handler
	builds    Builds
	info      core.ServerInfo
	replicas  Replicas
	events    EventSink
	logs      LogReader
	calls     Calls
	triggers  Triggers
	schedules Schedules
}

// ImageResolver pins an image reference to an image ID (the runtime).
type ImageResolver interface {
	// ResolveImage returns the image ID; an error wrapping core.ErrInvalid
	// when the image is not present.
	ResolveImage(ctx context.Context, ref string) (string, error)
}

// InstanceLister reports running instances (the activator).
type InstanceLister interface {
	// Instances lists the instances of service, or of all services for "".
	Instances(service string) []core.InstanceInfo
}

// Option configures optional parts of a Server.
type Option func(*Server)

// Syncer waits until what the store has committed is live in the router.
type Syncer interface {
	// Sync returns once every change committed before the call has been
	// applied to the router and the activator, or with ctx's error.
	Sync(ctx context.Context) error
}

// WithSyncer makes every request that may change something (any method but
// GET and HEAD) wait, before its success status is written, until what the
// store has committed is live in the router (bounded by
// Config.SyncTimeout): a client that sees the answer to its change sees the
// change in the router too. When Sync fails, the change (committed) still
// answers its 2xx, with a Warning header that says so. Without a Syncer
// nothing waits.
func WithSyncer(sy Syncer) Option { return func(s *Server) { s.syncer = sy } }

// WithImageResolver pins each new version's image to its ID, refusing
// versions whose image is missing.
func WithImageResolver(r ImageResolver) Option { return func(s *Server) { s.images = r } }

// WithMetrics serves handler (Prometheus's) at GET /metrics.
func WithMetrics(handler http.Handler) Option { return func(s *Server) { s.metrics = handler } }

// WithInfo serves info at GET /v1/info: the daemon's build and adapters.
func WithInfo(info core.ServerInfo) Option { return func(s *Server) { s.info = info } }

// Replicas is the leader's side of several replicas (the activator).
type Replicas interface {
	// Leading reports whether this replica leads.
	Leading() bool
	// ReceiveLoad records another replica's load report and returns the
	// answer; an error wrapping core.ErrConflict when this replica does
	// not lead.
	ReceiveLoad(r core.LoadReport) (core.LoadReply, error)
}

// WithReplicas serves POST /v1/internal/load, where the replicas that do
// not lead report their load, and makes GET /v1/info say whether this
// replica leads.
func WithReplicas(r Replicas) Option { return func(s *Server) { s.replicas = r } }

// WithInstances serves the instances view.
func WithInstances(l InstanceLister) Option { return func(s *Server) { s.instances = l } }

// New returns the admin API over st.
func New(cfg Config, st store.Store, logger *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		store:     st,
		log:       logger.With("component", "api"),
		mux:       http.NewServeMux(),
		tokenHash: sha256.Sum256([]byte(cfg.Token)),
	}
	for _, o := range opts {
		o(s)
	}
	s.registerRoutes()
	return s, nil
}

func (s *Server) registerRoutes() {
	s.handleOpen("GET /healthz", s.healthz)
	s.handle("GET /v1/openapi.json", s.openAPI)
	s.handle("GET /v1/info", s.serverInfo)
	s.handle("GET /metrics", s.serveMetrics)
	s.handle("POST "+loadPath, s.receiveLoad)
	s.handle("GET /v1/internal/services/{name}/mirror/report", s.leaderMirrorReport)

	s.handle("POST /v1/services", s.createService)
	s.handle("GET /v1/services", s.listServices)
	s.handle("GET /v1/services/{name}", s.getService)
	s.handle("PATCH /v1/services/{name}", s.updateService)
	s.handle("DELETE /v1/services/{name}", s.deleteService)

	s.handle("POST /v1/services/{name}/versions", s.createVersion)
	s.handle("GET /v1/services/{name}/versions", s.listVersions)
	s.handle("GET /v1/services/{name}/versions/{number}", s.getVersion)
	s.handle("DELETE /v1/services/{name}/versions/{number}", s.deleteVersion)

	s.handle("GET /v1/services/{name}/instances", s.serviceInstances)
	s.handle("GET /v1/instances", s.allInstances)
	s.handle("GET /v1/services/{name}/logs", s.serviceLogs)

	s.handle("PUT /v1/services/{name}/traffic", s.setTraffic)
	s.handle("GET /v1/services/{name}/traffic", s.getTraffic)
	s.handle("GET /v1/services/{name}/traffic/history", s.trafficHistory)
	s.handle("POST /v1/services/{name}/traffic/rollback", s.rollbackTraffic)
	s.handle("PUT /v1/services/{name}/mirror", s.setMirror)
	s.handle("DELETE /v1/services/{name}/mirror", s.setMirror)
	s.handle("GET /v1/services/{name}/mirror/report", s.mirrorReport)

	s.handle("POST /v1/services/{name}/rollout", s.startRollout)
	s.handle("GET /v1/services/{name}/rollout", s.getRollout)
	s.handle("POST /v1/services/{name}/rollout/pause", s.rolloutAction(core.RolloutPause, core.EventRolloutPaused))
	s.handle("POST /v1/services/{name}/rollout/resume", s.rolloutAction(core.RolloutResume, core.EventRolloutResumed))
	s.handle("POST /v1/services/{name}/rollout/promote", s.rolloutAction(core.RolloutPromote, core.EventRolloutSucceeded))
	s.handle("POST /v1/services/{name}/rollout/abort", s.rolloutAction(core.RolloutAbort, core.EventRolloutAborted))

	s.handle("POST /v1/builds", s.createBuild)
	s.handle("GET /v1/builds", s.listBuilds)
	s.handle("GET /v1/builds/{id}", s.getBuild)
	s.handle("GET /v1/builds/{id}/logs", s.buildLogs)

	s.handle("GET /v1/calls/{id}", s.getCall)
	s.handle("POST /v1/calls/{id}/retry", s.retryCall)
	s.handle("GET /v1/services/{name}/calls", s.listCalls)

	s.handle("POST /v1/triggers", s.createTrigger)
	s.handle("GET /v1/triggers", s.listTriggers)
	s.handle("GET /v1/triggers/{name}", s.getTrigger)
	s.handle("DELETE /v1/triggers/{name}", s.deleteTrigger)
	s.handle("POST /v1/events", s.postEvents)

	s.handle("POST /v1/schedules", s.createSchedule)
	s.handle("GET /v1/schedules", s.listSchedules)
	s.handle("GET /v1/schedules/{name}", s.getSchedule)
	s.handle("PATCH /v1/schedules/{name}", s.updateSchedule)
	s.handle("DELETE /v1/schedules/{name}", s.deleteSchedule)
	s.handle("GET /v1/schedules/{name}/next", s.nextRuns)
	s.handle("POST /v1/schedules/{name}/run", s.runSchedule)

	s.handle("POST /serviceDefinitions", s.seedCreateService)
	s.handle("GET /serviceDefinitions", s.seedListServices)
	s.handle("GET /serviceDefinitions/{name}", s.seedGetService)
	s.handle("POST /serviceDefinitions/{name}/versions", s.seedCreateVersion)
	s.handle("GET /serviceDefinitions/{name}/versions", s.seedListVersions)
	s.handle("POST /serviceDefinitions/{name}/trafficWeights", s.seedSetTraffic)
	s.handle("GET /serviceDefinitions/{name}/trafficWeights", s.seedGetTraffic)
}

// Routes returns the patterns of every registered route ("GET /v1/services").
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers an authenticated route.
func (s *Server) handle(pattern string, h handlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.Handle(pattern, s.errorHandler(s.authenticated(h)))
}

// handleOpen registers a route that needs no token.
func (s *Server) handleOpen(pattern string, h handlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.Handle(pattern, s.errorHandler(h))
}

func (s *Server) errorHandler(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) authenticated(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		auth := r.Header.Get("Authorization")
		if auth == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wisp"`)
			return core.Unauthorizedf("missing Authorization header; send \"Authorization: Bearer <token>\"%s", s.cfg.TokenHint)
		}
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wisp"`)
			return core.Unauthorizedf("the Authorization header must be \"Bearer <token>\"")
		}
		// Hashing first makes the comparison constant-time in the token's
		// length too.
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wisp", error="invalid_token"`)
			return core.Unauthorizedf("the admin token is wrong%s", s.cfg.TokenHint)
		}
		return h(w, r)
	}
}

// ServeHTTP routes a request. Requests that match no route get a JSON 404,
// or a JSON 405 with an Allow header when the path exists for other methods.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	var out http.ResponseWriter = rec
	// A load report changes nothing in the store: it must not wait for the
	// change feed (and it comes every second).
	if s.syncer != nil && r.Method != http.MethodGet && r.Method != http.MethodHead && r.URL.Path != loadPath {
		out = &syncWriter{ResponseWriter: rec, barrier: func() { s.barrier(r, rec.Header()) }}
	}
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		// Ask the mux what it would have answered (404, 405 or a redirect),
		// then answer the same status in our format.
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			out.Header().Set("Allow", probe.header.Get("Allow"))
			s.writeError(out, r, &requestError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
				msg: fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, probe.header.Get("Allow"))})
		case http.StatusNotFound:
			s.writeError(out, r, &requestError{status: http.StatusNotFound, code: "not_found",
				msg: fmt.Sprintf("no route %s %s; see GET /v1/openapi.json for the API", r.Method, r.URL.Path)})
		default:
			h.ServeHTTP(out, r)
		}
	} else {
		// ServeHTTP, not h: only the mux sets the request's path values.
		s.mux.ServeHTTP(out, r)
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's Flush, which
// streamed build logs need.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// syncWriter runs barrier once, before the first status below 400 is
// written: the read-your-writes barrier of WithSyncer, applied to every
// response alike rather than by each handler.
type syncWriter struct {
	http.ResponseWriter
	barrier func()
	written bool
}

func (w *syncWriter) WriteHeader(code int) {
	if !w.written && code >= 200 { // 1xx are not the answer
		w.written = true
		if code < 400 {
			w.barrier()
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *syncWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends the status first, so a flushed response waits like any.
func (w *syncWriter) Flush() {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *syncWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// barrier waits until the store's committed changes are live, or adds a
// Warning (RFC 9111, section 5.5; code 199, "miscellaneous warning") to
// header when they are not in time.
func (s *Server) barrier(r *http.Request, header http.Header) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SyncTimeout)
	defer cancel()
	err := s.syncer.Sync(ctx)
	if err == nil {
		return
	}
	header.Add("Warning", `199 wisp "`+quotedText("the change is committed but not live in the router yet: "+err.Error())+`"`)
	if r.Context().Err() == nil { // a client that left needs no warning
		s.log.WarnContext(r.Context(), "change not live in the router before the answer", "method", r.Method, "path", r.URL.Path, "err", err)
	}
}

// quotedText makes s fit in an HTTP quoted-string: no control characters,
// quotes and backslashes escaped.
func quotedText(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < ' ' || c == 0x7f:
			b.WriteByte(' ')
		case c > 0x7e:
			b.WriteByte('?') // header values are ASCII in practice
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// headerProbe records what a handler would answer, and discards the body.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *headerProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.metrics == nil {
		return core.Unavailablef("metrics are not enabled on this server")
	}
	s.metrics.ServeHTTP(w, r)
	return nil
}

func (s *Server) serverInfo(w http.ResponseWriter, r *http.Request) error {
	info := s.info
	if s.replicas != nil {
		info.Leader = s.replicas.Leading()
	}
	return writeJSON(w, http.StatusOK, info)
}

// loadPath is where replicas report their load to the leader.
const loadPath = "/v1/internal/load"

// maxLoadReport bounds a load report: about 100,000 active instances.
const maxLoadReport = 8 << 20

func (s *Server) receiveLoad(w http.ResponseWriter, r *http.Request) error {
	if s.replicas == nil {
		return core.Unavailablef("this server takes no load reports")
	}
	var rep core.LoadReport
	if err := s.decodeFrom(w, r.Body, &rep, false, maxLoadReport); err != nil {
		return err
	}
	if err := rep.Validate(); err != nil {
		return err
	}
	reply, err := s.replicas.ReceiveLoad(rep)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, reply)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// decorate fills the fields of a service that depend on configuration.
func (s *Server) decorate(sv core.Service) core.Service {
	sv.Host = core.HostFor(sv.Name, s.cfg.Domain)
	sv.URL = s.cfg.RouterScheme + "://" + sv.Host
	if p := s.cfg.RouterPort; p != 0 && !(p == 80 && s.cfg.RouterScheme == "http") && !(p == 443 && s.cfg.RouterScheme == "https") {
		sv.URL += ":" + strconv.Itoa(p)
	}
	return sv
}
