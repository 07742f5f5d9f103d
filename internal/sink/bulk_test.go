package sink

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"fanin/internal/codec"
	"fanin/internal/modeltest"
)

// TestJSONStringsComeBackByteForByte checks appendJSONString against SQLite's own JSON
// parser, the way insertStartedJSON reads the values: every valid UTF-8 text, control
// characters and NUL included, comes back as it was.
func TestJSONStringsComeBackByteForByte(t *testing.T) {
	s := newTestSink(t)
	texts := []string{
		"", "plain", `"`, `\`, `\"`, `"\\"`, "\x00", "a\x00b", "\x01\x1f\x7f", "\t\n\r\b\f",
		"/", "</script>", "é", "日本語", "😀", "\u2028\u2029", "\ufeff", "\uFFFD", "\U0010FFFF",
		`\u0041`, "PC-\"quoted\"\\back",
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		b := make([]rune, rng.IntN(20))
		for i := range b {
			switch rng.IntN(4) {
			case 0:
				b[i] = rune(rng.IntN(0x80))
			case 1:
				b[i] = rune(rng.IntN(0x800))
			default:
				b[i] = rune(rng.IntN(0x110000))
				if !utf8.ValidRune(b[i]) {
					b[i] = 'x'
				}
			}
		}
		texts = append(texts, string(b))
	}
	for _, want := range texts {
		list, ok := appendJSONString([]byte("[["), want)
		if !ok {
			t.Fatalf("appendJSONString(%q) refused valid UTF-8", want)
		}
		list = append(list, "]]"...)
		var got []byte
		if err := s.db.QueryRow(`SELECT value->>0 FROM json_each(?)`, string(list)).Scan(&got); err != nil {
			t.Fatalf("SQLite reads %s: %v", list, err)
		}
		if string(got) != want {
			t.Errorf("%q came back as %q (JSON %s)", want, got, list)
		}
	}
	for _, bad := range []string{"\xff", "a\xc3", "\xed\xa0\x80" /* a surrogate */, "\xc0\x80"} {
		if _, ok := appendJSONString(nil, bad); ok {
			t.Errorf("appendJSONString(%q) took invalid UTF-8", bad)
		}
	}
}

// TestStartedBatchIntoSomeExistingRows writes a started-only batch, large enough for the bulk
// insert, some of whose rows exist: one with the very values the batch carries (a redelivery),
// one finished by its result. Every other row is inserted, and the existing ones are merged as
// one row at a time would be.
func TestStartedBatchIntoSomeExistingRows(t *testing.T) {
	for _, table := range []string{"as fanin creates it", "WITHOUT ROWID, made before fanin's migrations"} {
		t.Run(table, func(t *testing.T) { testStartedBatchIntoSomeExistingRows(t, table != "as fanin creates it") })
	}
}

// testStartedBatchIntoSomeExistingRows is TestStartedBatchIntoSomeExistingRows on a table
// without rowids (the bulk insert cannot tell new rows by them: one row at a time) or with them.
func testStartedBatchIntoSomeExistingRows(t *testing.T, withoutRowid bool) {
	cfg := testConfig(t)
	if withoutRowid {
		db, err := sql.Open("sqlite3", cfg.Path)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, `CREATE TABLE execution_results (result_id TEXT PRIMARY KEY, request_id TEXT NOT NULL,
			exec_id TEXT, pc_id TEXT NOT NULL, exit_code INTEGER, stdout TEXT NOT NULL DEFAULT '',
			stderr TEXT NOT NULL DEFAULT '', started_at TEXT NOT NULL, finished_at TEXT, recorded_at TEXT NOT NULL,
			job_id TEXT, version TEXT, reaped INTEGER NOT NULL DEFAULT 0, expires_at TEXT, parent_result_id TEXT,
			skipped INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID`)
		db.Close()
	}
	s := openTestSink(t, cfg)
	insertExecution(t, s, testExec, 20, "pending")
	const n = 3 * bulkMin
	var batch []codec.Record
	for i := range n {
		id := fmt.Sprintf("r%02d", i)
		batch = append(batch, started(id, "PC-"+id).record(t, uint64(100+i), t0.Add(time.Second)))
	}
	first := []codec.Record{
		batch[2], // the same message, delivered before
		result("r05", "PC-r05", 1).record(t, 1, t0.Add(2*time.Second)),
	}
	mustWrite(t, s, first...)

	rep := mustWrite(t, s, batch...)
	if rep.Inserted != n-2 || rep.Updated != 1 || rep.Unchanged != 1 {
		t.Fatalf("report %+v, want %d inserted, 1 updated (r05), 1 unchanged (r02)", rep, n-2)
	}
	if got := countRows(t, s, "execution_results"); got != n {
		t.Fatalf("execution_results has %d rows, want %d", got, n)
	}
	r5 := readRow(t, s, "r05")
	if !r5.FinishedAt.Valid || r5.Version.String != testVersion || r5.RecordedAt != codec.FormatTime(t0.Add(time.Second)) {
		t.Errorf("r05 = %+v: want its outcome kept, the version filled and the started event's recorded_at", r5)
	}
	if got := readExecution(t, s, testExec); got.Success != 0 || got.Failure != 1 || got.Status != "running" {
		t.Errorf("execution = %+v, want 1 failure, running", got)
	}

	// All of them again: nothing is inserted, nothing changes.
	rep = mustWrite(t, s, batch...)
	if rep.Inserted != 0 || rep.Updated != 0 || rep.Unchanged != n {
		t.Fatalf("redelivered batch: report %+v, want %d unchanged", rep, n)
	}
}

// TestStartedBatchTextIsStoredAsBound writes started events whose texts need escaping in
// JSON through the bulk insert: the rows hold them byte for byte.
func TestStartedBatchTextIsStoredAsBound(t *testing.T) {
	s := newTestSink(t)
	pcs := []string{`PC-"q"`, `PC-\`, "PC-\x00nul", "PC-\ttab", "PC-é😀", "PC-\u2028"}
	var recs []codec.Record
	for i, pc := range pcs {
		m := started(fmt.Sprintf("r%d", i), pc)
		m.Version = strings.Repeat(pc, 2)
		recs = append(recs, m.record(t, uint64(i+1), t0))
	}
	if rep := mustWrite(t, s, recs...); rep.Inserted != len(pcs) {
		t.Fatalf("inserted %d rows, want %d", rep.Inserted, len(pcs))
	}
	for i, pc := range pcs {
		r := readRow(t, s, fmt.Sprintf("r%d", i))
		if r.PCID != pc || r.Version.String != strings.Repeat(pc, 2) || r.ExecID.String != testExec {
			t.Errorf("row %d: pc_id %q, version %q, exec_id %q; want %q, %q, %q",
				i, r.PCID, r.Version.String, r.ExecID.String, pc, strings.Repeat(pc, 2), testExec)
		}
	}
}

// TestStartedBatchRowRejectedByDatabase: a row the database refuses inside the bulk insert of a
// started-only batch fails the whole statement; bisection still brings it down to its own
// record, dead-lettered with the database's message, and the other rows land.
func TestStartedBatchRowRejectedByDatabase(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, testExec, 40, "pending")
	mustExec(t, s.db, refuseEvil)
	const n = 8 * bulkMin
	evil := map[int]bool{3: true, n - 5: true}
	recs := make([]codec.Record, n)
	for i := range recs {
		pc := fmt.Sprintf("PC-%02d", i)
		if evil[i] {
			pc = "evil"
		}
		recs[i] = started(fmt.Sprintf("r%02d", i), pc).record(t, uint64(i+1), t0)
	}

	rep, err := s.Write(context.Background(), recs)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	for i, why := range modeltest.Reasons(rep, n) {
		if evil[i] != (why != "") {
			t.Errorf("record %d: dead letter reason %q, want one exactly for the evil records", i, why)
		}
		if evil[i] && (!strings.Contains(why, "evil pc refused") || !strings.Contains(why, recs[i].Started.ResultID)) {
			t.Errorf("record %d: reason %q lacks the database's error or the row's id", i, why)
		}
	}
	if rep.Inserted != n-len(evil) || countRows(t, s, "execution_results") != n-len(evil) {
		t.Errorf("report %+v, %d rows; want %d inserted", rep, countRows(t, s, "execution_results"), n-len(evil))
	}
	if got := readExecution(t, s, testExec); got.Status != "running" {
		t.Errorf("execution = %+v, want running", got)
	}
}
