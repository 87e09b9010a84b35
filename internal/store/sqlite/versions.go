package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wisp-run/wisp/internal/core"
)

// versionFields are a version's columns but the one that names its service.
const versionFields = `v.id, v.number, v.image, v.image_id, v.port, v.env, v.command, v.args, v.memory_limit,
	v.cpu_limit, v.max_concurrency, v.timeout_ns, v.readiness_path, v.description, v.created_at,
	v.build_id, v.source_digest, v.git_commit, v.git_describe, v.liveness`

const versionCols = `s.name, ` + versionFields

const versionFrom = ` FROM versions v JOIN services s ON s.id = v.service_id `

// scanVersion reads a row of versionCols.
func scanVersion(r scanner) (core.Version, error) {
	var service string
	v, err := newVersionRow(&service).scan(r)
	v.Service = service
	return v, err
}

// versionRow is the scan buffer of rows whose first column, read into
// first, names the service, followed by versionFields. A query reuses one
// for all its rows: scanning into fresh locals costs an allocation per
// column.
type versionRow struct {
	v                                     core.Version
	env, command, args, created, liveness string
	memory, timeout                       int64
	src                                   core.Source
	dest                                  []any
}

func newVersionRow(first any) *versionRow {
	r := &versionRow{}
	v, src := &r.v, &r.src
	r.dest = []any{first, int64Col{&v.ID}, intCol{&v.Number}, &v.Image, &v.ImageID, intCol{&v.Port}, &r.env, &r.command, &r.args,
		int64Col{&r.memory}, floatCol{&v.CPULimit}, intCol{&v.MaxConcurrency}, int64Col{&r.timeout}, &v.ReadinessPath,
		&v.Description, &r.created, int64Col{&src.BuildID}, &src.Digest, &src.GitCommit, &src.GitDescribe, &r.liveness}
	return r
}

func (r *versionRow) scan(sc scanner) (core.Version, error) {
	if err := sc.Scan(r.dest...); err != nil {
		return core.Version{}, err
	}
	v := r.v
	if r.src != (core.Source{}) {
		src := r.src
		v.Source = &src
	}
	v.MemoryLimit = core.ByteSize(r.memory)
	v.Timeout = core.Duration(r.timeout)
	var err error
	if v.Env, err = decodeList(r.env, []string{}); err != nil {
		return v, fmt.Errorf("decode version %d: %w", v.ID, err)
	}
	if v.Command, err = decodeList(r.command, nil); err != nil {
		return v, fmt.Errorf("decode version %d: %w", v.ID, err)
	}
	if v.Args, err = decodeList(r.args, nil); err != nil {
		return v, fmt.Errorf("decode version %d: %w", v.ID, err)
	}
	if r.liveness != "" {
		var p core.Probe
		if err := json.Unmarshal([]byte(r.liveness), &p); err != nil {
			return v, fmt.Errorf("decode the liveness probe of version %d: %w", v.ID, err)
		}
		v.Liveness = &p
	}
	v.CreatedAt, err = parseTime(r.created)
	return v, err
}

// probeJSON is how a liveness probe is stored: JSON, or ” for none.
func probeJSON(p *core.Probe) string {
	if p == nil {
		return ""
	}
	b, _ := json.Marshal(p) // a Probe always marshals
	return string(b)
}

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l) // a []string always marshals
	return string(b)
}

// CreateVersion implements store.Store.
func (s *Store) CreateVersion(ctx context.Context, v core.Version) (core.Version, error) {
	return s.DeployVersion(ctx, v, 0, "")
}

// DeployVersion implements store.Store.
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
	err = s.change(ctx, v.Service, func(tx *sql.Tx) error {
		var serviceID int64
		var number int
		err := tx.QueryRowContext(ctx, `SELECT id, next_version FROM services WHERE name = ?`, v.Service).Scan(&serviceID, &number)
		if errors.Is(err, sql.ErrNoRows) {
			return core.ServiceNotFound(v.Service)
		}
		if err != nil {
			return err
		}
		now := s.now().UTC()
		res, err := tx.ExecContext(ctx, `INSERT INTO versions (service_id, number, image, image_id, port, env, command, args,
			memory_limit, cpu_limit, max_concurrency, timeout_ns, readiness_path, description, created_at,
			build_id, source_digest, git_commit, git_describe, liveness)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			serviceID, number, spec.Image, v.ImageID, spec.Port, jsonList(spec.Env), jsonList(spec.Command), jsonList(spec.Args),
			int64(spec.MemoryLimit), spec.CPULimit, spec.MaxConcurrency, int64(spec.Timeout), spec.ReadinessPath, spec.Description,
			formatTime(now), src.BuildID, src.Digest, src.GitCommit, src.GitDescribe, probeJSON(spec.Liveness))
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE services SET next_version = ? WHERE id = ?`, number+1, serviceID); err != nil {
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
	v, err := scanVersion(s.db.QueryRowContext(ctx, `SELECT `+versionCols+versionFrom+`WHERE s.name = ? AND v.number = ?`, service, number))
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := getService(ctx, s.db, service); err != nil {
			return v, err
		}
		return v, core.VersionNotFound(service, number)
	}
	if err != nil {
		return v, fmt.Errorf("get version %d of service %q: %w", number, service, err)
	}
	return v, nil
}

// GetVersionByID implements store.Store.
func (s *Store) GetVersionByID(ctx context.Context, id int64) (core.Version, error) {
	v, err := scanVersion(s.db.QueryRowContext(ctx, `SELECT `+versionCols+versionFrom+`WHERE v.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return v, core.NotFoundf("version ID %d not found", id)
	}
	if err != nil {
		return v, fmt.Errorf("get version ID %d: %w", id, err)
	}
	return v, nil
}

// scanVersions reads every row of a versions query.
func scanVersions(rows *sql.Rows) ([]core.Version, error) {
	defer rows.Close()
	out := []core.Version{}
	var service string
	row := newVersionRow(&service)
	for rows.Next() {
		v, err := row.scan(rows)
		if err != nil {
			return nil, err
		}
		v.Service = service
		out = append(out, v)
	}
	return out, rows.Err()
}

// serviceVersions lists the versions of the service with id serviceID by
// number.
func serviceVersions(ctx context.Context, q queryer, serviceID int64, service string) ([]core.Version, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+versionCols+versionFrom+`WHERE v.service_id = ? ORDER BY v.number`, serviceID)
	if err != nil {
		return nil, fmt.Errorf("list versions of service %q: %w", service, err)
	}
	list, err := scanVersions(rows)
	if err != nil {
		return nil, fmt.Errorf("list versions of service %q: %w", service, err)
	}
	return list, nil
}

// ListVersions implements store.Store.
func (s *Store) ListVersions(ctx context.Context, service string) ([]core.Version, error) {
	var out []core.Version
	err := s.read(ctx, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, service)
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
	err := s.change(ctx, service, func(tx *sql.Tx) error {
		sv, cur, err := serviceAndTraffic(ctx, tx, service)
		if err != nil {
			return err
		}
		if err := core.CheckDeleteVersion(service, number, cur); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM versions WHERE service_id = ? AND number = ?`, sv.ID, number)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return core.VersionNotFound(service, number)
		}
		return nil
	})
	return wrap(err, "delete version %d of service %q", number, service)
}

// numberSet is the set of a service's version numbers.
type numberSet map[int]bool

func (n numberSet) exists(number int) bool { return n[number] }

func versionNumbers(ctx context.Context, tx *sql.Tx, serviceID int64) (numberSet, error) {
	rows, err := tx.QueryContext(ctx, `SELECT number FROM versions WHERE service_id = ?`, serviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	set := numberSet{}
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		set[n] = true
	}
	return set, rows.Err()
}
