package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/wisp-run/wisp/internal/core"
)

const serviceCols = `id, name, min_instances, max_instances, target_concurrency, target_rps, idle_timeout_ns, pause_after_ns, request_logs, log_max_bytes, log_max_age_ns, async_concurrency, max_attempts, min_backoff_ns, max_backoff_ns, max_age_ns, standby, keep_previous_ns, min_instances_schedule, singleton, created_at, updated_at`

func scanService(r scanner) (core.Service, error) {
	return newServiceRow().scan(r)
}

// serviceRow is the scan buffer of rows of serviceCols; a query reuses one
// for all its rows.
type serviceRow struct {
	sv               core.Service
	idle, pause      int64
	requestLogs      int64
	logAge           int64
	minB, maxB, age  int64
	keep, singleton  int64
	schedule         string
	created, updated string
	dest             []any
}

func newServiceRow() *serviceRow {
	r := &serviceRow{}
	sv, p := &r.sv, &r.sv.Policy
	r.dest = []any{int64Col{&sv.ID}, &sv.Name, intCol{&p.MinInstances}, intCol{&p.MaxInstances}, intCol{&p.TargetConcurrency},
		intCol{&p.TargetRPS}, int64Col{&r.idle}, int64Col{&r.pause}, int64Col{&r.requestLogs}, int64Col{&p.LogMaxBytes},
		int64Col{&r.logAge}, intCol{&p.AsyncConcurrency}, intCol{&p.MaxAttempts}, int64Col{&r.minB}, int64Col{&r.maxB},
		int64Col{&r.age}, intCol{&p.Standby}, int64Col{&r.keep}, &r.schedule, int64Col{&r.singleton}, &r.created, &r.updated}
	return r
}

func (r *serviceRow) scan(sc scanner) (core.Service, error) {
	if err := sc.Scan(r.dest...); err != nil {
		return core.Service{}, err
	}
	sv := r.sv
	sv.Policy.IdleTimeout = core.Duration(r.idle)
	sv.Policy.PauseAfter = core.Duration(r.pause)
	sv.Policy.RequestLogs = r.requestLogs != 0
	sv.Policy.LogMaxAge = core.Duration(r.logAge)
	sv.Policy.MinBackoff = core.Duration(r.minB)
	sv.Policy.MaxBackoff = core.Duration(r.maxB)
	sv.Policy.MaxAge = core.Duration(r.age)
	sv.Policy.KeepPrevious = core.Duration(r.keep)
	sv.Policy.Singleton = r.singleton != 0
	var err error
	if sv.Policy.MinInstancesSchedule, err = core.DecodeMinSchedule(r.schedule); err != nil {
		return sv, err
	}
	if sv.CreatedAt, err = parseTime(r.created); err != nil {
		return sv, err
	}
	sv.UpdatedAt, err = parseTime(r.updated)
	return sv, err
}

func getService(ctx context.Context, q queryer, name string) (core.Service, error) {
	sv, err := scanService(q.QueryRowContext(ctx, `SELECT `+serviceCols+` FROM services WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return sv, core.ServiceNotFound(name)
	}
	if err != nil {
		return sv, fmt.Errorf("get service %q: %w", name, err)
	}
	return sv, nil
}

// CreateService implements store.Store.
func (s *Store) CreateService(ctx context.Context, sv core.Service) (core.Service, error) {
	if err := core.CheckNewService(sv); err != nil {
		return core.Service{}, err
	}
	now := s.now().UTC()
	var out core.Service
	err := s.change(ctx, sv.Name, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM services WHERE name = ?`, sv.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return core.ServiceExists(sv.Name)
		}
		p := sv.Policy
		res, err := tx.ExecContext(ctx, `INSERT INTO services (name, min_instances, max_instances, target_concurrency,
			target_rps, idle_timeout_ns, pause_after_ns, request_logs, log_max_bytes, log_max_age_ns, async_concurrency,
			max_attempts, min_backoff_ns, max_backoff_ns, max_age_ns, standby, keep_previous_ns, min_instances_schedule,
			singleton, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sv.Name, p.MinInstances, p.MaxInstances, p.TargetConcurrency, p.TargetRPS, int64(p.IdleTimeout), int64(p.PauseAfter),
			p.RequestLogs, p.LogMaxBytes, int64(p.LogMaxAge), p.AsyncConcurrency, p.MaxAttempts, int64(p.MinBackoff),
			int64(p.MaxBackoff), int64(p.MaxAge), p.Standby, int64(p.KeepPrevious), core.EncodeMinSchedule(p.MinInstancesSchedule),
			p.Singleton, formatTime(now), formatTime(now))
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		out = core.Service{ID: id, Name: sv.Name, Policy: p, CreatedAt: now, UpdatedAt: now}
		return nil
	})
	if err != nil {
		return core.Service{}, wrap(err, "create service %q", sv.Name)
	}
	return out, nil
}

// GetService implements store.Store.
func (s *Store) GetService(ctx context.Context, name string) (core.Service, error) {
	return getService(ctx, s.db, name)
}

func listServices(ctx context.Context, q queryer) ([]core.Service, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+serviceCols+` FROM services ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	defer rows.Close()
	out := []core.Service{}
	row := newServiceRow()
	for rows.Next() {
		sv, err := row.scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		out = append(out, sv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return out, nil
}

// ListServices implements store.Store.
func (s *Store) ListServices(ctx context.Context) ([]core.Service, error) {
	return listServices(ctx, s.db)
}

// UpdatePolicy implements store.Store.
func (s *Store) UpdatePolicy(ctx context.Context, name string, patch core.PolicyPatch) (core.Service, error) {
	var out core.Service
	err := s.change(ctx, name, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, name)
		if err != nil {
			return err
		}
		p, err := core.PatchPolicy(sv.Policy, patch)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		_, err = tx.ExecContext(ctx, `UPDATE services SET min_instances = ?, max_instances = ?, target_concurrency = ?,
			target_rps = ?, idle_timeout_ns = ?, pause_after_ns = ?, request_logs = ?, log_max_bytes = ?, log_max_age_ns = ?,
			async_concurrency = ?, max_attempts = ?, min_backoff_ns = ?, max_backoff_ns = ?, max_age_ns = ?,
			standby = ?, keep_previous_ns = ?, min_instances_schedule = ?, singleton = ?, updated_at = ? WHERE id = ?`,
			p.MinInstances, p.MaxInstances, p.TargetConcurrency, p.TargetRPS, int64(p.IdleTimeout), int64(p.PauseAfter),
			p.RequestLogs, p.LogMaxBytes, int64(p.LogMaxAge), p.AsyncConcurrency, p.MaxAttempts, int64(p.MinBackoff),
			int64(p.MaxBackoff), int64(p.MaxAge), p.Standby, int64(p.KeepPrevious), core.EncodeMinSchedule(p.MinInstancesSchedule),
			p.Singleton, formatTime(now), sv.ID)
		if err != nil {
			return err
		}
		sv.Policy, sv.UpdatedAt = p, now
		out = sv
		return nil
	})
	if err != nil {
		return core.Service{}, wrap(err, "update policy of service %q", name)
	}
	return out, nil
}

// DeleteService implements store.Store. Its versions and traffic history go
// with it (ON DELETE CASCADE); its changes stay, since they name the service
// by name.
func (s *Store) DeleteService(ctx context.Context, name string) error {
	err := s.change(ctx, name, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM services WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return core.ServiceNotFound(name)
		}
		return nil
	})
	return wrap(err, "delete service %q", name)
}
