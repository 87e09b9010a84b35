package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/wisp-run/wisp/internal/core"
)

const serviceCols = `id, name, min_instances, max_instances, target_concurrency, target_rps, idle_timeout_ns, pause_after_ns, request_logs, log_max_bytes, log_max_age_ns, async_concurrency, max_attempts, min_backoff_ns, max_backoff_ns, max_age_ns, standby, keep_previous_ns, min_instances_schedule, singleton, created_at, updated_at`

func scanService(r pgx.Row) (core.Service, error) {
	var (
		sv          core.Service
		idle, pause int64
		logAge      int64
		minB, maxB  int64
		age         int64
		keep        int64
		schedule    string
	)
	p := &sv.Policy
	err := r.Scan(&sv.ID, &sv.Name, &p.MinInstances, &p.MaxInstances, &p.TargetConcurrency, &p.TargetRPS, &idle, &pause,
		&p.RequestLogs, &p.LogMaxBytes, &logAge, &p.AsyncConcurrency, &p.MaxAttempts, &minB, &maxB, &age, &p.Standby,
		&keep, &schedule, &p.Singleton, &sv.CreatedAt, &sv.UpdatedAt)
	p.IdleTimeout, p.PauseAfter, p.LogMaxAge = core.Duration(idle), core.Duration(pause), core.Duration(logAge)
	p.MinBackoff, p.MaxBackoff, p.MaxAge = core.Duration(minB), core.Duration(maxB), core.Duration(age)
	p.KeepPrevious = core.Duration(keep)
	sv.CreatedAt, sv.UpdatedAt = sv.CreatedAt.UTC(), sv.UpdatedAt.UTC()
	if err == nil {
		p.MinInstancesSchedule, err = core.DecodeMinSchedule(schedule)
	}
	return sv, err
}

// getService reads the named service; with lock, inside a write
// transaction, it also locks the service's row until the transaction ends,
// which serialises the writes of one service.
func getService(ctx context.Context, q queryer, name string, lock bool) (core.Service, error) {
	query := `SELECT ` + serviceCols + ` FROM services WHERE name = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	sv, err := scanService(q.QueryRow(ctx, query, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return sv, core.ServiceNotFound(name)
	}
	if err != nil {
		return sv, fmt.Errorf("get service %q: %w", name, err)
	}
	return sv, nil
}

// CreateService implements store.Store. Of concurrent creates of one name,
// the unique constraint lets one win; the others wait for it to commit and
// then get ErrAlreadyExists.
func (s *Store) CreateService(ctx context.Context, sv core.Service) (core.Service, error) {
	if err := core.CheckNewService(sv); err != nil {
		return core.Service{}, err
	}
	now := s.now()
	var out core.Service
	err := s.change(ctx, sv.Name, func(tx pgx.Tx) error {
		p := sv.Policy
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO services (name, min_instances, max_instances, target_concurrency,
			target_rps, idle_timeout_ns, pause_after_ns, request_logs, log_max_bytes, log_max_age_ns, async_concurrency,
			max_attempts, min_backoff_ns, max_backoff_ns, max_age_ns, standby, keep_previous_ns, min_instances_schedule,
			singleton, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $20)
			RETURNING id`,
			sv.Name, p.MinInstances, p.MaxInstances, p.TargetConcurrency, p.TargetRPS, int64(p.IdleTimeout), int64(p.PauseAfter),
			p.RequestLogs, p.LogMaxBytes, int64(p.LogMaxAge), p.AsyncConcurrency, p.MaxAttempts, int64(p.MinBackoff),
			int64(p.MaxBackoff), int64(p.MaxAge), p.Standby, int64(p.KeepPrevious), core.EncodeMinSchedule(p.MinInstancesSchedule),
			p.Singleton, now).Scan(&id)
		if isUniqueViolation(err, "services_name_key") {
			return core.ServiceExists(sv.Name)
		}
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
	return getService(ctx, s.pool, name, false)
}

func listServices(ctx context.Context, q queryer) ([]core.Service, error) {
	rows, err := q.Query(ctx, `SELECT `+serviceCols+` FROM services ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	defer rows.Close()
	out := []core.Service{}
	for rows.Next() {
		sv, err := scanService(rows)
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
	return listServices(ctx, s.pool)
}

// UpdatePolicy implements store.Store.
func (s *Store) UpdatePolicy(ctx context.Context, name string, patch core.PolicyPatch) (core.Service, error) {
	var out core.Service
	err := s.change(ctx, name, func(tx pgx.Tx) error {
		sv, err := getService(ctx, tx, name, true)
		if err != nil {
			return err
		}
		p, err := core.PatchPolicy(sv.Policy, patch)
		if err != nil {
			return err
		}
		now := s.now()
		_, err = tx.Exec(ctx, `UPDATE services SET min_instances = $1, max_instances = $2, target_concurrency = $3,
			target_rps = $4, idle_timeout_ns = $5, pause_after_ns = $6, request_logs = $7, log_max_bytes = $8,
			log_max_age_ns = $9, async_concurrency = $10, max_attempts = $11, min_backoff_ns = $12, max_backoff_ns = $13,
			max_age_ns = $14, standby = $15, keep_previous_ns = $16, min_instances_schedule = $17, singleton = $18,
			updated_at = $19 WHERE id = $20`,
			p.MinInstances, p.MaxInstances, p.TargetConcurrency, p.TargetRPS, int64(p.IdleTimeout), int64(p.PauseAfter),
			p.RequestLogs, p.LogMaxBytes, int64(p.LogMaxAge), p.AsyncConcurrency, p.MaxAttempts, int64(p.MinBackoff),
			int64(p.MaxBackoff), int64(p.MaxAge), p.Standby, int64(p.KeepPrevious), core.EncodeMinSchedule(p.MinInstancesSchedule),
			p.Singleton, now, sv.ID)
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
	err := s.change(ctx, name, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM services WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return core.ServiceNotFound(name)
		}
		return nil
	})
	return wrap(err, "delete service %q", name)
}
