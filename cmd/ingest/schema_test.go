package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnOlderSchemaStopsTheIngesterWithOneLine: a database whose execution_results predates
// columns fanin writes, with 0001 recorded as applied (CREATE TABLE IF NOT EXISTS left the
// table alone), must not start an ingester whose every batch would fail.
func TestAnOlderSchemaStopsTheIngesterWithOneLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fanin.db")
	execSQL(t, path,
		`CREATE TABLE execution_results (result_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, exec_id TEXT,
			pc_id TEXT NOT NULL, exit_code INTEGER, stdout TEXT NOT NULL DEFAULT '', stderr TEXT NOT NULL DEFAULT '',
			started_at TEXT NOT NULL, finished_at TEXT, recorded_at TEXT NOT NULL, job_id TEXT, version TEXT,
			reaped INTEGER NOT NULL DEFAULT 0, expires_at TEXT)`,
		`CREATE TABLE executions (exec_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, version TEXT NOT NULL,
			initiated_by TEXT NOT NULL, initiated_at TEXT NOT NULL, target_count INTEGER NOT NULL,
			success_count INTEGER NOT NULL DEFAULT 0, failure_count INTEGER NOT NULL DEFAULT 0,
			status TEXT NOT NULL DEFAULT 'pending')`,
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', '2026-01-01T00:00:00Z')`)
	want := "ingest: database " + path + ": table execution_results lacks columns parent_result_id, skipped (an older schema?): add them or use another database file"

	for _, args := range [][]string{
		{"--db", path, "--nats-url", "nats://127.0.0.1:1", "--metrics-addr="}, // the ingester
		{"migrate", "--db", path},
		{"dead-letters", "--db", path},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), args, &out, &errb, env(nil))
		if got := strings.TrimRight(errb.String(), "\n"); code != 1 || got != want {
			t.Errorf("ingest %s: exit %d, stderr %q;\nwant exit 1 and %q", strings.Join(args, " "), code, got, want)
		}
	}
}
