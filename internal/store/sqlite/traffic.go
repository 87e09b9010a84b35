package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

const trafficCols = `id, weights, tags, sticky, message, created_at, rules, mirror`

// The newest entry of a service is its current split; services.traffic_id
// names it (migration 0005), set by appendTraffic in the same transaction.

func scanTraffic(r scanner, service string) (core.TrafficEntry, error) {
	return newTrafficRow(nil).scan(r, service)
}

// trafficRow is the scan buffer of rows of trafficCols, after a first
// column read into first when it is not nil; a query reuses one for all its
// rows.
type trafficRow struct {
	e                                     core.TrafficEntry
	weights, tags, created, rules, mirror string
	dest                                  []any
}

func newTrafficRow(first any) *trafficRow {
	r := &trafficRow{}
	r.dest = []any{int64Col{&r.e.ID}, &r.weights, &r.tags, &r.e.Sticky, &r.e.Message, &r.created, &r.rules, &r.mirror}
	if first != nil {
		r.dest = append([]any{first}, r.dest...)
	}
	return r
}

func (r *trafficRow) scan(sc scanner, service string) (core.TrafficEntry, error) {
	if err := sc.Scan(r.dest...); err != nil {
		return core.TrafficEntry{}, err
	}
	e := core.TrafficEntry{ID: r.e.ID, Service: service, Traffic: core.Traffic{Sticky: r.e.Sticky, Message: r.e.Message}}
	var err error
	if e.Weights, err = decodeWeights(r.weights); err != nil {
		return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
	}
	e.Tags = map[string]int{}
	if r.tags != "{}" { // most entries have no tag
		if err := json.Unmarshal([]byte(r.tags), &e.Tags); err != nil {
			return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
		}
	}
	if r.rules != "[]" { // most entries have no rule
		if err := json.Unmarshal([]byte(r.rules), &e.Rules); err != nil {
			return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
		}
	}
	if r.mirror != "" {
		if err := json.Unmarshal([]byte(r.mirror), &e.Mirror); err != nil {
			return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
		}
	}
	e.Traffic = e.Normalize()
	e.CreatedAt, err = parseTime(r.created)
	return e, err
}

// trafficEntry reads the one entry query returns, or nil when it returns
// none.
func trafficEntry(ctx context.Context, q queryer, service, query string, args ...any) (*core.TrafficEntry, error) {
	e, err := scanTraffic(q.QueryRowContext(ctx, query, args...), service)
	if errors.Is(err, sql.ErrNoRows) {
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
	return trafficEntry(ctx, q, service, `SELECT `+trafficCols+` FROM traffic WHERE id = (SELECT traffic_id FROM services WHERE id = ?)`, serviceID)
}

// appendTraffic stores t, which a core rule has checked, as the service's
// new current entry.
func appendTraffic(ctx context.Context, tx *sql.Tx, serviceID int64, service string, t core.Traffic, now time.Time) (core.TrafficEntry, error) {
	t = t.Normalize()
	weights, err := json.Marshal(t.Weights)
	if err != nil {
		return core.TrafficEntry{}, err
	}
	tags, err := json.Marshal(t.Tags)
	if err != nil {
		return core.TrafficEntry{}, err
	}
	rules, err := marshalRules(t.Rules)
	if err != nil {
		return core.TrafficEntry{}, err
	}
	mirror := ""
	if t.Mirror != nil {
		b, err := json.Marshal(t.Mirror)
		if err != nil {
			return core.TrafficEntry{}, err
		}
		mirror = string(b)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO traffic (service_id, weights, tags, sticky, message, created_at, rules, mirror) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		serviceID, string(weights), string(tags), t.Sticky, t.Message, formatTime(now), rules, mirror)
	if err != nil {
		return core.TrafficEntry{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return core.TrafficEntry{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE services SET traffic_id = ? WHERE id = ?`, id, serviceID); err != nil {
		return core.TrafficEntry{}, err
	}
	return core.TrafficEntry{ID: id, Service: service, Traffic: t, CreatedAt: now}, nil
}

// marshalRules encodes rules as JSON, none as [].
func marshalRules(rules []core.RequestRule) (string, error) {
	if len(rules) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(rules)
	return string(b), err
}

// serviceAndTraffic reads a service and its current traffic entry (nil
// when it has none) in tx: what every conditional write starts from.
func serviceAndTraffic(ctx context.Context, tx *sql.Tx, service string) (core.Service, *core.TrafficEntry, error) {
	sv, err := getService(ctx, tx, service)
	if err != nil {
		return sv, nil, err
	}
	cur, err := currentTraffic(ctx, tx, sv.ID, service)
	return sv, cur, err
}

// SetTraffic implements store.Store.
func (s *Store) SetTraffic(ctx context.Context, service string, t core.Traffic, ifEntry int64) (core.TrafficEntry, error) {
	var out core.TrafficEntry
	err := s.change(ctx, service, func(tx *sql.Tx) error {
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
		out, err = appendTraffic(ctx, tx, sv.ID, service, next, s.now().UTC())
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
	err := s.read(ctx, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, service)
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
	err := s.read(ctx, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, service)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+trafficCols+` FROM traffic WHERE service_id = ? ORDER BY id`, sv.ID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanTraffic(rows, service)
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
	err := s.change(ctx, service, func(tx *sql.Tx) error {
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
			target, err = trafficEntry(ctx, tx, service, `SELECT `+trafficCols+` FROM traffic WHERE service_id = ? AND id < ? ORDER BY id DESC LIMIT 1`,
				sv.ID, cur.ID)
		default:
			target, err = trafficEntry(ctx, tx, service, `SELECT `+trafficCols+` FROM traffic WHERE service_id = ? AND id = ?`, sv.ID, toID)
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
		out, err = appendTraffic(ctx, tx, sv.ID, service, next, s.now().UTC())
		return err
	})
	if err != nil {
		return core.TrafficEntry{}, wrap(err, "roll back traffic of service %q", service)
	}
	return out, nil
}
