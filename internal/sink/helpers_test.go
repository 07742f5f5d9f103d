package sink

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/modeltest"
	"fanin/internal/store"
)

// The broadcast most tests talk about.
const (
	testExec     = "exec-1"
	testRequest  = "req-1"
	testManifest = "inventory-hw"
	testVersion  = "1.0.0"
)

// t0 is when the test broadcast went out; publish times and payload times are offsets from it.
var t0 = time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)

// testConfig returns the default configuration with a database file in a fresh temporary
// directory.
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "fanin.db")
	return cfg
}

// newTestSink opens a migrated sink on a fresh database file, closed when the test ends.
func newTestSink(t *testing.T) *Sink {
	t.Helper()
	return openTestSink(t, testConfig(t))
}

// openTestSink opens and migrates a sink with cfg, closed when the test ends.
func openTestSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// startedMsg is an EventStarted payload as an agent publishes it.
type startedMsg struct {
	ResultID   string `json:"result_id"`
	RequestID  string `json:"request_id"`
	ExecID     string `json:"exec_id"`
	PCID       string `json:"pc_id"`
	StartedAt  string `json:"started_at"`
	ManifestID string `json:"manifest_id"`
	Version    string `json:"version"`
}

// resultMsg is an ExecResult payload; empty optional fields are left off the wire.
type resultMsg struct {
	ResultID       string `json:"result_id,omitempty"`
	RequestID      string `json:"request_id"`
	ExecID         string `json:"exec_id,omitempty"`
	ParentResultID string `json:"parent_result_id,omitempty"`
	PCID           string `json:"pc_id"`
	ExitCode       int    `json:"exit_code"`
	Skipped        bool   `json:"skipped,omitempty"`
	Stdout         string `json:"stdout"`
	Stderr         string `json:"stderr"`
	StartedAt      string `json:"started_at"`
	FinishedAt     string `json:"finished_at"`
	ManifestID     string `json:"manifest_id,omitempty"`
}

// started returns the started event of run resultID of the test broadcast on pcID, started at t0.
func started(resultID, pcID string) startedMsg {
	return startedMsg{
		ResultID: resultID, RequestID: testRequest, ExecID: testExec, PCID: pcID,
		StartedAt: t0.Format(time.RFC3339Nano), ManifestID: testManifest, Version: testVersion,
	}
}

// result returns the result of run resultID of the test broadcast on pcID: started at t0,
// finished 2 s later with exitCode.
func result(resultID, pcID string, exitCode int) resultMsg {
	x := resultMsg{
		ResultID: resultID, RequestID: testRequest, ExecID: testExec, PCID: pcID,
		ExitCode: exitCode, Stdout: "hostname=" + pcID,
		StartedAt:  t0.Format(time.RFC3339Nano),
		FinishedAt: t0.Add(2 * time.Second).Format(time.RFC3339Nano),
		ManifestID: testManifest,
	}
	if exitCode != 0 {
		x.Stderr = "collector: access denied"
	}
	return x
}

// record returns m as the decoded EVENTS message seq, published at published.
func (m startedMsg) record(t *testing.T, seq uint64, published time.Time) codec.Record {
	t.Helper()
	return goodRecord(t, codec.KindStarted, seq, "events.started."+m.ExecID+"."+m.PCID, mustJSON(t, m), published)
}

// record returns x as the decoded RESULTS message seq, published at published.
func (x resultMsg) record(t *testing.T, seq uint64, published time.Time) codec.Record {
	t.Helper()
	return goodRecord(t, codec.KindResult, seq, "results."+x.RequestID, mustJSON(t, x), published)
}

// goodRecord is rawRecord for a payload that must decode.
func goodRecord(t *testing.T, kind codec.Kind, seq uint64, subject string, payload []byte, published time.Time) codec.Record {
	t.Helper()
	r := rawRecord(kind, seq, subject, payload, published)
	if r.Poison != nil {
		t.Fatalf("test payload %s does not decode: %v", payload, r.Poison)
	}
	return r
}

// rawRecord returns payload as a decoded message of kind's stream (EVENTS or RESULTS); it may
// be poison.
func rawRecord(kind codec.Kind, seq uint64, subject string, payload []byte, published time.Time) codec.Record {
	stream := "EVENTS"
	if kind == codec.KindResult {
		stream = "RESULTS"
	}
	r := codec.Record{Stream: stream, Seq: seq, Subject: subject, Published: published, Payload: payload, Kind: kind}
	r.Decode()
	return r
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %#v: %v", v, err)
	}
	return b
}

// mustWrite writes recs in one Write and fails the test on an error or on any rejected record.
func mustWrite(t *testing.T, s *Sink, recs ...codec.Record) store.Report {
	t.Helper()
	rep, err := s.Write(context.Background(), recs)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	for _, d := range rep.DeadLetters {
		t.Fatalf("Write rejected record %d (%s/%d): %v", d.Index, recs[d.Index].Stream, recs[d.Index].Seq, d.Err)
	}
	return rep
}

// reasons returns, for each of the n records of a batch, the reason rep gives for its dead
// letter, or "" for a record that was projected.
// mustExec runs a statement on the sink's database.
func mustExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("exec %q: %v", query, err)
	}
}

// readRow returns the execution_results row of resultID; the test fails when there is none.
func readRow(t *testing.T, s *Sink, resultID string) modeltest.ResultRow {
	t.Helper()
	var r modeltest.ResultRow
	err := s.db.QueryRow(`SELECT request_id, exec_id, pc_id, exit_code, stdout, stderr,
		started_at, finished_at, recorded_at, job_id, version, reaped, expires_at,
		parent_result_id, skipped FROM execution_results WHERE result_id = ?`, resultID).Scan(
		&r.RequestID, &r.ExecID, &r.PCID, &r.ExitCode, &r.Stdout, &r.Stderr,
		&r.StartedAt, &r.FinishedAt, &r.RecordedAt, &r.JobID, &r.Version, &r.Reaped, &r.ExpiresAt,
		&r.ParentResultID, &r.Skipped)
	if err != nil {
		t.Fatalf("read execution_results row %s: %v", resultID, err)
	}
	return r
}

// countRows returns the number of rows in table.
func countRows(t *testing.T, s *Sink, table string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// execRow is the part of an executions row fanin moves.
type execRow struct {
	Success, Failure int
	Status           string
}

// insertExecution creates the executions row the backend creates before it broadcasts.
func insertExecution(t *testing.T, s *Sink, execID string, target int, status string) {
	t.Helper()
	mustExec(t, s.db, `INSERT INTO executions (exec_id, job_id, version, initiated_by,
		initiated_at, target_count, status) VALUES (?, ?, ?, 'operator', ?, ?, ?)`,
		execID, testManifest, testVersion, codec.FormatTime(t0), target, status)
}

// readExecution returns the counters and status of execID.
func readExecution(t *testing.T, s *Sink, execID string) execRow {
	t.Helper()
	var e execRow
	if err := s.db.QueryRow(`SELECT success_count, failure_count, status FROM executions
		WHERE exec_id = ?`, execID).Scan(&e.Success, &e.Failure, &e.Status); err != nil {
		t.Fatalf("read executions row %s: %v", execID, err)
	}
	return e
}

// valid returns a non-NULL text value.
func valid(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }

// validInt returns a non-NULL integer value.
func validInt(n int64) sql.NullInt64 { return sql.NullInt64{Int64: n, Valid: true} }
