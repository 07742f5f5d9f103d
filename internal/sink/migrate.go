package sink

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	"fanin/migrations"
)

// Migrate applies, in order and each in its own transaction, every migration not yet recorded
// in schema_migrations. Running it again is a no-op; several processes may run it at once.
// It returns the versions it applied.
//
// Then it checks the result (CheckSchema): a migration recorded as applied does not prove its
// tables have every column fanin uses (an older schema that CREATE TABLE IF NOT EXISTS left
// alone), and a *store.SchemaError names the missing ones.
func (s *Sink) Migrate(ctx context.Context) ([]int, error) {
	applied, err := migrate(ctx, s, migrations.FS)
	if err != nil {
		return applied, err
	}
	return applied, s.CheckSchema(ctx)
}

func migrate(ctx context.Context, s *Sink, fsys fs.FS) ([]int, error) {
	ms, err := migrations.Load(fsys)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var applied []int
	for _, m := range ms {
		ok, err := applyMigration(ctx, s, m)
		if err != nil {
			return applied, err
		}
		if ok {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// applyMigration runs m unless it is recorded already. The check and the change share one
// BEGIN IMMEDIATE transaction, so two processes migrating at once apply it once.
func applyMigration(ctx context.Context, s *Sink, m migrations.Migration) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return false, fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return true, nil
}
