package main

import (
	"context"

	"fanin/internal/batch"
	"fanin/internal/pgsink"
	"fanin/internal/sink"
	"fanin/internal/store"
)

// database is what the commands need of the store --db names: sink.Sink for a SQLite file,
// pgsink.Store for a PostgreSQL connection string. Both write the same tables by the same
// rules.
type database interface {
	batch.Store
	batch.Ledger
	Migrate(ctx context.Context) ([]int, error)
	Empty(ctx context.Context) (bool, error)
	Close() error
}

// deadLetterStore is what `ingest dead-letters` needs.
type deadLetterStore interface {
	database
	DeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]store.DeadLetterRow, error)
	DeleteDeadLetter(ctx context.Context, d store.DeadLetterRow) (bool, error)
	PurgeDeadLetters(ctx context.Context, f store.DeadLetterFilter, chunk int) (int, error)
}

// demoStore is what `ingest demo` needs beyond ingesting: the execution the backend would
// create, and the summary read back.
type demoStore interface {
	deadLetterStore
	AddExecution(ctx context.Context, e store.Execution) error
	Summary(ctx context.Context, execID string) (store.Summary, error)
}

// readyChecker is what /readyz asks of the database, without borrowing the writer's
// connection: for SQLite, that the file at --db is still the one opened; for PostgreSQL, that
// the server answers on the probe's own connection and accepts writes.
type readyChecker interface {
	Ready(ctx context.Context) error
}

// sqliteDB is a sink.Sink as the commands use it.
type sqliteDB struct{ *sink.Sink }

// Ready checks the file at --db (one stat; no connection).
func (d sqliteDB) Ready(context.Context) error { return d.CheckFile() }

// usePostgres reports whether --db names a PostgreSQL database rather than a SQLite file.
func (c *config) usePostgres() bool { return pgsink.IsConnString(c.DB.Path) }

// dbName is the database as logs and output may show it: the SQLite path, or the PostgreSQL
// connection without its password.
func (c *config) dbName() string {
	if !c.usePostgres() {
		return c.DB.Path
	}
	return c.PG.Display()
}

// openDatabase opens the store --db names (not migrated).
func openDatabase(ctx context.Context, cfg *config) (demoStore, error) {
	if cfg.usePostgres() {
		return pgsink.Open(ctx, cfg.PG)
	}
	s, err := sink.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	return sqliteDB{s}, nil
}

// validateDB checks the --db setting alone (dead-letters checks only that) and hands it to the
// store it names.
func (c *config) validateDB() error {
	c.PG.URL = c.DB.Path
	if c.usePostgres() {
		if err := c.PG.Validate(); err != nil {
			return flagError("pg", err)
		}
		return nil
	}
	if err := c.DB.Validate(); err != nil {
		return flagError("db", err)
	}
	return nil
}
