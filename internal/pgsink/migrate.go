package pgsink

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"fanin/internal/store"
	"fanin/migrations"
	"fanin/migrations/postgres"
)

// Migrate applies, in order and each in its own transaction, every migration of
// migrations/postgres not yet recorded in schema_migrations, then checks that the tables have
// every column fanin uses (CheckSchema). Running it again is a no-op; any number of replicas
// may run it at once (an advisory lock takes them one at a time). It returns the versions it
// applied.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	if !s.enter() {
		return nil, ErrClosed
	}
	defer s.leave()
	ms, err := migrations.Load(postgres.FS)
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range ms {
		ok, err := s.applyMigration(ctx, m)
		if err != nil {
			return applied, err
		}
		if ok {
			applied = append(applied, m.Version)
		}
	}
	return applied, s.checkSchema(ctx)
}

// applyMigration runs m unless it is recorded already, under the migration lock.
func (s *Store) applyMigration(ctx context.Context, m migrations.Migration) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("migration %s: begin: %w", m.Name, redacted(err, s.cfg.URL))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("migrate")); err != nil {
		return false, fmt.Errorf("migration %s: lock: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at text NOT NULL)`); err != nil {
		return false, fmt.Errorf("create schema_migrations: %w", err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, m.Version).Scan(&n); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.Version, m.Name, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return false, fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return true, nil
}

// requiredColumns are the columns fanin writes or reads, per table (docs/contract.md §4).
var requiredColumns = map[string][]string{
	"dead_letters": {"headers", "payload", "reason", "recorded_at", "stream", "stream_created", "stream_seq", "subject"},
	"execution_results": {"exec_id", "exit_code", "finished_at", "job_id", "parent_result_id", "pc_id", "reaped",
		"recorded_at", "request_id", "result_id", "skipped", "started_at", "stderr", "stdout", "version"},
	"executions": {"exec_id", "failure_count", "status", "success_count", "target_count"},
}

// checkSchema reports, as a *store.SchemaError, the columns fanin uses that the tables lack: a
// table an older schema made is left alone by CREATE TABLE IF NOT EXISTS.
func (s *Store) checkSchema(ctx context.Context) error {
	e := &store.SchemaError{Path: s.name, Missing: map[string][]string{}, Absent: map[string]bool{}}
	for table, want := range requiredColumns {
		rows, err := s.pool.Query(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1`, table)
		if err != nil {
			return fmt.Errorf("check schema: %w", err)
		}
		have, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("check schema: %w", err)
		}
		set := map[string]bool{}
		for _, c := range have {
			set[c] = true
		}
		for _, c := range want {
			if !set[c] {
				e.Missing[table] = append(e.Missing[table], c)
			}
		}
		if len(have) == 0 {
			e.Absent[table] = true
		}
	}
	if len(e.Missing) > 0 {
		return e
	}
	return nil
}
