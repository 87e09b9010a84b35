package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisp-run/wisp/internal/core"
)

const buildCols = `id, service, status, runtime, image, image_id, reused, source_digest, git_commit, git_describe,
	promote, version, error, created_at, started_at, finished_at`

func scanBuild(r pgx.Row) (core.Build, error) {
	var (
		b      core.Build
		status string
	)
	err := r.Scan(&b.ID, &b.Service, &status, &b.Runtime, &b.Image, &b.ImageID, &b.Reused, &b.Digest, &b.GitCommit,
		&b.GitDescribe, &b.Promote, &b.Version, &b.Error, &b.CreatedAt, &b.StartedAt, &b.FinishedAt)
	if err != nil {
		return b, err
	}
	b.Status = core.BuildStatus(status)
	b.CreatedAt = b.CreatedAt.UTC()
	b.StartedAt, b.FinishedAt = utc(b.StartedAt), utc(b.FinishedAt)
	return b, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// CreateBuild implements store.Store.
func (s *Store) CreateBuild(ctx context.Context, b core.Build) (core.Build, error) {
	if b.Status == "" {
		b.Status = core.BuildQueued
	}
	b.CreatedAt = s.now()
	b, err := scanBuild(s.pool.QueryRow(ctx, `INSERT INTO builds (service, status, runtime, image, image_id, reused, source_digest,
		git_commit, git_describe, promote, version, error, created_at, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING `+buildCols,
		b.Service, string(b.Status), b.Runtime, b.Image, b.ImageID, b.Reused, b.Digest, b.GitCommit, b.GitDescribe,
		b.Promote, b.Version, b.Error, b.CreatedAt, b.StartedAt, b.FinishedAt))
	if err != nil {
		return core.Build{}, fmt.Errorf("create build of service %q: %w", b.Service, mapError(err))
	}
	return b, nil
}

// UpdateBuild implements store.Store.
func (s *Store) UpdateBuild(ctx context.Context, b core.Build) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM builds WHERE id = $1 FOR UPDATE`, b.ID).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return core.NotFoundf("build %d not found", b.ID)
		}
		if err != nil {
			return err
		}
		if core.BuildStatus(status).Done() {
			return core.Conflictf("build %d has finished (%s) and cannot change", b.ID, status)
		}
		_, err = tx.Exec(ctx, `UPDATE builds SET status = $1, image = $2, image_id = $3, reused = $4, source_digest = $5,
			version = $6, error = $7, started_at = $8, finished_at = $9 WHERE id = $10`,
			string(b.Status), b.Image, b.ImageID, b.Reused, b.Digest, b.Version, b.Error, b.StartedAt, b.FinishedAt, b.ID)
		return err
	})
	return wrap(err, "update build %d", b.ID)
}

// GetBuild implements store.Store.
func (s *Store) GetBuild(ctx context.Context, id int64) (core.Build, error) {
	b, err := scanBuild(s.pool.QueryRow(ctx, `SELECT `+buildCols+` FROM builds WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	q, args := `SELECT `+buildCols+` FROM builds ORDER BY id DESC LIMIT $1`, []any{limit}
	if service != "" {
		q, args = `SELECT `+buildCols+` FROM builds WHERE service = $1 ORDER BY id DESC LIMIT $2`, []any{service, limit}
	}
	rows, err := s.pool.Query(ctx, q, args...)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	return out, nil
}

// SetBuildLog implements store.Store.
func (s *Store) SetBuildLog(ctx context.Context, id int64, log []byte) error {
	if log == nil {
		log = []byte{}
	}
	tag, err := s.pool.Exec(ctx, `UPDATE builds SET log = $1 WHERE id = $2`, log, id)
	if err != nil {
		return fmt.Errorf("save log of build %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return core.NotFoundf("build %d not found", id)
	}
	return nil
}

// BuildLog implements store.Store.
func (s *Store) BuildLog(ctx context.Context, id int64) ([]byte, error) {
	var log []byte
	err := s.pool.QueryRow(ctx, `SELECT log FROM builds WHERE id = $1`, id).Scan(&log)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, core.NotFoundf("build %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read log of build %d: %w", id, err)
	}
	if log == nil {
		log = []byte{}
	}
	return log, nil
}

// FailUnfinishedBuilds implements store.Store.
func (s *Store) FailUnfinishedBuilds(ctx context.Context, message string) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE builds SET status = $1, error = $2, finished_at = $3 WHERE status IN ($4, $5)`,
		string(core.BuildFailed), message, s.now(), string(core.BuildQueued), string(core.BuildRunning))
	if err != nil {
		return 0, fmt.Errorf("fail unfinished builds: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
