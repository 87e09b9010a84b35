package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

const rolloutCols = `r.id, s.name, r.spec, r.state, r.step, r.step_started_at, r.before_entry, r.last_entry, r.replaces, r.last_check, r.reason, r.created_at, r.updated_at`

const rolloutFrom = ` FROM rollouts r JOIN services s ON s.id = r.service_id`

func scanRollout(sc scanner) (core.Rollout, error) {
	var (
		r                             core.Rollout
		spec, replaces, check         string
		stepStarted, created, updated string
		state                         string
	)
	if err := sc.Scan(int64Col{&r.ID}, &r.Service, &spec, &state, intCol{&r.Step}, &stepStarted, int64Col{&r.Before}, int64Col{&r.LastEntry},
		&replaces, &check, &r.Reason, &created, &updated); err != nil {
		return r, err
	}
	r.State = core.RolloutState(state)
	if err := json.Unmarshal([]byte(spec), &r.RolloutSpec); err != nil {
		return r, fmt.Errorf("decode rollout %d: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(replaces), &r.Replaces); err != nil {
		return r, fmt.Errorf("decode rollout %d: %w", r.ID, err)
	}
	if check != "" {
		r.Check = &core.RolloutCheck{}
		if err := json.Unmarshal([]byte(check), r.Check); err != nil {
			return r, fmt.Errorf("decode rollout %d: %w", r.ID, err)
		}
	}
	var err error
	if r.StepStartedAt, err = parseTime(stepStarted); err != nil {
		return r, err
	}
	if r.CreatedAt, err = parseTime(created); err != nil {
		return r, err
	}
	if r.UpdatedAt, err = parseTime(updated); err != nil {
		return r, err
	}
	return r.Normalize(), nil
}

// rolloutRow reads the one rollout query returns, nil when none.
func rolloutRow(ctx context.Context, q queryer, query string, args ...any) (*core.Rollout, error) {
	r, err := scanRollout(q.QueryRowContext(ctx, `SELECT `+rolloutCols+rolloutFrom+` `+query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil //nolint:nilnil // no rollout is not an error
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func rolloutJSON(r core.Rollout) (spec, replaces, check string, err error) {
	b, err := json.Marshal(r.RolloutSpec)
	if err != nil {
		return "", "", "", err
	}
	rb, err := json.Marshal(r.Normalize().Replaces)
	if err != nil {
		return "", "", "", err
	}
	if r.Check != nil {
		cb, err := json.Marshal(r.Check)
		if err != nil {
			return "", "", "", err
		}
		check = string(cb)
	}
	return string(b), string(rb), check, nil
}

// CreateRollout implements store.Store.
func (s *Store) CreateRollout(ctx context.Context, service string, spec core.RolloutSpec) (core.Rollout, error) {
	var out core.Rollout
	err := s.change(ctx, service, func(tx *sql.Tx) error {
		sv, cur, err := serviceAndTraffic(ctx, tx, service)
		if err != nil {
			return err
		}
		active, err := rolloutRow(ctx, tx, `WHERE r.service_id = ? AND r.state IN ('running', 'paused')`, sv.ID)
		if err != nil {
			return err
		}
		numbers, err := versionNumbers(ctx, tx, sv.ID)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		r, err := core.NewRollout(service, spec, cur, active, numbers.exists, now)
		if err != nil {
			return err
		}
		specJSON, replaces, check, err := rolloutJSON(r)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO rollouts (service_id, target, spec, state, step, step_started_at, before_entry, last_entry, replaces, last_check, reason, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)`,
			sv.ID, r.To, specJSON, string(r.State), r.Step, formatTime(r.StepStartedAt), r.Before, replaces, check, r.Reason, formatTime(now), formatTime(now))
		if err != nil {
			return err
		}
		if r.ID, err = res.LastInsertId(); err != nil {
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
		_, err = tx.ExecContext(ctx, `UPDATE rollouts SET last_entry = ? WHERE id = ?`, e.ID, r.ID)
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
	err := s.read(ctx, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, service)
		if err != nil {
			return err
		}
		out, err = rolloutRow(ctx, tx, `WHERE r.service_id = ? ORDER BY r.id DESC LIMIT 1`, sv.ID)
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
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+rolloutCols+rolloutFrom+` WHERE r.state IN ('running', 'paused') ORDER BY r.id`)
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

// UpdateRollout implements store.Store.
func (s *Store) UpdateRollout(ctx context.Context, service string, fn store.RolloutUpdate) (core.Rollout, error) {
	var out core.Rollout
	changed := false
	body := func(tx *sql.Tx) error {
		changed = false
		sv, cur, err := serviceAndTraffic(ctx, tx, service)
		if err != nil {
			return err
		}
		r, err := rolloutRow(ctx, tx, `WHERE r.service_id = ? ORDER BY r.id DESC LIMIT 1`, sv.ID)
		if err != nil {
			return err
		}
		if r == nil || cur == nil {
			return core.NoRollout(service, nil)
		}
		before, err := trafficEntry(ctx, tx, service, `SELECT `+trafficCols+` FROM traffic WHERE service_id = ? AND id = ?`, sv.ID, r.Before)
		if err != nil {
			return err
		}
		next, t, err := fn(*r, *cur, before)
		if err != nil {
			return err
		}
		now := s.now().UTC()
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
		_, err = tx.ExecContext(ctx, `UPDATE rollouts SET state = ?, step = ?, step_started_at = ?, last_entry = ?, replaces = ?, last_check = ?, reason = ?, updated_at = ? WHERE id = ?`,
			string(next.State), next.Step, formatTime(next.StepStartedAt), next.LastEntry, replaces, check, next.Reason, formatTime(now), next.ID)
		if err != nil {
			return err
		}
		out = next.Normalize()
		if changed {
			return s.recordChange(ctx, tx, service)
		}
		return nil
	}
	err := s.tx(ctx, body)
	if err == nil && changed {
		s.notify()
	}
	if err != nil {
		return core.Rollout{}, wrap(err, "update the rollout of service %q", service)
	}
	return out, nil
}
