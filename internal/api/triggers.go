package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// Triggers manage event triggers and take events (the async package).
type Triggers interface {
	Create(ctx context.Context, t core.Trigger) (core.Trigger, error)
	Get(ctx context.Context, name string) (core.Trigger, error)
	List(ctx context.Context) ([]core.Trigger, error)
	Delete(ctx context.Context, name string) error
	// Ingest publishes the CloudEvents of a request on subject ("" derives
	// it from each event's type).
	Ingest(ctx context.Context, subject string, h http.Header, body []byte) (ids []string, used string, err error)
}

// Schedules manage cron schedules (the async package).
type Schedules interface {
	Create(ctx context.Context, s core.Schedule) (core.Schedule, error)
	Get(ctx context.Context, name string) (core.Schedule, error)
	List(ctx context.Context) ([]core.Schedule, error)
	Update(ctx context.Context, name string, p core.SchedulePatch) (core.Schedule, error)
	Delete(ctx context.Context, name string) error
	NextN(ctx context.Context, name string, n int) ([]time.Time, error)
	RunNow(ctx context.Context, name string) (string, error)
}

// WithTriggers serves /v1/triggers and /v1/events from t.
func WithTriggers(t Triggers) Option { return func(s *Server) { s.triggers = t } }

// WithSchedules serves /v1/schedules from sc.
func WithSchedules(sc Schedules) Option { return func(s *Server) { s.schedules = sc } }

// MaxEventBytes bounds an event posted to /v1/events.
const MaxEventBytes = 6 << 20

func (s *Server) triggersEnabled() error {
	if s.triggers == nil {
		return core.Unavailablef("event triggers are off on this server (it runs without NATS)")
	}
	return nil
}

func (s *Server) schedulesEnabled() error {
	if s.schedules == nil {
		return core.Unavailablef("schedules are off on this server (it runs without NATS)")
	}
	return nil
}

func (s *Server) createTrigger(w http.ResponseWriter, r *http.Request) error {
	if err := s.triggersEnabled(); err != nil {
		return err
	}
	var t core.Trigger
	if err := s.decode(w, r, &t, false); err != nil {
		return err
	}
	out, err := s.triggers.Create(r.Context(), t)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listTriggers(w http.ResponseWriter, r *http.Request) error {
	if err := s.triggersEnabled(); err != nil {
		return err
	}
	out, err := s.triggers.List(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"triggers": out})
}

func (s *Server) getTrigger(w http.ResponseWriter, r *http.Request) error {
	if err := s.triggersEnabled(); err != nil {
		return err
	}
	out, err := s.triggers.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	for i := range out.Deliveries {
		out.Deliveries[i] = *redact(&out.Deliveries[i])
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteTrigger(w http.ResponseWriter, r *http.Request) error {
	if err := s.triggersEnabled(); err != nil {
		return err
	}
	if err := s.triggers.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) error {
	if err := s.triggersEnabled(); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEventBytes))
	if err != nil {
		return core.TooLargef("an event may be at most %d bytes", MaxEventBytes)
	}
	ids, used, err := s.triggers.Ingest(r.Context(), r.URL.Query().Get("subject"), r.Header, body)
	var ce *core.Error
	if errors.As(err, &ce) && errors.Is(err, core.ErrInvalid) {
		// The CloudEvents HTTP binding answers a bad event with 400.
		return badRequest(ce.Field, "%s", ce.Message)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, map[string]any{"ids": ids, "subject": used})
}

func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) error {
	if err := s.schedulesEnabled(); err != nil {
		return err
	}
	var sc core.Schedule
	if err := s.decode(w, r, &sc, false); err != nil {
		return err
	}
	out, err := s.schedules.Create(r.Context(), sc)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) error {
	if err := s.schedulesEnabled(); err != nil {
		return err
	}
	out, err := s.schedules.List(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"schedules": out})
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) error {
	if err := s.schedulesEnabled(); err != nil {
		return err
	}
	out, err := s.schedules.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) updateSchedule(w http.ResponseWriter, r *http.Request) error {
	if err := s.schedulesEnabled(); err != nil {
		return err
	}
	var p core.SchedulePatch
	if err := s.decode(w, r, &p, false); err != nil {
		return err
	}
	out, err := s.schedules.Update(r.Context(), r.PathValue("name"), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	if err := s.schedulesEnabled(); err != nil {
		return err
	}
	if err := s.schedules.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) nextRuns(w http.ResponseWriter, r *http.Request) error {
	if err := s.schedulesEnabled(); err != nil {
		return err
	}
	n := 5
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			return badRequest("n", "n must be a number, got %q", v)
		}
	}
	out, err := s.schedules.NextN(r.Context(), r.PathValue("name"), n)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"next": out})
}

func (s *Server) runSchedule(w http.ResponseWriter, r *http.Request) error {
	if err := s.schedulesEnabled(); err != nil {
		return err
	}
	id, err := s.schedules.RunNow(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, map[string]any{"call_id": id})
}
