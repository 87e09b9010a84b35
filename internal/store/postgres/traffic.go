package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisp-run/wisp/internal/core"
)

const trafficCols = `id, weights, tags, sticky, message, created_at, rules, mirror`

// The newest entry of a service is its current split; services.traffic_id
// names it, set by appendTraffic in the same transaction. Entry IDs come
// from an identity taken under the service row's lock, so one service's
// entries are numbered in the order they commit.

// scanTraffic reads a row of trafficCols, after a first column read into
// first when it is not nil.
func scanTraffic(r pgx.Row, first any, service string) (core.TrafficEntry, error) {
	var (
		e                            core.TrafficEntry
		weights, tags, rules, mirror []byte
	)
	dest := []any{&e.ID, &weights, &tags, &e.Sticky, &e.Message, &e.CreatedAt, &rules, &mirror}
	if first != nil {
		dest = append([]any{first}, dest...)
	}
	if err := r.Scan(dest...); err != nil {
		return core.TrafficEntry{}, err
	}
	e.Service, e.CreatedAt = service, e.CreatedAt.UTC()
	if err := json.Unmarshal(weights, &e.Weights); err != nil {
		return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
	}
	if err := json.Unmarshal(tags, &e.Tags); err != nil {
		return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
	}
	if err := json.Unmarshal(rules, &e.Rules); err != nil {
		return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
	}
	if mirror != nil { // NULL: no mirror
		if err := json.Unmarshal(mirror, &e.Mirror); err != nil {
			return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
		}
	}
	if e.Weights == nil {
		e.Weights = []core.Weight{}
	}
	if e.Tags == nil {
		e.Tags = map[string]int{}
	}
	e.Traffic = e.Normalize()
	return e, nil
}

// trafficEntry reads the one entry query returns, or nil when it returns
// none.
func trafficEntry(ctx context.Context, q queryer, service, query string, args ...any) (*core.TrafficEntry, error) {
	e, err := scanTraffic(q.QueryRow(ctx, query, args...), nil, service)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil //nolint:nilnil // no entry is not an error
	}
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// currentTraffic returns the service's current (newest) entry, nil when it
// has none.
func currentTraffic(ctx context.Context, q queryer, serviceID int64, service string) (*core.TrafficEntry, error) {
	return trafficEntry(ctx, q, service, `SELECT `+trafficCols+` FROM traffic WHERE id = (SELECT traffic_id FROM services WHERE id = $1)`, serviceID)
}

// appendTraffic stores t, which a core rule has checked, as the service's
// new current entry.
func appendTraffic(ctx context.Context, tx pgx.Tx, serviceID int64, service string, t core.Traffic, now time.Time) (core.TrafficEntry, error) {
	t = t.Normalize()
	weights, err := json.Marshal(t.Weights)
	if err != nil {
		return core.TrafficEntry{}, err
	}
	tags, err := json.Marshal(t.Tags)
	if err != nil {
		return core.TrafficEntry{}, err
	}
	rules := []byte("[]")
	if len(t.Rules) > 0 {
		if rules, err = json.Marshal(t.Rules); err != nil {
			return core.TrafficEntry{}, err
		}
	}
	var mirror *string // NULL: no mirror
	if t.Mirror != nil {
		b, err := json.Marshal(t.Mirror)
		if err != nil {
			return core.TrafficEntry{}, err
		}
		m := string(b)
		mirror = &m
	}
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO traffic (service_id, weights, tags, sticky, message, created_at, rules, mirror)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		serviceID, string(weights), string(tags), t.Sticky, t.Message, now, string(rules), mirror).Scan(&id)
	if err != nil {
		return core.TrafficEntry{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE services SET traffic_id = $1 WHERE id = $2`, id, serviceID); err != nil {
		return core.TrafficEntry{}, err
	}
	return core.TrafficEntry{ID: id, Service: service, Traffic: t, CreatedAt: now}, nil
}

// serviceAndTraffic locks a service's row and reads it with its current
// traffic entry (nil when it has none): what every conditional write starts
// from.
func serviceAndTraffic(ctx context.Context, tx pgx.Tx, service string) (core.Service, *core.TrafficEntry, error) {
	sv, err := getService(ctx, tx, service, true)
	if err != nil {
		return sv, nil, err
	}
	cur, err := currentTraffic(ctx, tx, sv.ID, service)
	return sv, cur, err
}

// SetTraffic implements store.Store.
func (s *Store) SetTraffic(ctx context.Context, service string, t core.Traffic, ifEntry int64) (core.TrafficEntry, error) {
	var out core.TrafficEntry
	err := s.change(ctx, service, func(tx pgx.Tx) error {
		sv, cur, err := serviceAndTraffic(ctx, tx, service)
		if err != nil {
			return err
		}
		if err := core.CheckIfMatch(service, ifEntry, cur); err != nil {
			return err
		}
		numbers, err := versionNumbers(ctx, tx, sv.ID)
		if err != nil {
			return err
		}
		next, err := core.CheckTraffic(service, t, numbers.exists)
		if err != nil {
			return err
		}
		out, err = appendTraffic(ctx, tx, sv.ID, service, next, s.now())
		return err
	})
	if err != nil {
		return core.TrafficEntry{}, wrap(err, "set traffic of service %q", service)
	}
	return out, nil
}

// GetTraffic implements store.Store.
func (s *Store) GetTraffic(ctx context.Context, service string) (core.TrafficEntry, error) {
	var cur *core.TrafficEntry
	err := s.read(ctx, func(tx pgx.Tx) error {
		sv, err := getService(ctx, tx, service, false)
		if err != nil {
			return err
		}
		cur, err = currentTraffic(ctx, tx, sv.ID, service)
		return err
	})
	if err != nil {
		return core.TrafficEntry{}, wrap(err, "get traffic of service %q", service)
	}
	if cur == nil {
		return core.TrafficEntry{}, core.NoTraffic(service)
	}
	return *cur, nil
}

// TrafficHistory implements store.Store.
func (s *Store) TrafficHistory(ctx context.Context, service string) ([]core.TrafficEntry, error) {
	out := []core.TrafficEntry{}
	err := s.read(ctx, func(tx pgx.Tx) error {
		sv, err := getService(ctx, tx, service, false)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+trafficCols+` FROM traffic WHERE service_id = $1 ORDER BY id`, sv.ID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanTraffic(rows, nil, service)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap(err, "traffic history of service %q", service)
	}
	return out, nil
}

// RollbackTraffic implements store.Store.
func (s *Store) RollbackTraffic(ctx context.Context, service string, toID, ifEntry int64) (core.TrafficEntry, error) {
	var out core.TrafficEntry
	err := s.change(ctx, service, func(tx pgx.Tx) error {
		sv, cur, err := serviceAndTraffic(ctx, tx, service)
		if err != nil {
			return err
		}
		if err := core.CheckIfMatch(service, ifEntry, cur); err != nil {
			return err
		}
		var target *core.TrafficEntry
		switch {
		case cur == nil:
		case toID == 0:
			target, err = trafficEntry(ctx, tx, service, `SELECT `+trafficCols+` FROM traffic WHERE service_id = $1 AND id < $2 ORDER BY id DESC LIMIT 1`,
				sv.ID, cur.ID)
		default:
			target, err = trafficEntry(ctx, tx, service, `SELECT `+trafficCols+` FROM traffic WHERE service_id = $1 AND id = $2`, sv.ID, toID)
		}
		if err != nil {
			return err
		}
		numbers, err := versionNumbers(ctx, tx, sv.ID)
		if err != nil {
			return err
		}
		next, err := core.RollbackTraffic(service, toID, cur, target, numbers.exists)
		if err != nil {
			return err
		}
		out, err = appendTraffic(ctx, tx, sv.ID, service, next, s.now())
		return err
	})
	if err != nil {
		return core.TrafficEntry{}, wrap(err, "roll back traffic of service %q", service)
	}
	return out, nil
}
