// Package pgsink is the PostgreSQL store: the same tables, projection rules (package project)
// and dead letters as package sink's SQLite store, written by any number of replicas on any
// number of hosts at once.
//
// Each batch is one transaction (READ COMMITTED). It first locks and reads the rows its records
// touch, in one fixed order (result_id byte order: SELECT … ORDER BY result_id FOR UPDATE), so
// two batches touching the same run take turns on its row instead of both merging into a stale
// copy; it merges the records with the shared rules, COPYs the new rows into the table (the
// bulk path), updates the changed ones, and bumps the executions' counters in exec_id order
// (atomic count = count + n). A row another transaction inserted between the read and the COPY
// fails the COPY with a unique violation: a lost race, like a deadlock or a serialization
// failure with another writer (a reaper locking in another order), and the transaction is
// tried again a few times inside Write before the error is returned as transient.
package pgsink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"fanin/internal/fault"
)

// Config says which PostgreSQL database to use.
type Config struct {
	// URL is the connection string: a postgres:// or postgresql:// URL, or libpq's key=value
	// form. Whatever it leaves out comes from the PG* environment variables (PGHOST, PGUSER,
	// PGPASSWORD, PGPASSFILE, PGSSLMODE, …) and ~/.pgpass, as with psql.
	URL string
	// MaxConns is the most connections the writer pool opens (default 6: the two projections
	// keep DefaultWriters transactions each in flight, the ledger and the commands need one
	// more). Readiness probes use one connection of their own, never one of these.
	MaxConns int
}

// DefaultWriters is how many transactions of one projection the store takes at once by
// default (see ConcurrentWriters).
const DefaultWriters = 2

// DefaultConfig returns the settings fanin runs with unless told otherwise.
func DefaultConfig() Config { return Config{MaxConns: 2*DefaultWriters + 2} }

// Validate reports the first setting that cannot work, as a *fault.FieldError naming its field.
func (c Config) Validate() error {
	if c.MaxConns < 1 || c.MaxConns > 1000 {
		return fault.Fieldf("MaxConns", "must be between 1 and 1000, not %d", c.MaxConns)
	}
	if _, err := pgx.ParseConfig(c.URL); err != nil {
		return fault.Fieldf("URL", "%s", Redact(err.Error(), c.URL))
	}
	return nil
}

// IsConnString reports whether s names a PostgreSQL database rather than a SQLite file: a
// postgres:// or postgresql:// URL, or libpq's key=value form, which starts with one of
// libpq's keywords and '=' ("host=db1 dbname=fanin"). A path ("/data/a host=b.db",
// "./fanin.db") is a SQLite file.
func IsConnString(s string) bool {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return true // even when it does not parse: an error about it, not a file of that name
	}
	key, _, ok := strings.Cut(strings.TrimLeft(s, " \t"), "=")
	return ok && libpqKeywords[strings.TrimRight(key, " \t")]
}

// libpqKeywords are the connection parameters libpq's key=value form takes.
var libpqKeywords = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "user": true, "password": true,
	"passfile": true, "channel_binding": true, "connect_timeout": true, "client_encoding": true,
	"options": true, "application_name": true, "fallback_application_name": true, "keepalives": true,
	"keepalives_idle": true, "keepalives_interval": true, "keepalives_count": true,
	"tcp_user_timeout": true, "replication": true, "gssencmode": true, "sslmode": true,
	"requiressl": true, "sslcompression": true, "sslcert": true, "sslkey": true, "sslpassword": true,
	"sslcertmode": true, "sslrootcert": true, "sslcrl": true, "sslcrldir": true, "sslsni": true,
	"requirepeer": true, "ssl_min_protocol_version": true, "ssl_max_protocol_version": true,
	"krbsrvname": true, "gsslib": true, "gssdelegation": true, "service": true,
	"target_session_attrs": true, "load_balance_hosts": true,
}

// Store is fanin's PostgreSQL database. Its methods may be called concurrently.
type Store struct {
	cfg   Config
	name  string        // the database as logs may show it: no password
	pool  *pgxpool.Pool // writes, the ledger and the commands' reads
	probe *pgxpool.Pool // readiness checks: one connection of their own

	mu     sync.RWMutex // guards closed; Close waits for the calls in progress
	closed bool
}

// ErrClosed is returned by Write and the other writes after Close.
var ErrClosed = errors.New("postgresql store closed")

// Open connects to the database cfg names and checks that it answers. It does not migrate:
// call Migrate. Errors never show the password.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open database: %s", Redact(err.Error(), cfg.URL))
	}
	name := DisplayName(pc.ConnConfig)
	pc.MaxConns = int32(cfg.MaxConns)
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.HealthCheckPeriod = 10 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, redacted(err, cfg.URL))
	}
	probeCfg := pc.Copy()
	probeCfg.MaxConns = 1
	probe, err := pgxpool.NewWithConfig(ctx, probeCfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open database %s: %w", name, redacted(err, cfg.URL))
	}
	s := &Store{cfg: cfg, name: name, pool: pool, probe: probe}
	if err := pool.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open database %s: %w", name, redacted(err, cfg.URL))
	}
	return s, nil
}

// ConcurrentWriters is how many transactions of one projection serve the store best at once
// (batch.ConcurrentStore): DefaultWriters. Concurrent batches are safe, as from several
// replicas (see Write); two let PostgreSQL COPY and commit one group while fanin fetches and
// sends the next.
func (s *Store) ConcurrentWriters() int { return DefaultWriters }

// Name is the database as it may be logged: user, hosts, port and database name, never the
// password.
func (s *Store) Name() string { return s.name }

// DisplayName renders a connection's settings without secrets: postgres://user@host:port/db.
// A unix socket directory is shown as the host query parameter, as libpq writes it.
func DisplayName(cc *pgx.ConnConfig) string {
	var hosts, sockets []string
	seen := map[string]bool{}
	add := func(host string, port uint16) {
		if seen[host+":"+strconv.Itoa(int(port))] {
			return // sslmode=prefer tries each host twice, with TLS and without
		}
		seen[host+":"+strconv.Itoa(int(port))] = true
		if strings.HasPrefix(host, "/") {
			sockets = append(sockets, host)
			return
		}
		hosts = append(hosts, net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	add(cc.Host, cc.Port)
	for _, fb := range cc.Fallbacks {
		add(fb.Host, fb.Port)
	}
	u := url.URL{Scheme: "postgres", User: url.User(cc.User), Host: strings.Join(hosts, ","), Path: "/" + cc.Database}
	if len(sockets) > 0 {
		u.RawQuery = "host=" + strings.Join(sockets, ",")
		if cc.Port != 5432 {
			u.RawQuery += "&port=" + strconv.Itoa(int(cc.Port))
		}
	}
	return u.String()
}

// Close waits for the calls in progress, then closes every connection. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.pool.Close()
	s.probe.Close()
	return nil
}

// enter is the start of every call that needs the pool open: it returns false after Close;
// otherwise call leave when done.
func (s *Store) enter() bool {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return false
	}
	return true
}

func (s *Store) leave() { s.mu.RUnlock() }

// Ready reports whether the database answers and accepts writes, on the probe's own
// connection (never one a Write waits for), within 2 s: a server that is down, a standby
// (read-only after a failover), or a closed store is not ready.
func (s *Store) Ready(ctx context.Context) error {
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var ro string
	if err := s.probe.QueryRow(ctx, `SELECT current_setting('transaction_read_only')`).Scan(&ro); err != nil {
		return fmt.Errorf("%s: %w", s.name, redacted(err, s.cfg.URL))
	}
	if ro == "on" {
		return fmt.Errorf("%s is read-only (a standby after a failover? list every host and add target_session_attrs=read-write)", s.name)
	}
	return nil
}

// Display is the database c names as logs may show it (see DisplayName), or a placeholder when
// c.URL does not parse.
func (c Config) Display() string {
	cc, err := pgx.ParseConfig(c.URL)
	if err != nil {
		return "postgresql (connection string does not parse)"
	}
	return DisplayName(cc)
}
