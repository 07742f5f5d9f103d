// Package sink writes decoded events into SQLite: it opens the database with the pragmas an
// ingester needs, applies the migrations, and writes each batch in one transaction.
package sink

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
)

// connector opens go-sqlite3 connections with fanin's DSN and connect hook, without
// registering a driver globally.
type connector struct {
	dsn string
	drv *sqlite3.SQLiteDriver
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.drv }

// Checkpoint policy, set on every connection. Random result ids dirty a page per row or so: the
// default auto-checkpoint (1000 pages, 4 MiB) would copy the WAL back into the database at
// nearly every commit. A larger WAL lets a page rewritten by several commits be copied once;
// journal_size_limit truncates the WAL file once a checkpoint has emptied it.
//
// Only PASSIVE checkpoints, and at a threshold above litestream's (1,000 pages): litestream,
// replicating the database from another process, does the checkpointing while it runs. A
// RESTART or TRUNCATE checkpoint here would reset the WAL under it and force a full snapshot
// (faults/litestream_test.go fails on one; README, "Backups with litestream").
const (
	walAutocheckpointPages = 16384    // 64 MiB of 4 KiB pages
	journalSizeLimit       = 64 << 20 // bytes
)

// connectHook sets what the DSN cannot. With persistWAL, closing the last connection keeps
// the -wal and -shm files (emptied) instead of deleting them.
func connectHook(persistWAL bool) func(c *sqlite3.SQLiteConn) error {
	return func(c *sqlite3.SQLiteConn) error {
		if _, err := c.Exec(fmt.Sprintf("PRAGMA wal_autocheckpoint = %d; PRAGMA journal_size_limit = %d;",
			walAutocheckpointPages, journalSizeLimit), nil); err != nil {
			return err
		}
		// The temporary database holds one batch of rows on their way in (stageStarted): its
		// rollback journal, a few hundred pages at most, is kept in memory rather than
		// written to a temporary file at every batch.
		if _, err := c.Exec("PRAGMA temp.journal_mode = MEMORY", nil); err != nil {
			return err
		}
		if persistWAL {
			return c.SetFileControlInt("main", sqlite3.SQLITE_FCNTL_PERSIST_WAL, 1)
		}
		return nil
	}
}

// Sink is fanin's SQLite database. One connection writes; both projections share it, so they
// take turns and never meet SQLITE_BUSY from each other. Readers in other processes can query
// the file at any time (WAL).
type Sink struct {
	cfg  Config
	db   *sql.DB
	file os.FileInfo // the file Open found at cfg.Path: what every commit must still land in

	mu       sync.Mutex // serialises Write and the other writes; guards closed and inFlight
	closed   bool
	inFlight *sql.Stmt // InsertInFlight's statement, prepared at its first call
	// hasRowids caches rowids: 0 not known yet, 1 yes, 2 no (guarded by mu).
	hasRowids int
}

// Open opens (creating it with mode 0600, or cfg.Mode, if needed) the database at cfg.Path and
// checks that it is usable; with cfg.Mode or cfg.Group set, it gives them to the database and
// its -wal and -shm files. It does not migrate: call Migrate.
func Open(ctx context.Context, cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	perm := cfg.Mode
	if perm == 0 {
		perm = 0o600
	}
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, perm)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	file, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}

	db := sql.OpenDB(connector{dsn: dsn(cfg), drv: &sqlite3.SQLiteDriver{ConnectHook: connectHook(cfg.sharesFiles())}})
	// One connection: SQLite allows one writer at a time, and a single connection is what
	// makes the two projections queue here instead of failing with SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
	}
	if mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("open database %s: journal mode is %q, want wal (is it on a network filesystem?)", cfg.Path, mode)
	}
	if cfg.sharesFiles() {
		// A read transaction opens (creating them) the -wal and -shm files, which then get the
		// mode and group too.
		var n int
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n)
		if err == nil {
			err = applyPerm(cfg)
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
		}
	}
	s := &Sink{cfg: cfg, db: db, file: file}
	if err := s.CheckFile(); err != nil { // replaced between the open and the first connection
		db.Close()
		return nil, err
	}
	return s, nil
}

// dsn builds the go-sqlite3 data source name. Every pragma fanin relies on is set here, per
// connection; sink_test.go reads them back, since a misspelled key is silently ignored.
func dsn(cfg Config) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", cfg.Sync)
	// Rounded up: 0 would mean "fail at once", which a sub-millisecond setting does not ask for.
	q.Set("_busy_timeout", fmt.Sprint((cfg.BusyTimeout + time.Millisecond - 1).Milliseconds()))
	q.Set("_txlock", "immediate") // BEGIN IMMEDIATE: take the write lock up front
	q.Set("_cache_size", fmt.Sprint(-cfg.CacheSizeMiB*1024))
	q.Set("_foreign_keys", "0")
	u := url.URL{Scheme: "file", Opaque: url.PathEscape(cfg.Path), RawQuery: q.Encode()}
	return u.String()
}

// Close waits for a Write in progress, then closes the database. It is idempotent.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.inFlight != nil {
		if err := s.inFlight.Close(); err != nil {
			s.db.Close()
			return fmt.Errorf("close database: %w", err)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// Empty reports whether the database holds no projected row and no dead letter: a fresh or
// wiped database, which the ingester answers by replaying the streams from the start.
func (s *Sink) Empty(ctx context.Context) (bool, error) {
	var empty bool
	if err := s.db.QueryRowContext(ctx, `SELECT `+emptyProjection).Scan(&empty); err != nil {
		return false, fmt.Errorf("check for an empty database: %w", err)
	}
	return empty, nil
}

// ErrReplaced is returned (wrapped) by Write and CheckFile when the file at Config.Path is no
// longer the one Open opened: it was deleted, renamed or replaced while fanin ran. SQLite keeps
// writing into the open file, which no reader will ever see again, so nothing it committed may
// be acked. It lasts until the file is put back or fanin is restarted (which opens whatever is
// at the path now).
var ErrReplaced = errors.New("database file deleted or replaced while open")

// CheckFile reports, with an error wrapping ErrReplaced, whether the file at Config.Path is
// not the one this Sink writes, as litestream checks before it trusts a database. It costs one
// stat and does not touch the connection, so health probes may call it.
func (s *Sink) CheckFile() error {
	fi, err := os.Stat(s.cfg.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s no longer exists: %w; restart fanin to open a new database there", s.cfg.Path, ErrReplaced)
	case err != nil:
		return fmt.Errorf("check database file: %w", err)
	case !os.SameFile(fi, s.file):
		return fmt.Errorf("%s is another file than the one opened: %w; restart fanin to open it", s.cfg.Path, ErrReplaced)
	}
	return nil
}

// Exec runs query with args in a BEGIN IMMEDIATE transaction of its own, on the writer
// connection and under the write lock, and returns the rows it changed. It is for tools and for
// the benchmark's native mode (SQLite's own speed, with fanin's pragmas and cache); projections
// go through Write.
func (s *Sink) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", classify(err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, classify(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", classify(err))
	}
	return n, nil
}
