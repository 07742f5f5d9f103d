// Package fleettest checks, for tests, what a simulated broadcast (package fleet) must leave
// in fanin's database and durables.
package fleettest

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // read-only connections to check the tables
	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/codec"
	"fanin/internal/fleet"
	"fanin/internal/natstest"
	"fanin/internal/sink"
	"fanin/internal/store"
)

// CreateExecution migrates the database at path and adds b's executions row, as the backend
// does before it broadcasts.
func CreateExecution(t testing.TB, path string, b fleet.Broadcast) {
	t.Helper()
	ctx := context.Background()
	cfg := sink.DefaultConfig()
	cfg.Path = path
	s, err := sink.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AddExecution(ctx, store.Execution{ExecID: b.ExecID, JobID: b.ManifestID, Version: b.Version,
		InitiatedBy: "test", InitiatedAt: time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC), TargetCount: b.PCs}); err != nil {
		t.Fatal(err)
	}
}

// WaitDrained waits until both default durables have nothing pending and nothing unacked.
func WaitDrained(t testing.TB, js jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	natstest.Eventually(t, timeout, "both durables drained", func() bool {
		return natstest.ConsumerDrained(t, js, "EVENTS", "backend_events_projector") &&
			natstest.ConsumerDrained(t, js, "RESULTS", "backend_results_projector")
	})
}

// Expected is what a broadcast must leave in the tables.
type Expected struct {
	Rows, Failures, Poison int
}

// Expect counts what msgs, a broadcast to pcs PCs, must leave.
func Expect(msgs []fleet.Message, pcs int) Expected {
	e := Expected{Rows: pcs}
	seen := map[string]bool{}
	for _, m := range msgs {
		switch {
		case m.Poison:
			e.Poison++
		case m.Kind == codec.KindResult && m.Failed && !seen[m.ResultID]:
			seen[m.ResultID] = true
			e.Failures++
		}
	}
	return e
}

func openRO(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// CheckTables verifies the database against the broadcast: one finished, versioned row per
// PC and result id, exact counters, status completed, each poison message dead-lettered once
// with its payload byte for byte.
func CheckTables(t testing.TB, path string, b fleet.Broadcast, msgs []fleet.Message) {
	t.Helper()
	want := Expect(msgs, b.PCs)
	db := openRO(t, path)
	var rows, finished, versioned, distinctPCs, failed, reaped int
	if err := db.QueryRow(`SELECT count(*), count(finished_at), count(version), count(DISTINCT pc_id),
		count(*) FILTER (WHERE exit_code <> 0), sum(reaped)
		FROM execution_results WHERE exec_id = ?`, b.ExecID).Scan(&rows, &finished, &versioned, &distinctPCs, &failed, &reaped); err != nil {
		t.Fatal(err)
	}
	if rows != want.Rows || finished != want.Rows || versioned != want.Rows || distinctPCs != want.Rows || failed != want.Failures || reaped != 0 {
		t.Errorf("execution_results: %d rows, %d finished, %d with version, %d PCs, %d failed, %d reaped; want %d, %d, %d, %d, %d, 0",
			rows, finished, versioned, distinctPCs, failed, reaped, want.Rows, want.Rows, want.Rows, want.Rows, want.Failures)
	}
	var all int
	if err := db.QueryRow(`SELECT count(*) FROM execution_results`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	if all != want.Rows {
		t.Errorf("execution_results holds %d rows in all, want %d", all, want.Rows)
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		if !m.Poison {
			ids[m.ResultID] = true
		}
	}
	if len(ids) != want.Rows {
		t.Fatalf("broadcast has %d result ids for %d PCs", len(ids), want.Rows)
	}
	var status string
	var success, failure int
	if err := db.QueryRow(`SELECT status, success_count, failure_count FROM executions WHERE exec_id = ?`,
		b.ExecID).Scan(&status, &success, &failure); err != nil {
		t.Fatal(err)
	}
	if status != "completed" || success != want.Rows-want.Failures || failure != want.Failures {
		t.Errorf("executions: %s %d/%d, want completed %d/%d", status, success, failure, want.Rows-want.Failures, want.Failures)
	}
	var dead, distinctDead int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT stream || '/' || stream_seq) FROM dead_letters`).Scan(&dead, &distinctDead); err != nil {
		t.Fatal(err)
	}
	if dead != want.Poison || distinctDead != want.Poison {
		t.Errorf("dead_letters: %d rows (%d distinct), want %d", dead, distinctDead, want.Poison)
	}
	// Poison payloads byte for byte: the multiset of dead-lettered payloads equals the poison sent.
	wantPayloads := map[string]int{}
	for _, m := range msgs {
		if m.Poison {
			wantPayloads[string(m.Payload)]++
		}
	}
	rs, err := db.Query(`SELECT payload FROM dead_letters`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var p []byte
		if err := rs.Scan(&p); err != nil {
			t.Fatal(err)
		}
		wantPayloads[string(p)]--
	}
	for p, n := range wantPayloads {
		if n != 0 {
			t.Errorf("dead_letters: payload %q off by %d", p, -n)
		}
	}
}
