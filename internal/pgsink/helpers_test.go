package pgsink

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fault"
	"fanin/internal/pgtest"
	"fanin/internal/sink"
	"fanin/internal/store"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	srv = pgtest.Start(context.Background())
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

var t0 = time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)

// newStore opens and migrates a store on a fresh database, closed when the test ends.
func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	url := srv.NewDB(t)
	return openStore(t, url), url
}

func openStore(t *testing.T, url string) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL = url
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// newSQLite opens a migrated SQLite store in a temporary directory: the reference a
// PostgreSQL store must equal.
func newSQLite(t *testing.T) (*sink.Sink, string) {
	t.Helper()
	cfg := sink.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "ref.db")
	cfg.Sync = sink.SyncNormal
	s, err := sink.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, cfg.Path
}

func startedPayload(resultID, execID, pc string) []byte {
	b, _ := json.Marshal(map[string]string{"result_id": resultID, "request_id": "req-1", "exec_id": execID,
		"pc_id": pc, "started_at": t0.Format(time.RFC3339Nano), "manifest_id": "inventory-hw", "version": "1.0.0"})
	return b
}

func resultPayload(resultID, execID, pc string, exit int, stdout string) []byte {
	m := map[string]any{"result_id": resultID, "request_id": "req-1", "pc_id": pc, "exit_code": exit,
		"stdout": stdout, "stderr": "", "started_at": t0.Format(time.RFC3339Nano),
		"finished_at": t0.Add(2 * time.Second).Format(time.RFC3339Nano)}
	if execID != "" {
		m["exec_id"] = execID
	}
	b, _ := json.Marshal(m)
	return b
}

// record returns payload as the decoded message seq of kind's stream; it may be poison.
func record(kind codec.Kind, seq uint64, payload []byte, published time.Time) codec.Record {
	stream, subject := "EVENTS", "events.started.x"
	if kind == codec.KindResult {
		stream, subject = "RESULTS", "results.req-1"
	}
	r := codec.Record{Stream: stream, Seq: seq, Subject: subject, Published: published, Payload: payload, Kind: kind}
	r.Decode()
	return r
}

// writeRetrying writes recs as the loop would: a transient error (a race lost too often) is
// naked and redelivered, so the batch is written again until it commits or fails for good.
func writeRetrying(ctx context.Context, s *Store, recs []codec.Record) error {
	for {
		_, err := s.Write(ctx, recs)
		if err == nil || fault.IsPermanent(err) {
			return err
		}
	}
}

func mustWrite(t *testing.T, s *Store, recs ...codec.Record) store.Report {
	t.Helper()
	rep, err := s.Write(context.Background(), recs)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return rep
}

func addExecution(t *testing.T, w interface {
	AddExecution(context.Context, store.Execution) error
}, execID string, target int) {
	t.Helper()
	if err := w.AddExecution(context.Background(), store.Execution{ExecID: execID, JobID: "inventory-hw",
		Version: "1.0.0", InitiatedBy: "test", InitiatedAt: t0, TargetCount: target}); err != nil {
		t.Fatal(err)
	}
}

// Dumps of the three tables, one line a row, every column as text (NULL as ∅): the same query
// text runs on both databases but for how bytes are shown in hex.
func dumpQueries(hex func(string) string) []string {
	c := func(col string) string { return "coalesce(CAST(" + col + " AS TEXT), '∅')" }
	cols := func(names ...string) string {
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = c(n)
		}
		return strings.Join(parts, " || '|' || ")
	}
	return []string{
		`SELECT ` + cols("result_id", "request_id", "exec_id", "pc_id", "exit_code", "stdout", "stderr",
			"started_at", "finished_at", "recorded_at", "job_id", "version", "reaped", "expires_at",
			"parent_result_id", "skipped") + ` FROM execution_results`,
		`SELECT ` + cols("exec_id", "job_id", "version", "initiated_by", "initiated_at", "target_count",
			"success_count", "failure_count", "status") + ` FROM executions`,
		`SELECT ` + cols("stream", "stream_created", "stream_seq", "subject", "reason", "recorded_at") +
			` || '|' || ` + hex("payload") + ` || '|' || coalesce(` + hex("headers") + `, '∅') FROM dead_letters`,
	}
}

// dumpPG returns the tables of s.
func dumpPG(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	for i, q := range dumpQueries(func(col string) string { return "upper(encode(" + col + ", 'hex'))" }) {
		rows, err := s.pool.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d %s", i, line))
		}
		rows.Close()
	}
	sort.Strings(out)
	return out
}

// dumpSQLite returns the tables of the SQLite file at path.
func dumpSQLite(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for i, q := range dumpQueries(func(col string) string { return "hex(" + col + ")" }) {
		rows, err := db.Query(strings.ReplaceAll(q, "coalesce(hex(headers)", "coalesce(CASE WHEN headers IS NULL THEN NULL ELSE hex(headers) END"))
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d %s", i, line))
		}
		rows.Close()
	}
	sort.Strings(out)
	return out
}

func diffLines(got, want []string) string {
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	for _, l := range want {
		w[l] = true
	}
	var d []string
	for _, l := range want {
		if !g[l] {
			d = append(d, "- "+l)
		}
	}
	for _, l := range got {
		if !w[l] {
			d = append(d, "+ "+l)
		}
	}
	if len(d) == 0 && len(got) != len(want) {
		d = append(d, fmt.Sprintf("%d rows, want %d", len(got), len(want)))
	}
	return strings.Join(d, "\n")
}
