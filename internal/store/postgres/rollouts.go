package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

const rolloutCols = `r.id, s.name, r.spec, r.state, r.step, r.step_started_at, r.before_entry, r.last_entry, r.replaces, r.last_check, r.reason, r.created_at, r.updated_at`

const rolloutFrom = ` FROM rollouts r JOIN services s ON s.id = r.service_id`

func scanRollout(row pgx.Row) (core.Rollout, error) {
	var (
		r                     core.Rollout
		spec, replaces, check []byte
		state                 string
	)
	if err := row.Scan(&r.ID, &r.Service, &spec, &state, &r.Step, &r.StepStartedAt, &r.Before, &r.LastEntry,
		&replaces, &check, &r.Reason, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return r, err
	}
	r.State = core.RolloutState(state)
	r.StepStartedAt, r.CreatedAt, r.UpdatedAt = r.StepStartedAt.UTC(), r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	if err := json.Unmarshal(spec, &r.RolloutSpec); err != nil {
		return r, fmt.Errorf("decode rollout %d: %w", r.ID, err)
	}
	if err := json.Unmarshal(replaces, &r.Replaces); err != nil {
		return r, fmt.Errorf("decode rollout %d: %w", r.ID, err)
	}
	if len(check) > 0 {
		r.Check = &core.RolloutCheck{}
		if err := json.Unmarshal(check, r.Check); err != nil {
			return r, fmt.Errorf("decode rollout %d: %w", r.ID, err)
		}
	}
	return r.Normalize(), nil
}

// rolloutRow reads the one rollout query returns, nil when none.
func rolloutRow(ctx context.Context, q queryer, query string, args ...any) (*core.Rollout, error) {
	r, err := scanRollout(q.QueryRow(ctx, `SELECT `+rolloutCols+rolloutFrom+` `+query, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil //nolint:nilnil // no rollout is not an error
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// rolloutJSON encodes the JSON columns; check is nil (SQL NULL) before the
// first check.
func rolloutJSON(r core.Rollout) (spec, replaces string, check *string, err error) {
	b, err := json.Marshal(r.RolloutSpec)
	if err != nil {
		return "", "", nil, err
	}
	rb, err := json.Marshal(r.Normalize().Replaces)
	if err != nil {
		return "", "", nil, err
	}
	if r.Check != nil {
		cb, err := json.Marshal(r.Check)
		if err != nil {
			return "", "", nil, err
		}
		c := string(cb)
		check = &c
	}
	return string(b), string(rb), check, nil
}

// CreateRollout implements store.Store.
func (s *Store) CreateRollout(ctx context.Context, service string, spec core.RolloutSpec) (core.Rollout, error) {
	var out core.Rollout
	err := s.change(ctx, service, func(tx pgx.Tx) error {
		sv, cur, err := serviceAndTraffic(ctx, tx, service)
		if err != nil {
			return err
		}
		active, err := rolloutRow(ctx, tx, `WHERE r.service_id = $1 AND r.state IN ('running', 'paused')`, sv.ID)
		if err != nil {
			return err
		}
		numbers, err := versionNumbers(ctx, tx, sv.ID)
		if err != nil {
			return err
		}
		now := s.now()
		r, err := core.NewRollout(service, spec, cur, active, numbers.exists, now)
		if err != nil {
			return err
		}
		specJSON, replaces, check, err := rolloutJSON(r)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO rollouts (service_id, target, spec, state, step, step_started_at, before_entry, last_entry, replaces, last_check, reason, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11, $11) RETURNING id`,
			sv.ID, r.To, specJSON, string(r.State), r.Step, r.StepStartedAt, r.Before, replaces, check, r.Reason, now).Scan(&r.ID)
		if err != nil {
			return err
		}
		next, err := core.CheckTraffic(service, r.StepTraffic(cur.Traffic), numbers.exists)
		if err != nil {
			return err
		}
		e, err := appendTraffic(ctx, tx, sv.ID, service, next, now)
		if err != nil {
			return err
		}
		r.LastEntry = e.ID
		_, err = tx.Exec(ctx, `UPDATE rollouts SET last_entry = $1 WHERE id = $2`, e.ID, r.ID)
		out = r
		return err
	})
	if err != nil {
		return core.Rollout{}, wrap(err, "start a rollout of service %q", service)
	}
	return out, nil
}

// GetRollout implements store.Store.
func (s *Store) GetRollout(ctx context.Context, service string) (core.Rollout, error) {
	var out *core.Rollout
	err := s.read(ctx, func(tx pgx.Tx) error {
		sv, err := getService(ctx, tx, service, false)
		if err != nil {
			return err
		}
		out, err = rolloutRow(ctx, tx, `WHERE r.service_id = $1 ORDER BY r.id DESC LIMIT 1`, sv.ID)
		return err
	})
	if err == nil && out == nil {
		err = core.NoRollout(service, nil)
	}
	if err != nil {
		return core.Rollout{}, wrap(err, "get the rollout of service %q", service)
	}
	return *out, nil
}

// ActiveRollouts implements store.Store.
func (s *Store) ActiveRollouts(ctx context.Context) ([]core.Rollout, error) {
	out := []core.Rollout{}
	err := s.read(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT `+rolloutCols+rolloutFrom+` WHERE r.state IN ('running', 'paused') ORDER BY r.id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRollout(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap(err, "list active rollouts")
	}
	return out, nil
}

// UpdateRollout implements store.Store. The service's row lock (taken by
// serviceAndTraffic) serialises it with every other write of the service.
func (s *Store) UpdateRollout(ctx context.Context, service string, fn store.RolloutUpdate) (core.Rollout, error) {
	var (
		out     core.Rollout
		changed bool
		rev     int64
	)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		changed = false
		sv, cur, err := serviceAndTraffic(ctx, tx, service)
		if err != nil {
			return err
		}
		r, err := rolloutRow(ctx, tx, `WHERE r.service_id = $1 ORDER BY r.id DESC LIMIT 1`, sv.ID)
		if err != nil {
			return err
		}
		if r == nil || cur == nil {
			return core.NoRollout(service, nil)
		}
		before, err := trafficEntry(ctx, tx, service, `SELECT `+trafficCols+` FROM traffic WHERE service_id = $1 AND id = $2`, sv.ID, r.Before)
		if err != nil {
			return err
		}
		next, t, err := fn(*r, *cur, before)
		if err != nil {
			return err
		}
		now := s.now()
		next.ID, next.Service, next.RolloutSpec, next.Before, next.CreatedAt, next.UpdatedAt = r.ID, r.Service, r.RolloutSpec, r.Before, r.CreatedAt, now
		if t != nil {
			numbers, err := versionNumbers(ctx, tx, sv.ID)
			if err != nil {
				return err
			}
			checked, err := core.CheckTraffic(service, *t, numbers.exists)
			if err != nil {
				return err
			}
			e, err := appendTraffic(ctx, tx, sv.ID, service, checked, now)
			if err != nil {
				return err
			}
			next.LastEntry = e.ID
			changed = true
		}
		_, replaces, check, err := rolloutJSON(next)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE rollouts SET state = $1, step = $2, step_started_at = $3, last_entry = $4, replaces = $5, last_check = $6, reason = $7, updated_at = $8 WHERE id = $9`,
			string(next.State), next.Step, next.StepStartedAt, next.LastEntry, replaces, check, next.Reason, now, next.ID); err != nil {
			return err
		}
		out = next.Normalize()
		if changed {
			rev, err = s.recordChange(ctx, tx, service)
		}
		return err
	})
	if err == nil && changed {
		s.announce(rev)
	}
	if err != nil {
		return core.Rollout{}, wrap(err, "update the rollout of service %q", service)
	}
	return out, nil
}
