package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/wisp-run/wisp/internal/core"
)

// versionFields are a version's columns but the one that names its service.
const versionFields = `v.id, v.number, v.image, v.image_id, v.port, v.env, v.command, v.args, v.memory_limit,
	v.cpu_limit, v.max_concurrency, v.timeout_ns, v.readiness_path, v.description, v.created_at,
	v.build_id, v.source_digest, v.git_commit, v.git_describe, v.liveness`

const versionCols = `s.name, ` + versionFields

const versionFrom = ` FROM versions v JOIN services s ON s.id = v.service_id `

// scanVersion reads a row whose first column, read into first, names the
// service (or its ID), followed by versionFields.
func scanVersion(r pgx.Row, first any) (core.Version, error) {
	var (
		v               core.Version
		memory, timeout int64
		src             core.Source
		liveness        []byte
	)
	err := r.Scan(first, &v.ID, &v.Number, &v.Image, &v.ImageID, &v.Port, &v.Env, &v.Command, &v.Args, &memory,
		&v.CPULimit, &v.MaxConcurrency, &timeout, &v.ReadinessPath, &v.Description, &v.CreatedAt,
		&src.BuildID, &src.Digest, &src.GitCommit, &src.GitDescribe, &liveness)
	if err != nil {
		return core.Version{}, err
	}
	v.CreatedAt = v.CreatedAt.UTC()
	v.MemoryLimit, v.Timeout = core.ByteSize(memory), core.Duration(timeout)
	if src != (core.Source{}) {
		v.Source = &src
	}
	// As the SQLite store returns them: env always a list, command and
	// args nil when empty.
	if v.Env == nil {
		v.Env = []string{}
	}
	if len(v.Command) == 0 {
		v.Command = nil
	}
	if len(v.Args) == 0 {
		v.Args = nil
	}
	if liveness != nil {
		var p core.Probe
		if err := json.Unmarshal(liveness, &p); err != nil {
			return v, fmt.Errorf("decode the liveness probe of version %d: %w", v.ID, err)
		}
		v.Liveness = &p
	}
	return v, nil
}

// probeJSON is how a liveness probe is stored: JSON, or NULL for none.
func probeJSON(p *core.Probe) []byte {
	if p == nil {
		return nil
	}
	b, _ := json.Marshal(p) // a Probe always marshals
	return b
}

func list(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// CreateVersion implements store.Store.
func (s *Store) CreateVersion(ctx context.Context, v core.Version) (core.Version, error) {
	return s.DeployVersion(ctx, v, 0, "")
}

// DeployVersion implements store.Store. The version's number is the
// service's next_version, read and moved on under the service row's lock,
// so concurrent creates of one service get distinct numbers in the order
// they commit, and a failed create uses none up.
func (s *Store) DeployVersion(ctx context.Context, v core.Version, percent int, message string) (core.Version, error) {
	spec, err := core.CheckDeploy(v.VersionSpec, percent)
	if err != nil {
		return core.Version{}, err
	}
	var src core.Source
	if v.Source != nil {
		src = *v.Source
	}
	var out core.Version
	err = s.change(ctx, v.Service, func(tx pgx.Tx) error {
		var serviceID int64
		var number int
		err := tx.QueryRow(ctx, `SELECT id, next_version FROM services WHERE name = $1 FOR UPDATE`, v.Service).Scan(&serviceID, &number)
		if errors.Is(err, pgx.ErrNoRows) {
			return core.ServiceNotFound(v.Service)
		}
		if err != nil {
			return err
		}
		now := s.now()
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO versions (service_id, number, image, image_id, port, env, command, args,
			memory_limit, cpu_limit, max_concurrency, timeout_ns, readiness_path, description, created_at,
			build_id, source_digest, git_commit, git_describe, liveness)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
			RETURNING id`,
			serviceID, number, spec.Image, v.ImageID, spec.Port, list(spec.Env), list(spec.Command), list(spec.Args),
			int64(spec.MemoryLimit), spec.CPULimit, spec.MaxConcurrency, int64(spec.Timeout), spec.ReadinessPath, spec.Description,
			now, src.BuildID, src.Digest, src.GitCommit, src.GitDescribe, probeJSON(spec.Liveness)).Scan(&id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE services SET next_version = $1 WHERE id = $2`, number+1, serviceID); err != nil {
			return err
		}
		cur, err := currentTraffic(ctx, tx, serviceID, v.Service)
		if err != nil {
			return err
		}
		numbers, err := versionNumbers(ctx, tx, serviceID)
		if err != nil {
			return err
		}
		next, ok, err := core.DeployTraffic(v.Service, cur, number, percent, message, numbers.exists)
		if err != nil {
			return err
		}
		if ok {
			if _, err := appendTraffic(ctx, tx, serviceID, v.Service, next, now); err != nil {
				return err
			}
		}
		out = core.Version{ID: id, Service: v.Service, Number: number, ImageID: v.ImageID, VersionSpec: spec, CreatedAt: now}
		if src != (core.Source{}) {
			out.Source = &src
		}
		if len(out.Command) == 0 {
			out.Command = nil
		}
		if len(out.Args) == 0 {
			out.Args = nil
		}
		return nil
	})
	if err != nil {
		return core.Version{}, wrap(err, "create version of service %q", v.Service)
	}
	return out, nil
}

// GetVersion implements store.Store.
func (s *Store) GetVersion(ctx context.Context, service string, number int) (core.Version, error) {
	var name string
	v, err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionCols+versionFrom+`WHERE s.name = $1 AND v.number = $2`, service, number), &name)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := getService(ctx, s.pool, service, false); err != nil {
			return v, err
		}
		return v, core.VersionNotFound(service, number)
	}
	if err != nil {
		return v, fmt.Errorf("get version %d of service %q: %w", number, service, err)
	}
	v.Service = name
	return v, nil
}

// GetVersionByID implements store.Store.
func (s *Store) GetVersionByID(ctx context.Context, id int64) (core.Version, error) {
	var name string
	v, err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionCols+versionFrom+`WHERE v.id = $1`, id), &name)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, core.NotFoundf("version ID %d not found", id)
	}
	if err != nil {
		return v, fmt.Errorf("get version ID %d: %w", id, err)
	}
	v.Service = name
	return v, nil
}

// serviceVersions lists the versions of the service with id serviceID by
// number.
func serviceVersions(ctx context.Context, q queryer, serviceID int64, service string) ([]core.Version, error) {
	rows, err := q.Query(ctx, `SELECT `+versionCols+versionFrom+`WHERE v.service_id = $1 ORDER BY v.number`, serviceID)
	if err != nil {
		return nil, fmt.Errorf("list versions of service %q: %w", service, err)
	}
	defer rows.Close()
	out := []core.Version{}
	for rows.Next() {
		var name string
		v, err := scanVersion(rows, &name)
		if err != nil {
			return nil, fmt.Errorf("list versions of service %q: %w", service, err)
		}
		v.Service = name
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list versions of service %q: %w", service, err)
	}
	return out, nil
}

// ListVersions implements store.Store.
func (s *Store) ListVersions(ctx context.Context, service string) ([]core.Version, error) {
	var out []core.Version
	err := s.read(ctx, func(tx pgx.Tx) error {
		sv, err := getService(ctx, tx, service, false)
		if err != nil {
			return err
		}
		out, err = serviceVersions(ctx, tx, sv.ID, service)
		return err
	})
	return out, wrap(err, "list versions of service %q", service)
}

// DeleteVersion implements store.Store.
func (s *Store) DeleteVersion(ctx context.Context, service string, number int) error {
	err := s.change(ctx, service, func(tx pgx.Tx) error {
		sv, cur, err := serviceAndTraffic(ctx, tx, service)
		if err != nil {
			return err
		}
		if err := core.CheckDeleteVersion(service, number, cur); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM versions WHERE service_id = $1 AND number = $2`, sv.ID, number)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return core.VersionNotFound(service, number)
		}
		return nil
	})
	return wrap(err, "delete version %d of service %q", number, service)
}

// numberSet is the set of a service's version numbers.
type numberSet map[int]bool

func (n numberSet) exists(number int) bool { return n[number] }

func versionNumbers(ctx context.Context, tx pgx.Tx, serviceID int64) (numberSet, error) {
	rows, err := tx.Query(ctx, `SELECT number FROM versions WHERE service_id = $1`, serviceID)
	if err != nil {
		return nil, err
	}
	numbers, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, err
	}
	set := make(numberSet, len(numbers))
	for _, n := range numbers {
		set[n] = true
	}
	return set, nil
}
