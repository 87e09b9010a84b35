package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AcquireLease implements store.Store. The processes that share a SQLite
// file share a machine, so its clock is the store's clock.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := time.Now()
	var got string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO leases (name, holder, expires_ms) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
			WHERE leases.holder = excluded.holder OR leases.expires_ms <= ?
			RETURNING holder`, name, holder, now.Add(ttl).UnixMilli(), now.UnixMilli()).Scan(&got)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return got == holder, nil
}

// ReleaseLease implements store.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder)
		return err
	})
}

// LeaseHolder implements store.Store.
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	var holder string
	err := s.db.QueryRowContext(ctx, `SELECT holder FROM leases WHERE name = ? AND expires_ms > ?`,
		name, time.Now().UnixMilli()).Scan(&holder)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read lease %s: %w", name, err)
	}
	return holder, nil
}
