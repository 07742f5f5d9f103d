package sink

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"fanin/internal/store"
	"fanin/migrations"
)

// createOldResultsTable creates execution_results as an older backend did: without
// parent_result_id and skipped.
func createOldResultsTable(t *testing.T, s *Sink) {
	t.Helper()
	mustExec(t, s.db, `CREATE TABLE execution_results (
		result_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, exec_id TEXT, pc_id TEXT NOT NULL,
		exit_code INTEGER, stdout TEXT NOT NULL DEFAULT '', stderr TEXT NOT NULL DEFAULT '',
		started_at TEXT NOT NULL, finished_at TEXT, recorded_at TEXT NOT NULL, job_id TEXT,
		version TEXT, reaped INTEGER NOT NULL DEFAULT 0, expires_at TEXT)`)
	mustExec(t, s.db, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
		INSERT INTO schema_migrations VALUES (1, '0001_init.sql', '2026-01-01T00:00:00Z');`)
}

func TestMigrateRefusesATableThatLacksColumnsFaninWrites(t *testing.T) {
	cfg := testConfig(t)
	s := openUnmigrated(t, cfg)
	createOldResultsTable(t, s)
	mustExec(t, s.db, `CREATE TABLE executions (exec_id TEXT PRIMARY KEY, job_id TEXT NOT NULL,
		version TEXT NOT NULL, initiated_by TEXT NOT NULL, initiated_at TEXT NOT NULL,
		target_count INTEGER NOT NULL, success_count INTEGER NOT NULL DEFAULT 0,
		failure_count INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending')`)

	_, err := s.Migrate(context.Background())
	want := "database " + cfg.Path + ": table execution_results lacks columns parent_result_id, skipped (an older schema?): add them or use another database file"
	if err == nil || err.Error() != want {
		t.Fatalf("Migrate = %v,\nwant %s", err, want)
	}
	var se *store.SchemaError
	if !errors.As(err, &se) || !slices.Equal(se.Missing["execution_results"], []string{"parent_result_id", "skipped"}) {
		t.Fatalf("Migrate's error %#v is not a *store.SchemaError naming the two columns", err)
	}

	// Added, the database is fanin's.
	mustExec(t, s.db, `ALTER TABLE execution_results ADD COLUMN parent_result_id TEXT;
		ALTER TABLE execution_results ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0`)
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate after adding the columns: %v", err)
	}
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0))
}

func TestSchemaErrorNamesEveryTableAndColumn(t *testing.T) {
	s := openUnmigrated(t, testConfig(t))
	createOldResultsTable(t, s) // and no executions table at all
	mustExec(t, s.db, `CREATE TABLE dead_letters (stream TEXT NOT NULL, stream_seq INTEGER NOT NULL,
		subject TEXT NOT NULL, reason TEXT NOT NULL, payload BLOB NOT NULL, recorded_at TEXT NOT NULL,
		headers TEXT, PRIMARY KEY (stream, stream_seq))`)
	_, err := s.Migrate(context.Background())
	if err == nil {
		t.Fatal("Migrate accepted a database without executions")
	}
	msg := err.Error()
	for _, part := range []string{"table execution_results lacks columns parent_result_id, skipped; no table executions (an older schema?)"} {
		if !strings.Contains(msg, part) || strings.Contains(msg, "\n") {
			t.Errorf("error %q is not one line containing %q", msg, part)
		}
	}
}

func TestRequiredColumnsAreTheOnesTheStatementsUse(t *testing.T) {
	cols, err := requiredColumns()
	if err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string][]string{
		"execution_results": {"exec_id", "exit_code", "finished_at", "job_id", "parent_result_id", "pc_id",
			"reaped", "recorded_at", "request_id", "result_id", "skipped", "started_at", "stderr", "stdout", "version"},
		"executions":   {"exec_id", "failure_count", "status", "success_count", "target_count"},
		"dead_letters": {"headers", "payload", "reason", "recorded_at", "stream", "stream_created", "stream_seq", "subject"},
	} {
		if !slices.Equal(cols[table], want) {
			t.Errorf("columns fanin uses of %s = %v, want %v", table, cols[table], want)
		}
	}
	// A statement is read for its identifiers, not its string literals.
	used, err := usedColumns(migrations.FS, []string{`UPDATE executions SET status = 'job_id' WHERE exec_id = ?`})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(used["executions"], []string{"exec_id", "status"}) || len(used) != 1 {
		t.Errorf("usedColumns = %v, want executions: exec_id, status", used)
	}
}

func TestSchemaErrorNamesAMissingTable(t *testing.T) {
	s := openUnmigrated(t, testConfig(t))
	mustExec(t, s.db, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
		INSERT INTO schema_migrations VALUES (1, '0001_init.sql', '2026-01-01T00:00:00Z');`)
	_, err := s.Migrate(context.Background())
	if err == nil || !strings.Contains(err.Error(), ": no table execution_results; no table executions (an older schema?)") {
		t.Fatalf("Migrate = %v, want it to say execution_results and executions are missing", err)
	}
}
