package sink

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fault"
)

func TestDatabaseIDIsKeptByTheFileAndNewForANewFile(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	s := openTestSink(t, cfg)
	id, err := s.DatabaseID(ctx)
	if err != nil || len(id) != 32 {
		t.Fatalf("DatabaseID = %q, %v; want 32 hex digits", id, err)
	}
	s.Close()
	again := openTestSink(t, cfg)
	if id2, _ := again.DatabaseID(ctx); id2 != id {
		t.Fatalf("reopened: id %q, want %q", id2, id)
	}
	if other, _ := newTestSink(t).DatabaseID(ctx); other == id {
		t.Fatalf("a new database has the same id %q", id)
	}
}

func TestSafePointHoldsForItsIncarnationAndAProjectionThatHasRows(t *testing.T) {
	ctx := context.Background()
	s := newTestSink(t)
	created := time.Date(2026, 11, 30, 8, 0, 0, 123456789, time.UTC)
	// An empty projection vouches for nothing.
	if err := s.SaveSafePoint(ctx, "RESULTS", "d", created, 40); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.SafePoint(ctx, "RESULTS", "d", created); got != 0 {
		t.Fatalf("empty projection: safe point %d, want 0", got)
	}
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0))
	for _, tc := range []struct {
		name            string
		stream, durable string
		created         time.Time
		want            uint64
	}{
		{"same incarnation", "RESULTS", "d", created, 40},
		{"another incarnation", "RESULTS", "d", created.Add(time.Second), 0},
		{"another durable", "RESULTS", "e", created, 0},
		{"another stream", "EVENTS", "d", created, 0},
	} {
		if got, err := s.SafePoint(ctx, tc.stream, tc.durable, tc.created); err != nil || got != tc.want {
			t.Errorf("%s: safe point %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	if err := s.SaveSafePoint(ctx, "RESULTS", "d", created, 55); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.SafePoint(ctx, "RESULTS", "d", created); got != 55 {
		t.Fatalf("after a second save: %d, want 55", got)
	}
}

func TestResetForReplaySetsCountersBackOnlyWhenTheProjectionIsEmpty(t *testing.T) {
	ctx := context.Background()
	s := newTestSink(t)
	insertExecution(t, s, "exec-1", 2, "pending")
	insertExecution(t, s, "exec-2", 1, "expired")
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0), result("r2", "pc2", 1).record(t, 2, t0))
	if e := readExecution(t, s, "exec-1"); e.Success != 1 || e.Failure != 1 || e.Status != "completed" {
		t.Fatalf("before: %+v", e)
	}
	if reset, err := s.ResetForReplay(ctx); err != nil || reset {
		t.Fatalf("with rows: reset %v, %v; want nothing done", reset, err)
	}
	mustExec(t, s.db, `UPDATE executions SET failure_count = 3 WHERE exec_id = 'exec-2'`)
	mustExec(t, s.db, `DELETE FROM execution_results`)
	if reset, err := s.ResetForReplay(ctx); err != nil || !reset {
		t.Fatalf("empty: reset %v, %v; want done", reset, err)
	}
	if e := readExecution(t, s, "exec-1"); e.Success != 0 || e.Failure != 0 || e.Status != "pending" {
		t.Fatalf("exec-1 after the reset: %+v, want 0/0 pending", e)
	}
	if e := readExecution(t, s, "exec-2"); e.Success != 0 || e.Failure != 0 || e.Status != "expired" {
		t.Fatalf("exec-2 after the reset: %+v, want 0/0 and still expired", e)
	}
	// The replay counts each run once again.
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0), result("r2", "pc2", 1).record(t, 2, t0))
	if e := readExecution(t, s, "exec-1"); e.Success != 1 || e.Failure != 1 || e.Status != "completed" {
		t.Fatalf("after the replay: %+v, want 1/1 completed", e)
	}
}

func TestWriteRefusesADatabaseFileDeletedOrReplaced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced", func(t *testing.T, path string) {
			if err := os.Rename(path, path+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			s := openTestSink(t, cfg)
			mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0))
			tc.change(t, cfg.Path)
			if err := s.CheckFile(); !errors.Is(err, ErrReplaced) {
				t.Fatalf("CheckFile: %v, want ErrReplaced", err)
			}
			_, err := s.Write(context.Background(), []codec.Record{result("r2", "pc2", 0).record(t, 2, t0)})
			if !errors.Is(err, ErrReplaced) || fault.IsPermanent(err) {
				t.Fatalf("Write: %v, want a transient ErrReplaced", err)
			}
		})
	}
}

func TestCheckFileAcceptsTheFilePutBack(t *testing.T) {
	cfg := testConfig(t)
	s := openTestSink(t, cfg)
	if err := os.Rename(cfg.Path, cfg.Path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFile(); !errors.Is(err, ErrReplaced) {
		t.Fatalf("moved away: %v", err)
	}
	if err := os.Rename(cfg.Path+".moved", cfg.Path); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFile(); err != nil {
		t.Fatalf("put back: %v", err)
	}
}

func TestLastCommittedIsTheHighestSequenceEveryTransactionHeld(t *testing.T) {
	ctx := context.Background()
	s := newTestSink(t)
	var zero time.Time // the test records' stream incarnation
	last := func() (uint64, bool) {
		t.Helper()
		seq, known, err := s.LastCommitted(ctx, "RESULTS", zero)
		if err != nil {
			t.Fatal(err)
		}
		return seq, known
	}
	if seq, known := last(); known {
		t.Fatalf("new database: last committed %d, want none known", seq)
	}
	steps := []struct {
		name string
		recs []codec.Record
		want uint64
	}{
		{"a batch, in any order", []codec.Record{result("r2", "pc2", 0).record(t, 7, t0), result("r1", "pc1", 0).record(t, 5, t0)}, 7},
		{"a poison message counts: it is acked too", []codec.Record{rawRecord(codec.KindResult, 9, "results.x", []byte("{"), t0)}, 9},
		{"a redelivery of older messages does not lower it", []codec.Record{result("r1", "pc1", 0).record(t, 5, t0)}, 9},
	}
	for _, st := range steps {
		if _, err := s.Write(ctx, st.recs); err != nil {
			t.Fatal(err)
		}
		if seq, known := last(); !known || seq != st.want {
			t.Fatalf("%s: last committed %d (known %v), want %d", st.name, seq, known, st.want)
		}
	}
	if _, known, _ := s.LastCommitted(ctx, "RESULTS", zero.Add(time.Second)); known {
		t.Fatal("another incarnation of the stream has a last committed sequence")
	}
	if _, known, _ := s.LastCommitted(ctx, "EVENTS", zero); known {
		t.Fatal("another stream has a last committed sequence")
	}
	// A projection emptied by hand vouches for nothing, and a replay forgets the marks.
	mustExec(t, s.db, `DELETE FROM execution_results; DELETE FROM dead_letters`)
	if seq, known := last(); known {
		t.Fatalf("empty projection: last committed %d, want none known", seq)
	}
	if reset, err := s.ResetForReplay(ctx); err != nil || !reset {
		t.Fatalf("reset %v, %v", reset, err)
	}
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 2, t0))
	if seq, known := last(); !known || seq != 2 {
		t.Fatalf("after a replay's first write: last committed %d (known %v), want 2", seq, known)
	}
}
