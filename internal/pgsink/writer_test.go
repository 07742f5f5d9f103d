package pgsink

import (
	"context"
	"strings"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fault"
	"fanin/internal/store"
)

func TestWriteProjectsARunAndCountsItOnce(t *testing.T) {
	s, _ := newStore(t)
	addExecution(t, s, "exec-1", 2)
	st := record(codec.KindStarted, 1, startedPayload("r1", "exec-1", "PC-1"), t0.Add(time.Second))
	res := record(codec.KindResult, 1, resultPayload("r1", "exec-1", "PC-1", 0, "hostname=PC-1"), t0.Add(3*time.Second))
	rep := mustWrite(t, s, st)
	if rep.Inserted != 1 || rep.System != "postgresql" || rep.Transactions != 1 {
		t.Fatalf("report %+v, want 1 insert in 1 postgresql transaction", rep)
	}
	rep = mustWrite(t, s, res, st, res) // the result, a redelivered started event, a duplicate
	if rep.Updated != 1 || rep.Unchanged != 2 {
		t.Fatalf("report %+v, want 1 update and 2 unchanged", rep)
	}
	mustWrite(t, s, res) // redelivered again: bumps nothing
	sum, err := s.Summary(context.Background(), "exec-1")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 1 || sum.Failed != 0 || sum.Status != "running" || sum.Results.Rows != 1 || sum.Results.Versioned != 1 {
		t.Fatalf("summary %+v, want one success, running, one versioned row", sum)
	}
	var stdout, recorded string
	if err := s.pool.QueryRow(context.Background(), `SELECT stdout, recorded_at FROM execution_results
		WHERE result_id = 'r1'`).Scan(&stdout, &recorded); err != nil {
		t.Fatal(err)
	}
	if stdout != "hostname=PC-1" || recorded != codec.FormatTime(t0.Add(time.Second)) {
		t.Fatalf("stdout %q recorded_at %q", stdout, recorded)
	}
}

func TestPoisonIsDeadLetteredByteForByte(t *testing.T) {
	s, _ := newStore(t)
	payload := []byte("{\"pc_id\":\"\xff\xfe\x00\"}")
	p := record(codec.KindResult, 7, payload, t0)
	p.Header = store.EncodeHeader(map[string][]string{"Nats-Msg-Id": {"m-7"}, "X-Bin": {"a\xffb"}})
	empty := record(codec.KindStarted, 8, nil, t0)
	rep := mustWrite(t, s, p, empty, p) // p redelivered in the same batch: one row
	if len(rep.DeadLetters) != 3 {
		t.Fatalf("%d dead letters reported, want 3", len(rep.DeadLetters))
	}
	dls, err := s.DeadLetters(context.Background(), sinkFilter())
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 2 {
		t.Fatalf("%d dead letters stored, want 2", len(dls))
	}
	for _, d := range dls {
		switch d.Seq {
		case 7:
			if string(d.Payload) != string(payload) || d.Header["X-Bin"][0] != "a\xffb" || d.Reason == "" {
				t.Fatalf("dead letter 7 = %+v", d)
			}
		case 8:
			if d.Payload == nil || len(d.Payload) != 0 || d.RawHeader != nil {
				t.Fatalf("empty payload stored as %#v, headers %#v", d.Payload, d.RawHeader)
			}
		}
	}
	var isNull bool
	if err := s.pool.QueryRow(context.Background(), `SELECT payload IS NULL FROM dead_letters WHERE stream_seq = 8`).Scan(&isNull); err != nil || isNull {
		t.Fatalf("empty payload NULL=%v (%v)", isNull, err)
	}
}

// TestRefusedRowIsBisectedAndDeadLettered: PostgreSQL text cannot hold a NUL byte, which JSON
// can ("\u0000"): the database refuses that one row (22021), the batch is split down to it,
// it is dead-lettered with the database's message, and the rest land.
func TestRefusedRowIsBisectedAndDeadLettered(t *testing.T) {
	s, _ := newStore(t)
	addExecution(t, s, "exec-1", 10)
	var recs []codec.Record
	for i := range 9 {
		id := string(rune('a' + i))
		stdout := "ok"
		if i == 5 {
			stdout = "nul\u0000byte"
		}
		recs = append(recs, record(codec.KindResult, uint64(i+1), resultPayload(id, "exec-1", "PC-"+id, 0, stdout), t0))
	}
	rep := mustWrite(t, s, recs...)
	if len(rep.DeadLetters) != 1 || rep.DeadLetters[0].Index != 5 {
		t.Fatalf("dead letters %+v, want record 5 only", rep.DeadLetters)
	}
	if !fault.IsPermanent(rep.DeadLetters[0].Err) || !strings.Contains(rep.DeadLetters[0].Err.Error(), "0x00") {
		t.Fatalf("reason %v: want the database's permanent error about the NUL byte", rep.DeadLetters[0].Err)
	}
	if rep.Inserted != 8 || rep.Transactions < 2 {
		t.Fatalf("report %+v: want 8 rows inserted over several transactions", rep)
	}
	sum, err := s.Summary(context.Background(), "exec-1")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 8 || sum.Results.Rows != 8 || len(sum.DeadLetters) != 1 {
		t.Fatalf("summary %+v: want 8 counted rows and the refused one dead-lettered", sum)
	}
	mustWrite(t, s, recs...) // redelivered: nothing counted twice, the dead letter kept once
	if sum, _ = s.Summary(context.Background(), "exec-1"); sum.Succeeded != 8 || sum.DeadLetters[0].Count != 1 {
		t.Fatalf("after a redelivery: %+v", sum)
	}
}

func TestClassifyPostgresErrors(t *testing.T) {
	s, url := newStore(t)
	ctx := context.Background()
	// A constraint: the executions row the backend creates, created twice.
	addExecution(t, s, "dup", 1)
	err := s.AddExecution(ctx, sinkExecution("dup"))
	if !fault.IsPermanent(err) {
		t.Fatalf("unique violation %v: want permanent", err)
	}
	// A read-only database (as a standby after a failover): transient, and not ready.
	if _, err := s.pool.Exec(ctx, `ALTER DATABASE `+dbName(t, s)+` SET default_transaction_read_only = on`); err != nil {
		t.Fatal(err)
	}
	ro := openStoreNoMigrate(t, url)
	_, err = ro.Write(ctx, []codec.Record{record(codec.KindStarted, 1, startedPayload("r1", "e", "p"), t0)})
	if err == nil || fault.IsPermanent(err) || statusCode(err) != "25006" {
		t.Fatalf("write to a read-only database: %v (SQLSTATE %q), want transient 25006", err, statusCode(err))
	}
	if err := ro.Ready(ctx); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("Ready on a read-only database = %v", err)
	}
	for _, tc := range []struct {
		err       error
		permanent bool
	}{
		{pgErr("23505"), true}, {pgErr("22021"), true}, {pgErr("22003"), true}, {pgErr("54000"), true},
		{pgErr("40001"), false}, {pgErr("40P01"), false}, {pgErr("08006"), false}, {pgErr("57P01"), false},
		{pgErr("57P03"), false}, {pgErr("25006"), false}, {pgErr("53100"), false}, {context.Canceled, false},
	} {
		if got := fault.IsPermanent(classify(tc.err)); got != tc.permanent {
			t.Errorf("classify(%v) permanent = %v, want %v", tc.err, got, tc.permanent)
		}
	}
	if !retryable(pgErr("40P01")) || !retryable(pgErr("40001")) || retryable(pgErr("23505")) {
		t.Error("retryable: want deadlocks and serialization failures only")
	}
}

// TestStartedBatchOverExistingRowsFallsBackToReadingThem: a batch of started events is COPYed
// without a read; when some of its rows exist (a redelivery, a result first), the COPY is
// rolled back and the rows are read and merged: nothing is duplicated, nothing lost.
func TestStartedBatchOverExistingRowsFallsBackToReadingThem(t *testing.T) {
	s, _ := newStore(t)
	addExecution(t, s, "exec-1", 3)
	st := func(id string, seq uint64) codec.Record {
		return record(codec.KindStarted, seq, startedPayload(id, "exec-1", "PC-"+id), t0.Add(time.Duration(seq)*time.Second))
	}
	mustWrite(t, s, record(codec.KindResult, 1, resultPayload("c", "", "PC-c", 0, "out"), t0)) // a result first, no exec_id
	if rep := mustWrite(t, s, st("a", 1), st("b", 2)); rep.Inserted != 2 {
		t.Fatalf("fresh started batch: %+v", rep)
	}
	rep := mustWrite(t, s, st("b", 2), st("a", 1), st("c", 3), st("d", 4))
	if rep.Inserted != 1 || rep.Updated != 1 || rep.Unchanged != 2 {
		t.Fatalf("report %+v: want d inserted, c updated (exec_id filled), a and b unchanged", rep)
	}
	sum, err := s.Summary(context.Background(), "exec-1")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Results.Rows != 4 || sum.Succeeded != 1 || sum.Status != "running" {
		t.Fatalf("summary %+v: want 4 rows, c counted once its started event filled exec_id", sum)
	}
}
