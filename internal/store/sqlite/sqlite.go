// Package sqlite is Wisp's embedded store: SQLite through a pure-Go driver (no
// cgo), in WAL mode with foreign keys on, and versioned migrations that are
// embedded in the binary and applied when the store opens.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*Store)(nil)

// Store is a store.Store backed by one SQLite database file.
type Store struct {
	db  *sql.DB
	now func() time.Time
}

// Open opens (creating if needed) the database at path and applies pending
// migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Writers wait for each other instead of failing with SQLITE_BUSY.
	q.Add("_pragma", "busy_timeout(10000)")
	// BEGIN IMMEDIATE takes the write lock at the start of every transaction,
	// so read-then-write transactions never deadlock on lock upgrades.
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	s := &Store{db: db, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := path.Base(name)
		num, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, num).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				num, base, formatTime(s.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", base, err)
		}
	}
	return nil
}

// tx runs fn in a transaction that commits if fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// queryer is what both *sql.DB and *sql.Tx offer.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// --- services ---

const serviceCols = `id, name, min_instances, max_instances, target_concurrency, target_rps, idle_timeout_ns, pause_after_ns, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanService(r scanner) (core.Service, error) {
	var (
		sv               core.Service
		idle, pause      int64
		created, updated string
	)
	err := r.Scan(&sv.ID, &sv.Name, &sv.Policy.MinInstances, &sv.Policy.MaxInstances, &sv.Policy.TargetConcurrency,
		&sv.Policy.TargetRPS, &idle, &pause, &created, &updated)
	if err != nil {
		return sv, err
	}
	sv.Policy.IdleTimeout = core.Duration(idle)
	sv.Policy.PauseAfter = core.Duration(pause)
	if sv.CreatedAt, err = parseTime(created); err != nil {
		return sv, err
	}
	sv.UpdatedAt, err = parseTime(updated)
	return sv, err
}

func getService(ctx context.Context, q queryer, name string) (core.Service, error) {
	sv, err := scanService(q.QueryRowContext(ctx, `SELECT `+serviceCols+` FROM services WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return sv, core.NotFoundf("service %q not found", name)
	}
	if err != nil {
		return sv, fmt.Errorf("get service %q: %w", name, err)
	}
	return sv, nil
}

// CreateService implements store.Store.
func (s *Store) CreateService(ctx context.Context, sv core.Service) (core.Service, error) {
	if err := core.ValidateServiceName(sv.Name); err != nil {
		return core.Service{}, err
	}
	if err := sv.Policy.Validate(); err != nil {
		return core.Service{}, err
	}
	now := s.now().UTC()
	var out core.Service
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM services WHERE name = ?`, sv.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return core.AlreadyExistsf("service %q already exists", sv.Name)
		}
		p := sv.Policy
		res, err := tx.ExecContext(ctx, `INSERT INTO services (name, min_instances, max_instances, target_concurrency,
			target_rps, idle_timeout_ns, pause_after_ns, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sv.Name, p.MinInstances, p.MaxInstances, p.TargetConcurrency, p.TargetRPS, int64(p.IdleTimeout), int64(p.PauseAfter),
			formatTime(now), formatTime(now))
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		out = core.Service{ID: id, Name: sv.Name, Policy: p, CreatedAt: now, UpdatedAt: now}
		return nil
	})
	if err != nil {
		return core.Service{}, wrap(err, "create service %q", sv.Name)
	}
	return out, nil
}

// GetService implements store.Store.
func (s *Store) GetService(ctx context.Context, name string) (core.Service, error) {
	return getService(ctx, s.db, name)
}

// ListServices implements store.Store.
func (s *Store) ListServices(ctx context.Context) ([]core.Service, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+serviceCols+` FROM services ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	defer rows.Close()
	out := []core.Service{}
	for rows.Next() {
		sv, err := scanService(rows)
		if err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		out = append(out, sv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return out, nil
}

// UpdatePolicy implements store.Store.
func (s *Store) UpdatePolicy(ctx context.Context, name string, patch core.PolicyPatch) (core.Service, error) {
	var out core.Service
	err := s.tx(ctx, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, name)
		if err != nil {
			return err
		}
		p := patch.Apply(sv.Policy)
		if err := p.Validate(); err != nil {
			return err
		}
		now := s.now().UTC()
		_, err = tx.ExecContext(ctx, `UPDATE services SET min_instances = ?, max_instances = ?, target_concurrency = ?,
			target_rps = ?, idle_timeout_ns = ?, pause_after_ns = ?, updated_at = ? WHERE id = ?`,
			p.MinInstances, p.MaxInstances, p.TargetConcurrency, p.TargetRPS, int64(p.IdleTimeout), int64(p.PauseAfter), formatTime(now), sv.ID)
		if err != nil {
			return err
		}
		sv.Policy, sv.UpdatedAt = p, now
		out = sv
		return nil
	})
	if err != nil {
		return core.Service{}, wrap(err, "update policy of service %q", name)
	}
	return out, nil
}

// DeleteService implements store.Store.
func (s *Store) DeleteService(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM services WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete service %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete service %q: %w", name, err)
	} else if n == 0 {
		return core.NotFoundf("service %q not found", name)
	}
	return nil
}

// --- versions ---

const versionCols = `v.id, s.name, v.number, v.image, v.image_id, v.port, v.env, v.command, v.args, v.memory_limit,
	v.cpu_limit, v.max_concurrency, v.timeout_ns, v.readiness_path, v.description, v.created_at,
	v.build_id, v.source_digest, v.git_commit, v.git_describe`

const versionFrom = ` FROM versions v JOIN services s ON s.id = v.service_id `

func scanVersion(r scanner) (core.Version, error) {
	var (
		v                  core.Version
		env, command, args string
		memory, timeout    int64
		created            string
		src                core.Source
	)
	err := r.Scan(&v.ID, &v.Service, &v.Number, &v.Image, &v.ImageID, &v.Port, &env, &command, &args, &memory,
		&v.CPULimit, &v.MaxConcurrency, &timeout, &v.ReadinessPath, &v.Description, &created,
		&src.BuildID, &src.Digest, &src.GitCommit, &src.GitDescribe)
	if err != nil {
		return v, err
	}
	if src != (core.Source{}) {
		v.Source = &src
	}
	v.MemoryLimit = core.ByteSize(memory)
	v.Timeout = core.Duration(timeout)
	for _, f := range []struct {
		src string
		dst *[]string
	}{{env, &v.Env}, {command, &v.Command}, {args, &v.Args}} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return v, fmt.Errorf("decode version %d: %w", v.ID, err)
		}
	}
	if len(v.Command) == 0 {
		v.Command = nil
	}
	if len(v.Args) == 0 {
		v.Args = nil
	}
	v.CreatedAt, err = parseTime(created)
	return v, err
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
	spec := v.VersionSpec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return core.Version{}, err
	}
	if percent < 0 || percent > 100 {
		return core.Version{}, core.Invalidf("promote", "percent must be between 0 and 100, got %d", percent)
	}
	var src core.Source
	if v.Source != nil {
		src = *v.Source
	}
	var out core.Version
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var serviceID int64
		var number int
		err := tx.QueryRowContext(ctx, `SELECT id, next_version FROM services WHERE name = ?`, v.Service).Scan(&serviceID, &number)
		if errors.Is(err, sql.ErrNoRows) {
			return core.NotFoundf("service %q not found", v.Service)
		}
		if err != nil {
			return err
		}
		now := s.now().UTC()
		res, err := tx.ExecContext(ctx, `INSERT INTO versions (service_id, number, image, image_id, port, env, command, args,
			memory_limit, cpu_limit, max_concurrency, timeout_ns, readiness_path, description, created_at,
			build_id, source_digest, git_commit, git_describe)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			serviceID, number, spec.Image, v.ImageID, spec.Port, jsonList(spec.Env), jsonList(spec.Command), jsonList(spec.Args),
			int64(spec.MemoryLimit), spec.CPULimit, spec.MaxConcurrency, int64(spec.Timeout), spec.ReadinessPath, spec.Description,
			formatTime(now), src.BuildID, src.Digest, src.GitCommit, src.GitDescribe)
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
		switch {
		case errors.Is(err, core.ErrNotFound):
			first := core.Traffic{
				Weights: []core.Weight{{Version: number, Percent: 100}},
				Message: fmt.Sprintf("first version v%d gets all traffic", number),
			}
			if message != "" {
				first.Message = message
			}
			if _, err := appendTraffic(ctx, tx, serviceID, v.Service, first, now); err != nil {
				return err
			}
		case err != nil:
			return err
		case percent > 0:
			next := cur.Shift(number, percent, message)
			numbers, err := versionNumbers(ctx, tx, serviceID)
			if err != nil {
				return err
			}
			if err := next.Validate(v.Service, func(n int) bool { return numbers[n] }); err != nil {
				return err
			}
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
		return v, core.NotFoundf("service %q has no version %d", service, number)
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

func listVersions(ctx context.Context, q queryer, service string) ([]core.Version, error) {
	if _, err := getService(ctx, q, service); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+versionCols+versionFrom+`WHERE s.name = ? ORDER BY v.number`, service)
	if err != nil {
		return nil, fmt.Errorf("list versions of service %q: %w", service, err)
	}
	defer rows.Close()
	out := []core.Version{}
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("list versions of service %q: %w", service, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list versions of service %q: %w", service, err)
	}
	return out, nil
}

// ListVersions implements store.Store.
func (s *Store) ListVersions(ctx context.Context, service string) ([]core.Version, error) {
	return listVersions(ctx, s.db, service)
}

// DeleteVersion implements store.Store.
func (s *Store) DeleteVersion(ctx context.Context, service string, number int) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, service)
		if err != nil {
			return err
		}
		cur, err := currentTraffic(ctx, tx, sv.ID, service)
		if err != nil && !errors.Is(err, core.ErrNotFound) {
			return err
		}
		if err == nil {
			if p := cur.PercentOf(number); p > 0 {
				return core.Conflictf("version %d of service %q carries %d%% of traffic; move its traffic to another version first", number, service, p)
			}
			if tags := cur.TagsOf(number); len(tags) > 0 {
				return core.Conflictf("version %d of service %q is tagged %s; move or remove the tag first", number, service, strings.Join(tags, ", "))
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM versions WHERE service_id = ? AND number = ?`, sv.ID, number)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return core.NotFoundf("service %q has no version %d", service, number)
		}
		return nil
	})
	return wrap(err, "delete version %d of service %q", number, service)
}

// --- traffic ---

const trafficCols = `id, weights, tags, sticky, message, created_at`

func scanTraffic(r scanner, service string) (core.TrafficEntry, error) {
	var (
		e                      core.TrafficEntry
		weights, tags, created string
	)
	if err := r.Scan(&e.ID, &weights, &tags, &e.Sticky, &e.Message, &created); err != nil {
		return e, err
	}
	e.Service = service
	if err := json.Unmarshal([]byte(weights), &e.Weights); err != nil {
		return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
	}
	if err := json.Unmarshal([]byte(tags), &e.Tags); err != nil {
		return e, fmt.Errorf("decode traffic entry %d: %w", e.ID, err)
	}
	e.Traffic = e.Normalize()
	var err error
	e.CreatedAt, err = parseTime(created)
	return e, err
}

func currentTraffic(ctx context.Context, q queryer, serviceID int64, service string) (core.TrafficEntry, error) {
	e, err := scanTraffic(q.QueryRowContext(ctx, `SELECT `+trafficCols+` FROM traffic WHERE service_id = ? ORDER BY id DESC LIMIT 1`, serviceID), service)
	if errors.Is(err, sql.ErrNoRows) {
		return e, core.NotFoundf("service %q has no traffic yet; create a version and it gets 100%%", service)
	}
	return e, err
}

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
	res, err := tx.ExecContext(ctx, `INSERT INTO traffic (service_id, weights, tags, sticky, message, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		serviceID, string(weights), string(tags), t.Sticky, t.Message, formatTime(now))
	if err != nil {
		return core.TrafficEntry{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return core.TrafficEntry{}, err
	}
	return core.TrafficEntry{ID: id, Service: service, Traffic: t, CreatedAt: now}, nil
}

func versionNumbers(ctx context.Context, tx *sql.Tx, serviceID int64) (map[int]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT number FROM versions WHERE service_id = ?`, serviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	set := map[int]bool{}
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		set[n] = true
	}
	return set, rows.Err()
}

// SetTraffic implements store.Store.
func (s *Store) SetTraffic(ctx context.Context, service string, t core.Traffic) (core.TrafficEntry, error) {
	var out core.TrafficEntry
	err := s.tx(ctx, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, service)
		if err != nil {
			return err
		}
		numbers, err := versionNumbers(ctx, tx, sv.ID)
		if err != nil {
			return err
		}
		if err := t.Validate(service, func(n int) bool { return numbers[n] }); err != nil {
			return err
		}
		out, err = appendTraffic(ctx, tx, sv.ID, service, t, s.now().UTC())
		return err
	})
	if err != nil {
		return core.TrafficEntry{}, wrap(err, "set traffic of service %q", service)
	}
	return out, nil
}

// GetTraffic implements store.Store.
func (s *Store) GetTraffic(ctx context.Context, service string) (core.TrafficEntry, error) {
	sv, err := getService(ctx, s.db, service)
	if err != nil {
		return core.TrafficEntry{}, err
	}
	e, err := currentTraffic(ctx, s.db, sv.ID, service)
	return e, wrap(err, "get traffic of service %q", service)
}

// TrafficHistory implements store.Store.
func (s *Store) TrafficHistory(ctx context.Context, service string) ([]core.TrafficEntry, error) {
	sv, err := getService(ctx, s.db, service)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+trafficCols+` FROM traffic WHERE service_id = ? ORDER BY id`, sv.ID)
	if err != nil {
		return nil, fmt.Errorf("traffic history of service %q: %w", service, err)
	}
	defer rows.Close()
	out := []core.TrafficEntry{}
	for rows.Next() {
		e, err := scanTraffic(rows, service)
		if err != nil {
			return nil, fmt.Errorf("traffic history of service %q: %w", service, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("traffic history of service %q: %w", service, err)
	}
	return out, nil
}

// RollbackTraffic implements store.Store.
func (s *Store) RollbackTraffic(ctx context.Context, service string, toID int64) (core.TrafficEntry, error) {
	var out core.TrafficEntry
	err := s.tx(ctx, func(tx *sql.Tx) error {
		sv, err := getService(ctx, tx, service)
		if err != nil {
			return err
		}
		cur, err := currentTraffic(ctx, tx, sv.ID, service)
		if err != nil {
			return err
		}
		var target core.TrafficEntry
		if toID == 0 {
			target, err = scanTraffic(tx.QueryRowContext(ctx, `SELECT `+trafficCols+` FROM traffic WHERE service_id = ? AND id < ? ORDER BY id DESC LIMIT 1`,
				sv.ID, cur.ID), service)
			if errors.Is(err, sql.ErrNoRows) {
				return core.Conflictf("service %q has no earlier traffic entry to roll back to", service)
			}
		} else {
			target, err = scanTraffic(tx.QueryRowContext(ctx, `SELECT `+trafficCols+` FROM traffic WHERE service_id = ? AND id = ?`, sv.ID, toID), service)
			if errors.Is(err, sql.ErrNoRows) {
				return core.NotFoundf("service %q has no traffic entry %d", service, toID)
			}
		}
		if err != nil {
			return err
		}
		numbers, err := versionNumbers(ctx, tx, sv.ID)
		if err != nil {
			return err
		}
		if err := target.Validate(service, func(n int) bool { return numbers[n] }); err != nil {
			return core.Conflictf("cannot roll back service %q to traffic entry %d: %v", service, target.ID, err)
		}
		t := target.Traffic
		t.Message = fmt.Sprintf("rollback to entry %d", target.ID)
		if target.Message != "" {
			t.Message += ": " + target.Message
		}
		if len(t.Message) > 1024 {
			t.Message = strings.ToValidUTF8(t.Message[:1024], "")
		}
		out, err = appendTraffic(ctx, tx, sv.ID, service, t, s.now().UTC())
		return err
	})
	if err != nil {
		return core.TrafficEntry{}, wrap(err, "roll back traffic of service %q", service)
	}
	return out, nil
}

// wrap adds context to I/O errors; kind errors from core already carry a
// message meant for users and pass through unchanged.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
