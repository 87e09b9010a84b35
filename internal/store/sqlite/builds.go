package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

const buildCols = `id, service, status, runtime, image, image_id, reused, source_digest, git_commit, git_describe,
	promote, version, error, created_at, started_at, finished_at`

func scanBuild(r scanner) (core.Build, error) {
	var (
		b                         core.Build
		status                    string
		created, started, finishd string
	)
	err := r.Scan(&b.ID, &b.Service, &status, &b.Runtime, &b.Image, &b.ImageID, &b.Reused, &b.Digest, &b.GitCommit,
		&b.GitDescribe, &b.Promote, &b.Version, &b.Error, &created, &started, &finishd)
	if err != nil {
		return b, err
	}
	b.Status = core.BuildStatus(status)
	if b.CreatedAt, err = parseTime(created); err != nil {
		return b, err
	}
	if b.StartedAt, err = parseOptionalTime(started); err != nil {
		return b, err
	}
	b.FinishedAt, err = parseOptionalTime(finishd)
	return b, err
}

func parseOptionalTime(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil //nolint:nilnil // no time is not an error
	}
	t, err := parseTime(s)
	return &t, err
}

func formatOptionalTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return formatTime(*t)
}

// CreateBuild implements store.Store.
func (s *Store) CreateBuild(ctx context.Context, b core.Build) (core.Build, error) {
	if b.Status == "" {
		b.Status = core.BuildQueued
	}
	b.CreatedAt = s.now().UTC()
	res, err := s.db.ExecContext(ctx, `INSERT INTO builds (service, status, runtime, image, image_id, reused, source_digest,
		git_commit, git_describe, promote, version, error, created_at, started_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.Service, string(b.Status), b.Runtime, b.Image, b.ImageID, b.Reused, b.Digest, b.GitCommit, b.GitDescribe,
		b.Promote, b.Version, b.Error, formatTime(b.CreatedAt), formatOptionalTime(b.StartedAt), formatOptionalTime(b.FinishedAt))
	if err != nil {
		return core.Build{}, fmt.Errorf("create build of service %q: %w", b.Service, err)
	}
	if b.ID, err = res.LastInsertId(); err != nil {
		return core.Build{}, err
	}
	// Read back what was stored, so the caller sees the stored times.
	return s.GetBuild(ctx, b.ID)
}

// UpdateBuild implements store.Store.
func (s *Store) UpdateBuild(ctx context.Context, b core.Build) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM builds WHERE id = ?`, b.ID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return core.NotFoundf("build %d not found", b.ID)
		}
		if err != nil {
			return err
		}
		if core.BuildStatus(status).Done() {
			return core.Conflictf("build %d has finished (%s) and cannot change", b.ID, status)
		}
		_, err = tx.ExecContext(ctx, `UPDATE builds SET status = ?, image = ?, image_id = ?, reused = ?, source_digest = ?,
			version = ?, error = ?, started_at = ?, finished_at = ? WHERE id = ?`,
			string(b.Status), b.Image, b.ImageID, b.Reused, b.Digest, b.Version, b.Error,
			formatOptionalTime(b.StartedAt), formatOptionalTime(b.FinishedAt), b.ID)
		return err
	})
	return wrap(err, "update build %d", b.ID)
}

// GetBuild implements store.Store.
func (s *Store) GetBuild(ctx context.Context, id int64) (core.Build, error) {
	b, err := scanBuild(s.db.QueryRowContext(ctx, `SELECT `+buildCols+` FROM builds WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return core.Build{}, core.NotFoundf("build %d not found", id)
	}
	if err != nil {
		return core.Build{}, fmt.Errorf("get build %d: %w", id, err)
	}
	return b, nil
}

// ListBuilds implements store.Store.
func (s *Store) ListBuilds(ctx context.Context, service string, limit int) ([]core.Build, error) {
	if limit <= 0 {
		limit = 100
	}
	q, args := `SELECT `+buildCols+` FROM builds ORDER BY id DESC LIMIT ?`, []any{limit}
	if service != "" {
		q, args = `SELECT `+buildCols+` FROM builds WHERE service = ? ORDER BY id DESC LIMIT ?`, []any{service, limit}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	defer rows.Close()
	out := []core.Build{}
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, fmt.Errorf("list builds: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// SetBuildLog implements store.Store.
func (s *Store) SetBuildLog(ctx context.Context, id int64, log []byte) error {
	if log == nil {
		log = []byte{}
	}
	res, err := s.db.ExecContext(ctx, `UPDATE builds SET log = ? WHERE id = ?`, log, id)
	if err != nil {
		return fmt.Errorf("save log of build %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return core.NotFoundf("build %d not found", id)
	}
	return err
}

// BuildLog implements store.Store.
func (s *Store) BuildLog(ctx context.Context, id int64) ([]byte, error) {
	var log []byte
	err := s.db.QueryRowContext(ctx, `SELECT log FROM builds WHERE id = ?`, id).Scan(&log)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFoundf("build %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read log of build %d: %w", id, err)
	}
	return log, nil
}

// FailUnfinishedBuilds implements store.Store.
func (s *Store) FailUnfinishedBuilds(ctx context.Context, message string) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE builds SET status = ?, error = ?, finished_at = ? WHERE status IN (?, ?)`,
		string(core.BuildFailed), message, formatTime(s.now().UTC()), string(core.BuildQueued), string(core.BuildRunning))
	if err != nil {
		return 0, fmt.Errorf("fail unfinished builds: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
