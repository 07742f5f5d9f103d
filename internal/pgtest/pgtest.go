// Package pgtest gives tests a real PostgreSQL server: the one FANIN_TEST_POSTGRES names (a
// connection string, URL or key=value form), or else a throwaway cluster started from the
// initdb and pg_ctl binaries of Debian's postgresql package (/usr/lib/postgresql/*/bin) in a
// temporary directory, listening only on a unix socket there, and removed when stopped.
//
// initdb and postgres refuse to run as root: as root the cluster is run as the postgres
// system user (runuser -u postgres --), its directory owned by that user.
//
// Start it once per test binary (in TestMain) and give each test its own database with
// NewDB, so tests are independent. Tests skip, saying so in one line, only when neither
// FANIN_TEST_POSTGRES nor any PostgreSQL binary exists.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the variable that points tests at an existing server.
const EnvVar = "FANIN_TEST_POSTGRES"

// ErrNoPostgres is returned by Start when there is no server to use and no binary to start one.
var ErrNoPostgres = errors.New("no PostgreSQL: " + EnvVar + " is unset and no initdb under /usr/lib/postgresql/*/bin or on PATH")

// Server is a PostgreSQL server for tests. The zero value is not usable; see Start.
type Server struct {
	admin string // connection string of a database to run CREATE DATABASE in
	err   error  // why there is no server (NewDB skips with it)

	// A throwaway cluster's, empty for FANIN_TEST_POSTGRES.
	bin, dir, data, sock string
	asPostgres           bool
	seq                  atomic.Int64
}

// Start finds or starts a server. With an error the server is still usable: NewDB then skips
// the test (ErrNoPostgres) or fails it (the cluster could not be started), saying why.
func Start(ctx context.Context) *Server {
	if cs := os.Getenv(EnvVar); cs != "" {
		return &Server{admin: cs}
	}
	bin := findBin()
	if bin == "" {
		return &Server{err: ErrNoPostgres}
	}
	s := &Server{bin: bin, asPostgres: os.Geteuid() == 0}
	if err := s.initCluster(ctx); err != nil {
		s.Stop()
		return &Server{err: fmt.Errorf("start a throwaway PostgreSQL from %s: %w", bin, err)}
	}
	return s
}

// findBin returns the directory of the newest initdb, "" when there is none.
func findBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func (s *Server) initCluster(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "fanin-pg-")
	if err != nil {
		return err
	}
	s.dir = dir
	s.data = filepath.Join(dir, "data")
	s.sock = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if s.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres system user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
	}
	if out, err := s.run(ctx, "initdb", "-D", s.data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	if err := s.pgctl(ctx, "start"); err != nil {
		return err
	}
	s.admin = fmt.Sprintf("host=%s port=5432 user=postgres dbname=postgres sslmode=disable", s.sock)
	return nil
}

// pgctl runs pg_ctl action (start, restart) and waits for the server to accept connections.
func (s *Server) pgctl(ctx context.Context, action string) error {
	// Only the unix socket in the private directory: no port is taken on the machine. fsync
	// off: a test cluster is thrown away, never recovered after a power loss.
	opts := "-c listen_addresses='' -k " + s.sock + " -p 5432 -c fsync=off -c synchronous_commit=off" +
		" -c full_page_writes=off -c max_connections=200"
	out, err := s.run(ctx, "pg_ctl", "-D", s.data, "-w", "-t", "60", "-m", "fast",
		"-l", filepath.Join(s.dir, "log"), "-o", opts, action)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl %s: %w: %s %s", action, err, out, log)
	}
	return nil
}

func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asPostgres {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

// Err reports why the server is not usable, nil when it is.
func (s *Server) Err() error { return s.err }

// Throwaway reports whether the server is a cluster Start started (which Restart can restart).
func (s *Server) Throwaway() bool { return s.data != "" && s.err == nil }

// Restart restarts a throwaway cluster (pg_ctl restart -m fast): every connection is closed
// by the server, as in a restart in production. It skips the test for FANIN_TEST_POSTGRES.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if !s.Throwaway() {
		t.Skipf("pgtest: cannot restart the server %s names", EnvVar)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.pgctl(ctx, "restart"); err != nil {
		t.Fatal(err)
	}
}

// Stop stops a throwaway cluster and removes its directory; it does nothing to a server
// FANIN_TEST_POSTGRES names. It is safe to call more than once.
func (s *Server) Stop() {
	if s.dir == "" {
		return
	}
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, _ = s.run(ctx, "pg_ctl", "-D", s.data, "-w", "-m", "immediate", "stop")
		cancel()
	}
	_ = os.RemoveAll(s.dir)
	s.dir = ""
}

// NewDB creates a fresh, empty database for t, dropped when t ends, and returns its connection
// string. It skips t when there is no PostgreSQL at all (fails it under FANIN_REQUIRE_TOOLS,
// as CI runs), and fails it when the server cannot be used.
func (s *Server) NewDB(t testing.TB) string {
	t.Helper()
	if errors.Is(s.err, ErrNoPostgres) {
		if os.Getenv("FANIN_REQUIRE_TOOLS") != "" {
			t.Fatal("pgtest: PostgreSQL is required (FANIN_REQUIRE_TOOLS is set, as CI sets it): " + s.err.Error())
		}
		t.Skip("pgtest: skipped, " + s.err.Error())
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("fanin_test_%d_%d", os.Getpid(), s.seq.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.admin)
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return withDB(s.admin, name)
}

// withDB returns connection string cs (a URL or libpq's key=value form) naming database name.
func withDB(cs, name string) string {
	if strings.HasPrefix(cs, "postgres://") || strings.HasPrefix(cs, "postgresql://") {
		u := cs
		q := ""
		if i := strings.IndexByte(u, '?'); i >= 0 {
			u, q = u[:i], u[i:]
		}
		if i := strings.LastIndexByte(u, '/'); i > len("postgresql://") {
			u = u[:i]
		}
		return u + "/" + name + q
	}
	return cs + " dbname=" + name // a later key wins in libpq's key=value form
}

// Lazy is a package's test server, started by the first test that asks for it, so a test
// binary that runs no PostgreSQL test starts none. TestMain calls Stop after m.Run.
type Lazy struct {
	once sync.Once
	srv  *Server
}

// Server returns the server, starting it on first use.
func (l *Lazy) Server() *Server {
	l.once.Do(func() { l.srv = Start(context.Background()) })
	return l.srv
}

// Stop stops the server if it was started.
func (l *Lazy) Stop() {
	if l.srv != nil {
		l.srv.Stop()
	}
}
