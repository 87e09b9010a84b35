package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// recordChange appends a change of service in tx and, every pruneEvery
// revisions, prunes the log to the newest keepChanges, moving the horizon.
func (s *Store) recordChange(ctx context.Context, tx *sql.Tx, service string) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO changes (service) VALUES (?)`, service)
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	rev, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	if rev%s.pruneEvery != 0 || rev <= s.keepChanges {
		return nil
	}
	horizon := rev - s.keepChanges
	if _, err := tx.ExecContext(ctx, `DELETE FROM changes WHERE revision <= ?`, horizon); err != nil {
		return fmt.Errorf("prune changes: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE changes_horizon SET revision = ? WHERE id = 1 AND revision < ?`, horizon, horizon); err != nil {
		return fmt.Errorf("prune changes: %w", err)
	}
	return nil
}

// notify wakes every watcher without waiting for it: a watcher whose buffer
// is full has a wake-up pending already.
func (s *Store) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// poll wakes the watchers when the revision moved, whoever moved it: this
// process's commits wake them at once (notify), another process's only
// here. One query per interval, and none while nobody watches.
func (s *Store) poll(every time.Duration) {
	defer close(s.pollDone)
	t := time.NewTicker(every)
	defer t.Stop()
	seen := int64(-1) // the revision at the last look; -1: not looked yet
	for {
		select {
		case <-s.life.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		watched := len(s.watchers) > 0
		s.mu.Unlock()
		if !watched {
			seen = -1
			continue
		}
		ctx, cancel := context.WithTimeout(s.life, every)
		rev, err := revision(ctx, s.db)
		cancel()
		if err != nil {
			continue // the next look tries again; readers see their own errors
		}
		if seen < 0 {
			// The first look since watchers came compares with the
			// revision of their Watch: another process's commit in
			// between would otherwise wait for the next change (or the
			// feed's resync, minutes away).
			s.mu.Lock()
			seen = s.watchedFrom
			s.mu.Unlock()
		}
		if seen == noRevision || rev != seen {
			s.notify()
		}
		seen = rev
	}
}

// Watch implements store.Store.
func (s *Store) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	rev, err := revision(ctx, s.db)
	if err != nil {
		rev = noRevision // the poller's first look wakes the watchers
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || ctx.Err() != nil {
		close(ch)
		return ch
	}
	if len(s.watchers) == 0 || rev < s.watchedFrom {
		s.watchedFrom = rev
	}
	s.watchers[ch] = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.watchers[ch]; ok {
			delete(s.watchers, ch)
			close(ch)
		}
	})
	return ch
}

// noRevision stands for a revision that could not be read.
const noRevision = -2

func revision(ctx context.Context, q queryer) (int64, error) {
	var rev int64
	// The horizon counts when the log is empty: revisions never go back.
	err := q.QueryRowContext(ctx, `SELECT max(coalesce((SELECT max(revision) FROM changes), 0),
		(SELECT revision FROM changes_horizon WHERE id = 1))`).Scan(&rev)
	if err != nil {
		return 0, fmt.Errorf("read the revision: %w", err)
	}
	return rev, nil
}

// Revision implements store.Store.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	return revision(ctx, s.db)
}

// ChangesSince implements store.Store.
func (s *Store) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if limit < 1 {
		return nil, core.Invalidf("limit", "limit must be 1 or more, got %d", limit)
	}
	out := []store.Change{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		var horizon int64
		if err := tx.QueryRowContext(ctx, `SELECT revision FROM changes_horizon WHERE id = 1`).Scan(&horizon); err != nil {
			return err
		}
		if after < horizon {
			return fmt.Errorf("changes after revision %d: pruned up to %d: %w", after, horizon, store.ErrCompacted)
		}
		rows, err := tx.QueryContext(ctx, `SELECT revision, service FROM changes WHERE revision > ? ORDER BY revision LIMIT ?`, after, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c store.Change
			if err := rows.Scan(&c.Revision, &c.Service); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap(err, "read changes")
	}
	return out, nil
}

// ServiceState implements store.Store: three queries in one read
// transaction.
func (s *Store) ServiceState(ctx context.Context, name string) (core.ServiceState, error) {
	var st core.ServiceState
	err := s.read(ctx, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, name)
		if err != nil {
			return err
		}
		versions, err := serviceVersions(ctx, tx, sv.ID, name)
		if err != nil {
			return err
		}
		cur, err := currentTraffic(ctx, tx, sv.ID, name)
		if err != nil {
			return err
		}
		st = core.ServiceState{Service: sv, Versions: versions, Traffic: cur}
		return nil
	})
	if err != nil {
		return core.ServiceState{}, wrap(err, "read the state of service %q", name)
	}
	return st, nil
}

// ServiceStates implements store.Store: four queries in one read
// transaction, whatever the number of services — the revision, every
// service, every version, and the current traffic entry of each service
// (services.traffic_id, so the history's length does not matter). Versions
// and entries are matched to services by ID rather than joined: at 10,000
// services the joins cost more than the maps.
func (s *Store) ServiceStates(ctx context.Context) ([]core.ServiceState, int64, error) {
	var (
		out []core.ServiceState
		rev int64
	)
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		if rev, err = revision(ctx, tx); err != nil {
			return err
		}
		services, err := listServices(ctx, tx)
		if err != nil {
			return err
		}
		out = make([]core.ServiceState, len(services))
		index := make(map[int64]int, len(services))
		for i, sv := range services {
			out[i] = core.ServiceState{Service: sv, Versions: make([]core.Version, 0, 1)}
			index[sv.ID] = i
		}
		if err := versionsOfAll(ctx, tx, out, index); err != nil {
			return err
		}
		return currentTrafficOfAll(ctx, tx, out, index)
	})
	if err != nil {
		return nil, 0, wrap(err, "read the state of every service")
	}
	return out, rev, nil
}

// versionsOfAll appends every version to its service's state, by number.
func versionsOfAll(ctx context.Context, tx *sql.Tx, states []core.ServiceState, index map[int64]int) error {
	// By ID, the table's own order: a service's numbers grow with its IDs,
	// since both are assigned in the same write transaction.
	rows, err := tx.QueryContext(ctx, `SELECT v.service_id, `+versionFields+` FROM versions v ORDER BY v.id`)
	if err != nil {
		return fmt.Errorf("list versions: %w", err)
	}
	defer rows.Close()
	var serviceID int64
	row := newVersionRow(int64Col{&serviceID})
	for rows.Next() {
		v, err := row.scan(rows)
		if err != nil {
			return fmt.Errorf("list versions: %w", err)
		}
		if i, ok := index[serviceID]; ok {
			v.Service = states[i].Service.Name
			states[i].Versions = append(states[i].Versions, v)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list versions: %w", err)
	}
	for _, st := range states {
		if !slices.IsSortedFunc(st.Versions, byNumber) {
			slices.SortFunc(st.Versions, byNumber)
		}
	}
	return nil
}

func byNumber(a, b core.Version) int { return a.Number - b.Number }

// currentTrafficOfAll sets the Traffic of each state to its service's newest
// entry.
func currentTrafficOfAll(ctx context.Context, tx *sql.Tx, states []core.ServiceState, index map[int64]int) error {
	rows, err := tx.QueryContext(ctx, `SELECT t.service_id, t.id, t.weights, t.tags, t.sticky, t.message, t.created_at, t.rules, t.mirror
		FROM services s JOIN traffic t ON t.id = s.traffic_id`)
	if err != nil {
		return fmt.Errorf("read current traffic: %w", err)
	}
	defer rows.Close()
	var serviceID int64
	row := newTrafficRow(int64Col{&serviceID})
	for rows.Next() {
		e, err := row.scan(rows, "")
		if err != nil {
			return fmt.Errorf("read current traffic: %w", err)
		}
		if i, ok := index[serviceID]; ok {
			e.Service = states[i].Service.Name
			states[i].Traffic = &e
		}
	}
	return rows.Err()
}
