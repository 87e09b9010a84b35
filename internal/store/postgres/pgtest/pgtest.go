// Package pgtest gives tests a real PostgreSQL: a throwaway server started
// from the machine's PostgreSQL binaries (Debian's postgresql package puts
// them in /usr/lib/postgresql/<version>/bin), or the server that
// WISP_TEST_POSTGRES_URL names. Each test gets a fresh database of its own.
//
// A test package holds one Server, started by the first test that asks for
// a database and stopped by TestMain:
//
//	var pg pgtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
//
//	func TestX(t *testing.T) { url := pg.Database(t); … }
//
// The throwaway server runs in a temporary directory (in /dev/shm where
// there is one), listens on a free
// port of 127.0.0.1 and on a unix socket in that directory, trusts local
// connections, and trades durability for speed (fsync off). Run as root,
// it runs as the user postgres (PostgreSQL refuses to run as root). When
// the binaries are missing, tests skip saying so.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points the tests at an existing server
// instead: a URL whose user may create databases (CREATEDB), e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
const EnvURL = "WISP_TEST_POSTGRES_URL"

// MissingBinaries is why tests skip on a machine without PostgreSQL.
const MissingBinaries = "PostgreSQL server binaries not found (apt-get install postgresql)"

// startTimeout bounds initdb plus the server's start-up.
const startTimeout = 60 * time.Second

// Server is one PostgreSQL server shared by the tests of a package. The
// zero value is ready: the server starts with the first Database call.
type Server struct {
	once sync.Once
	skip string // why tests skip, or ""
	err  error  // why the server could not start

	admin string // URL of the maintenance database
	dir   string // the throwaway server's directory, "" for an external server
	cmd   *exec.Cmd
	exit  chan struct{} // closed when the server process ends
	log   string        // the server's log file

	mu sync.Mutex // serialises CREATE DATABASE (the template can be copied by one at a time)
	n  int

	binGlob string // where to look for the binaries; "" is defaultBinGlob (tests change it)
}

// defaultBinGlob is where Debian's postgresql packages put the server's
// binaries, one directory per major version.
const defaultBinGlob = "/usr/lib/postgresql/*/bin"

// Main runs the package's tests and then stops the server, and returns
// the exit code for os.Exit.
func (s *Server) Main(m *testing.M) int {
	code := m.Run()
	s.Stop()
	return code
}

// Database creates an empty database for t and returns its URL; the
// database is dropped when t ends. It skips t when there is no
// PostgreSQL, and fails it when the server would not start.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	s.once.Do(s.start)
	if s.skip != "" {
		t.Skip(s.skip)
	}
	if s.err != nil {
		t.Fatalf("pgtest: %v", s.err)
	}
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("wisp_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, s.n)
	err := s.exec(t.Context(), `CREATE DATABASE `+name)
	s.mu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(s.admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Exec runs sql on the server's maintenance database as the test user
// (a superuser on the throwaway server): for tests that act on the server
// itself, such as ending another connection.
func (s *Server) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if err := s.exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

func (s *Server) exec(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// Stop stops the throwaway server and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(os.Interrupt) // fast shutdown
		select {
		case <-s.exit:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exit
		}
		s.cmd = nil
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
}

func (s *Server) start() {
	if u := os.Getenv(EnvURL); u != "" {
		s.admin = u
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := s.exec(ctx, `SELECT 1`); err != nil {
			s.err = fmt.Errorf("%s: %w", EnvURL, err)
		}
		return
	}
	glob := s.binGlob
	if glob == "" {
		glob = defaultBinGlob
	}
	bin := findBinaries(glob)
	if bin == "" {
		s.skip = MissingBinaries
		return
	}
	// A port taken by someone else between the look and the server's
	// start fails the start: try again on another.
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	for attempt := 0; attempt < 3; attempt++ {
		if s.err = s.startServer(ctx, bin); s.err == nil {
			return
		}
		s.Stop()
	}
}

// findBinaries returns the directory of the newest PostgreSQL's initdb and
// postgres among those glob matches (…/<major version>/bin), else the one
// of the initdb on PATH, or "".
func findBinaries(glob string) string {
	dirs, _ := filepath.Glob(glob)
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "postgres")) {
			return d
		}
	}
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func (s *Server) startServer(ctx context.Context, bin string) error {
	// In memory where there is a tmpfs: with fsync off, CREATE DATABASE
	// still takes ~300 ms on this machine's disk, ~40 ms in memory.
	dir, err := os.MkdirTemp("/dev/shm", "wisp-pgtest-")
	if err != nil {
		if dir, err = os.MkdirTemp("", "wisp-pgtest-"); err != nil {
			return err
		}
	}
	s.dir = dir
	cred, err := serverUser(dir)
	if err != nil {
		return err
	}
	data := filepath.Join(dir, "data")
	// bin is one of the system's PostgreSQL directories (findBinaries).
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), //nolint:gosec // see above
		"-D", data, "-U", "wisp", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = sysProcAttr(cred, false)
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	port, err := freePort(ctx)
	if err != nil {
		return err
	}
	s.log = filepath.Join(dir, "postgres.log")
	logf, err := os.Create(s.log)
	if err != nil {
		return err
	}
	defer logf.Close()
	if cred != nil {
		_ = os.Chown(s.log, int(cred.Uid), int(cred.Gid))
	}
	// Not CommandContext: the server outlives this call, until Stop.
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, //nolint:gosec,noctx // bin as for initdb
		"-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		// A throwaway server: no durability, no replication (minimal WAL
		// makes CREATE DATABASE ten times faster), quick deadlock detection.
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "wal_level=minimal", "-c", "max_wal_senders=0",
		"-c", "deadlock_timeout=100ms", "-c", "max_connections=300",
		"-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// The server dies with the test binary, even when it is killed.
	s.cmd.SysProcAttr = sysProcAttr(cred, true)
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return fmt.Errorf("start postgres: %w", err)
	}
	s.exit = make(chan struct{})
	go func(cmd *exec.Cmd, exit chan struct{}) {
		_ = cmd.Wait()
		close(exit)
	}(s.cmd, s.exit)
	s.admin = fmt.Sprintf("postgres://wisp@127.0.0.1:%d/postgres?sslmode=disable", port)

	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.exec(ctx, `SELECT 1`)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exit:
			s.cmd = nil
			return fmt.Errorf("postgres exited at start-up: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within %s: %w; %s", startTimeout, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "its log ends:\n" + strings.Join(lines, "\n")
}

// serverUser returns the credential the server runs with: nil when not
// root, else the user postgres, which is given dir.
func serverUser(dir string) (*credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root, and PostgreSQL will not: there is no user postgres to run it as " +
			"(the postgresql package creates one)")
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cred := &credential{Uid: uint32(uid), Gid: uint32(gid)}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return nil, err
	}
	return cred, nil
}

func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
