package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// Revisions must become visible in order: a reader that has seen revision
// r must never later see a change of r or less appear (the feed would skip
// it). An identity column alone does not promise that: two transactions
// may take revisions 5 and 6 and commit 6 first. So a change takes the
// revision under lockChanges, an advisory lock held until its transaction
// ends. Postgres makes a transaction visible before it releases its locks,
// so when the next writer gets the lock (and its revision) the previous
// change is visible to every new snapshot. The lock is taken last in each
// write transaction, after the service row's lock, and nothing else is
// locked while it is held, so it adds no deadlock; it serialises only the
// short tail of each write (insert, prune, notify, commit).

// Timing of the change listener's reconnects.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
)

// recordChange appends a change of service in tx, prunes the log when it
// holds a tenth more than keepChanges, and queues a notification that
// Postgres sends to every listener when tx commits. It returns the change's
// revision.
func (s *Store) recordChange(ctx context.Context, tx pgx.Tx, service string) (int64, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockChanges); err != nil {
		return 0, fmt.Errorf("record change: %w", err)
	}
	var rev int64
	if err := tx.QueryRow(ctx, `INSERT INTO changes (service) VALUES ($1) RETURNING revision`, service).Scan(&rev); err != nil {
		return 0, fmt.Errorf("record change: %w", err)
	}
	// The horizon moves only when it is pruneEvery behind where it could
	// be, so the log is pruned once per pruneEvery changes (revisions may
	// have gaps: a rolled-back insert uses one up).
	if rev >= s.keepChanges+s.pruneEvery {
		horizon := rev - s.keepChanges
		tag, err := tx.Exec(ctx, `UPDATE changes_horizon SET revision = $1 WHERE id = 1 AND revision <= $2`, horizon, horizon-s.pruneEvery)
		if err != nil {
			return 0, fmt.Errorf("prune changes: %w", err)
		}
		if tag.RowsAffected() > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM changes WHERE revision <= $1`, horizon); err != nil {
				return 0, fmt.Errorf("prune changes: %w", err)
			}
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, strconv.FormatInt(rev, 10)); err != nil {
		return 0, fmt.Errorf("notify the change: %w", err)
	}
	return rev, nil
}

// announce wakes every watcher for revision rev, unless they were woken for
// it or a later one already. Revisions commit in order, so a wake-up for a
// later revision covers it.
func (s *Store) announce(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.announced {
		return
	}
	s.announced = rev
	s.wakeLocked()
}

// wakeAll wakes every watcher, whatever was announced: after the listener
// reconnects, since notifications sent meanwhile are lost.
func (s *Store) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wakeLocked()
}

// wakeLocked wakes every watcher without waiting for it: a watcher whose
// buffer is full has a wake-up pending already. s.mu is held.
func (s *Store) wakeLocked() {
	for ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// dialListener opens the change listener's own connection and listens on
// the feed's channel.
func (s *Store) dialListener(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.listenConfig)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+notifyChannel); err != nil {
		closeConn(ctx, conn)
		return nil, fmt.Errorf("listen for changes: %w", err)
	}
	return conn, nil
}

// closeConn closes a connection, waiting a little for a clean goodbye
// even when ctx is done.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// listen follows the notifications on conn, and reconnects with a backoff
// whenever the connection breaks, until the store closes. After a
// reconnect it wakes every watcher, since notifications sent meanwhile were
// lost and the watchers must read what changed.
func (s *Store) listen(conn *pgx.Conn) {
	defer close(s.listenDone)
	pause := reconnectMin
	for {
		if conn == nil {
			c, err := s.dialListener(s.life)
			if err != nil {
				if s.life.Err() != nil {
					return
				}
				s.log.Warn("cannot reconnect the change listener", "server", s.where, "error", redact(err, s.listenConfig.Password), "retry_in", pause)
				t := time.NewTimer(pause)
				select {
				case <-s.life.Done():
					t.Stop()
					return
				case <-t.C:
				}
				pause = min(2*pause, reconnectMax)
				continue
			}
			conn, pause = c, reconnectMin
			s.log.Info("the change listener reconnected", "server", s.where)
			s.wakeAll()
		}
		err := s.follow(conn)
		closeConn(s.life, conn)
		conn = nil
		if s.life.Err() != nil {
			return
		}
		s.log.Warn("the change listener lost its connection; reconnecting", "server", s.where, "error", redact(err, s.listenConfig.Password))
	}
}

// follow wakes the watchers for each notification on conn until conn
// breaks or the store closes. Every pollInterval without a notification it
// reads the revision on conn: that proves the connection is alive (a
// silently dropped connection would otherwise wait forever) and catches a
// change whose notification was lost.
func (s *Store) follow(conn *pgx.Conn) error {
	for {
		ctx, cancel := s.life, context.CancelFunc(func() {})
		if s.pollInterval > 0 {
			ctx, cancel = context.WithTimeout(s.life, s.pollInterval)
		}
		n, err := conn.WaitForNotification(ctx)
		cancel()
		switch {
		case err == nil:
			if rev, perr := strconv.ParseInt(n.Payload, 10, 64); perr == nil {
				s.announce(rev)
			} else {
				s.wakeAll()
			}
		case s.life.Err() != nil:
			return err
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			ctx, cancel := context.WithTimeout(s.life, max(s.pollInterval, time.Second))
			rev, err := revision(ctx, conn)
			cancel()
			if err != nil {
				return err
			}
			s.announce(rev)
		default:
			return err
		}
	}
}

// Watch implements store.Store: the watchers are woken by this store's own
// commits at once, and by every other store's through LISTEN/NOTIFY.
func (s *Store) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || ctx.Err() != nil {
		close(ch)
		return ch
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

func revision(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
},
) (int64, error) {
	var rev int64
	// The horizon counts when the log is empty: revisions never go back.
	err := q.QueryRow(ctx, `SELECT greatest((SELECT coalesce(max(revision), 0) FROM changes),
		(SELECT revision FROM changes_horizon WHERE id = 1))`).Scan(&rev)
	if err != nil {
		return 0, fmt.Errorf("read the revision: %w", err)
	}
	return rev, nil
}

// Revision implements store.Store.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	return revision(ctx, s.pool)
}

// ChangesSince implements store.Store.
func (s *Store) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if limit < 1 {
		return nil, core.Invalidf("limit", "limit must be 1 or more, got %d", limit)
	}
	out := []store.Change{}
	err := s.read(ctx, func(tx pgx.Tx) error {
		var horizon int64
		if err := tx.QueryRow(ctx, `SELECT revision FROM changes_horizon WHERE id = 1`).Scan(&horizon); err != nil {
			return err
		}
		if after < horizon {
			return fmt.Errorf("changes after revision %d: pruned up to %d: %w", after, horizon, store.ErrCompacted)
		}
		rows, err := tx.Query(ctx, `SELECT revision, service FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2`, after, limit)
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
	err := s.read(ctx, func(tx pgx.Tx) error {
		sv, err := getService(ctx, tx, name, false)
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
// (services.traffic_id, so the history's length does not matter).
func (s *Store) ServiceStates(ctx context.Context) ([]core.ServiceState, int64, error) {
	var (
		out []core.ServiceState
		rev int64
	)
	err := s.read(ctx, func(tx pgx.Tx) error {
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
func versionsOfAll(ctx context.Context, tx pgx.Tx, states []core.ServiceState, index map[int64]int) error {
	rows, err := tx.Query(ctx, `SELECT v.service_id, `+versionFields+` FROM versions v ORDER BY v.service_id, v.number`)
	if err != nil {
		return fmt.Errorf("list versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var serviceID int64
		v, err := scanVersion(rows, &serviceID)
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
func currentTrafficOfAll(ctx context.Context, tx pgx.Tx, states []core.ServiceState, index map[int64]int) error {
	rows, err := tx.Query(ctx, `SELECT t.service_id, t.id, t.weights, t.tags, t.sticky, t.message, t.created_at, t.rules, t.mirror
		FROM services s JOIN traffic t ON t.id = s.traffic_id`)
	if err != nil {
		return fmt.Errorf("read current traffic: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var serviceID int64
		e, err := scanTraffic(rows, &serviceID, "")
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
