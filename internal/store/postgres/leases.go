package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AcquireLease implements store.Store: one statement, on the database's
// clock (clock_timestamp, not the transaction's start), so replicas whose
// clocks disagree still agree on who holds the lease.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := s.pool.QueryRow(ctx, `INSERT INTO leases (name, holder, expires_at)
		VALUES ($1, $2, clock_timestamp() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= clock_timestamp()
		RETURNING holder`, name, holder, ttl.Microseconds()).Scan(&got)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("acquire lease %s: %w", name, mapError(err))
	}
	return got == holder, nil
}

// ReleaseLease implements store.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, mapError(err))
	}
	return nil
}

// LeaseHolder implements store.Store: the holder of the unexpired lease
// name, or "" when it is free.
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	var holder string
	err := s.pool.QueryRow(ctx, `SELECT holder FROM leases WHERE name = $1 AND expires_at > clock_timestamp()`, name).Scan(&holder)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read lease %s: %w", name, mapError(err))
	}
	return holder, nil
}
