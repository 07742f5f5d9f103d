package sink

import (
	"context"
	"testing"

	"fanin/internal/project"
)

// TestLoadRowsReadsEveryColumnBackAsWritten reads rows holding NULLs, empty texts, blanks,
// digits and multi-byte text back through the packed lookup: every column must come back as
// the projection rules see it.
func TestLoadRowsReadsEveryColumnBackAsWritten(t *testing.T) {
	s := newTestSink(t)
	mustExec(t, s.db, `INSERT INTO execution_results (result_id, request_id, exec_id, pc_id, exit_code,
		started_at, finished_at, recorded_at, job_id, version, reaped, parent_result_id, skipped)
		VALUES ('a 1', 'req 12 34', NULL, 'PC-é', NULL, '2026-05-20T12:00:00.000000Z', NULL,
			'2026-05-20T12:00:01.000000Z', NULL, NULL, 0, NULL, 0),
		('b', '', 'ex€c', '', -1, 's', 'f', 'r', 'jöb', '1 2', 1, 'parent 9', 1)`)
	want := map[string]project.Row{
		"a 1": {ResultID: "a 1", RequestID: "req 12 34", PCID: "PC-é", StartedAt: "2026-05-20T12:00:00.000000Z",
			RecordedAt: "2026-05-20T12:00:01.000000Z"},
		"b": {ResultID: "b", ExecID: "ex€c", ExitCode: -1, Finished: true, StartedAt: "s", FinishedAt: "f",
			RecordedAt: "r", JobID: "jöb", Version: "1 2", Reaped: true, ParentResultID: "parent 9", Skipped: true},
	}
	ctx := context.Background()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sqlTx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlTx.Rollback()
	entries, err := loadRows(ctx, &txn{Tx: sqlTx, conn: conn}, []string{"a 1", "b", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Fatalf("loaded %d rows, want %d", len(entries), len(want))
	}
	for id, w := range want {
		e := entries[id]
		if e == nil || !e.Existed || e.Dirty || e.Cur != w {
			t.Errorf("row %q = %+v, want %+v", id, e, w)
		}
	}
}

func TestUnpackRowRefusesWhatItCannotRead(t *testing.T) {
	for _, p := range []string{"", "1 2 3", "0 0 0 5 0 0 0 0 0 0 0 0 0 abc", "0 0 0 1 0 0 0 0 0 0 0 0 0 ab", "x 0 0 0 0 0 0 0 0 0 0 0 0 "} {
		if r, err := unpackRow(p); err == nil {
			t.Errorf("unpackRow(%q) = %+v, want an error", p, r)
		}
	}
}
