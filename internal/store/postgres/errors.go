package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wisp-run/wisp/internal/core"
)

// SQLSTATE codes the store acts on
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// maxAttempts bounds how often a write transaction runs when Postgres
// aborts it for a serialization failure or a deadlock.
const maxAttempts = 5

// retryBackoff is the pause before the second attempt; it doubles after
// each, with jitter, so transactions that collided do not collide again.
const retryBackoff = 5 * time.Millisecond

// tx runs fn in a READ COMMITTED write transaction that commits if fn
// returns nil. A serialization failure or deadlock aborts the whole
// transaction, which runs again from the start (fn must set its results
// afresh on each run), at most maxAttempts times; then the error is
// core.ErrUnavailable, saying why. Other Postgres errors are mapped by
// mapError.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	pause := retryBackoff
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil {
			return nil
		}
		code := sqlState(err)
		if code != codeSerializationFailure && code != codeDeadlockDetected {
			return mapError(err)
		}
		if attempt == maxAttempts {
			// Both a core kind with a message for users (the API answers
			// 503: try again) and the last Postgres error.
			return fmt.Errorf("%w: %w", core.Unavailablef("the database aborted the write %d times because concurrent "+
				"writes collided; try again", attempt), err)
		}
		t := time.NewTimer(pause/2 + rand.N(pause)) //nolint:gosec // jitter needs no secure source
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause *= 2
	}
}

// sqlState returns the SQLSTATE of a Postgres error, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// mapError turns Postgres errors that have a core kind into that kind: a
// unique violation is a core.ErrConflict (a write raced another that took
// the same key). Writes that know which key they raced for (a service's
// name) check it themselves first. Other errors pass through.
func mapError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case codeUniqueViolation:
		msg := "a concurrent write took the same key"
		if pe.ConstraintName != "" {
			msg += " (" + pe.ConstraintName + ")"
		}
		return core.Conflictf("%s; try again", msg)
	}
	return err
}

// isUniqueViolation reports whether err is a unique violation of the
// named constraint.
func isUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == codeUniqueViolation && pe.ConstraintName == constraint
}

// passwordOf returns the password in a connection URL, or "".
func passwordOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// redact returns err with every occurrence of password in its message
// replaced (errors.Is and As still see err).
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redactedError{err: err, msg: strings.ReplaceAll(err.Error(), password, "xxxxx")}
}

type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
