package sink

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fault"
	"fanin/internal/modeltest"
	"fanin/internal/store"
)

// deadLetter is one dead_letters row.
type deadLetter struct {
	Subject, Reason string
	Payload         []byte
	PayloadType     string
	Headers         sql.NullString
	RecordedAt      string
}

// readDeadLetter returns the dead letter of stream/seq; the test fails when there is none.
func readDeadLetter(t *testing.T, s *Sink, stream string, seq uint64) deadLetter {
	t.Helper()
	var d deadLetter
	err := s.db.QueryRow(`SELECT subject, reason, payload, typeof(payload), headers, recorded_at
		FROM dead_letters WHERE stream = ? AND stream_seq = ?`, stream, int64(seq)).Scan(
		&d.Subject, &d.Reason, &d.Payload, &d.PayloadType, &d.Headers, &d.RecordedAt)
	if err != nil {
		t.Fatalf("read dead letter %s/%d: %v", stream, seq, err)
	}
	return d
}

const validResult = `{"result_id":"r9","request_id":"req-1","exec_id":"exec-1","pc_id":"p","exit_code":0,"stdout":"","stderr":"","started_at":"2026-05-20T12:00:00Z","finished_at":"2026-05-20T12:00:01Z"}`

func TestPoisonRecordsAreDeadLetteredWithTheGoodOnes(t *testing.T) {
	s := newTestSink(t)
	published := t0.Add(7 * time.Second)
	recs := []codec.Record{
		started("r1", "pc1").record(t, 1, published),
		rawRecord(codec.KindStarted, 2, "events.started.exec-1.bad", []byte("not json at all"), published),
		rawRecord(codec.KindResult, 3, "results.req-1", nil, published),
		result("r2", "pc2", 0).record(t, 4, published),
		rawRecord(codec.KindResult, 5, "results.req-1", []byte{}, published),
		rawRecord(codec.KindResult, 6, "results.req-1", []byte(strings.Replace(validResult, `"pc_id":"p",`, "", 1)), published),
		rawRecord(codec.KindResult, 7, "results.req-1", []byte(strings.Replace(validResult, `"exit_code":0`, `"exit_code":1.5`, 1)), published),
	}
	poison := map[int]bool{1: true, 2: true, 4: true, 5: true, 6: true}

	rep, err := s.Write(context.Background(), recs)
	why := modeltest.Reasons(rep, len(recs))
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(why) != len(recs) {
		t.Fatalf("Report.DeadLetters has %d entries for %d records", len(why), len(recs))
	}
	for i, r := range recs {
		if !poison[i] {
			if why[i] != "" {
				t.Errorf("good record %d rejected: %s", i, why[i])
			}
			continue
		}
		if r.Poison == nil || !errors.Is(r.Poison, codec.ErrPoison) {
			t.Fatalf("test record %d is not poison: %v", i, r.Poison)
		}
		if why[i] != r.Poison.Error() {
			t.Errorf("Rejected[%d] = %q, want the codec's reason %q", i, why[i], r.Poison.Error())
		}
		d := readDeadLetter(t, s, r.Stream, r.Seq)
		if d.Reason != why[i] || d.Subject != r.Subject || d.RecordedAt != codec.FormatTime(published) {
			t.Errorf("dead letter %d = %+v, want reason %q, subject %q, recorded_at %s",
				i, d, why[i], r.Subject, codec.FormatTime(published))
		}
		if !bytes.Equal(d.Payload, r.Payload) {
			t.Errorf("dead letter %d payload = %q, want %q", i, d.Payload, r.Payload)
		}
	}
	if want := "exit_code: 1.5 is not an int32"; why[6] != want {
		t.Errorf("Rejected[6] = %q, want %q", why[6], want)
	}
	if !strings.Contains(why[5], "pc_id") {
		t.Errorf("reason for the missing field %q does not name pc_id", why[5])
	}
	if len(rep.DeadLetters) != len(poison) || rep.Inserted != 2 {
		t.Errorf("report = %+v, want %d dead-lettered and 2 inserted", rep, len(poison))
	}
	if n := countRows(t, s, "dead_letters"); n != len(poison) {
		t.Errorf("dead_letters has %d rows, want %d", n, len(poison))
	}
	if n := countRows(t, s, "execution_results"); n != 2 {
		t.Errorf("execution_results has %d rows, want 2", n)
	}
}

// failSwitch installs a trigger that makes every dead letter insert fail, with an error that is
// not permanent (SQLite's malformed-JSON error), until set(false) turns it off.
func failSwitch(t *testing.T, s *Sink) (set func(on bool)) {
	t.Helper()
	mustExec(t, s.db, `CREATE TABLE fail_switch (on_ INTEGER);
		INSERT INTO fail_switch VALUES (1);
		CREATE TRIGGER fail_dead_letters BEFORE INSERT ON dead_letters
		WHEN (SELECT on_ FROM fail_switch) BEGIN SELECT json('{broken'); END`)
	return func(on bool) {
		t.Helper()
		mustExec(t, s.db, `UPDATE fail_switch SET on_ = ?`, on)
	}
}

func TestPoisonRecordsShareTheBatchTransaction(t *testing.T) {
	s := newTestSink(t)
	set := failSwitch(t, s)
	recs := []codec.Record{
		started("r1", "pc1").record(t, 1, t0),
		rawRecord(codec.KindStarted, 2, "events.started.exec-1.bad", []byte("{"), t0),
		result("r2", "pc2", 0).record(t, 3, t0),
	}

	_, err := s.Write(context.Background(), recs)
	if err == nil {
		t.Fatal("Write succeeded although its dead letter could not be written")
	}
	if fault.IsPermanent(err) {
		t.Fatalf("IsPermanent(%v) = true, want a transient error for this test", err)
	}
	if n := countRows(t, s, "execution_results"); n != 0 {
		t.Fatalf("the failed batch left %d projected rows: the good records were committed apart from the poison", n)
	}

	set(false)
	rep, err := s.Write(context.Background(), recs)
	if err != nil {
		t.Fatalf("retried Write: %v", err)
	}
	if rep.Inserted != 2 || len(rep.DeadLetters) != 1 {
		t.Fatalf("retried Write report = %+v, want 2 inserted and 1 dead-lettered", rep)
	}
}

func TestDeadLetterKeepsPayloadByteForByte(t *testing.T) {
	s := newTestSink(t)
	payload := []byte("\xff\xfe{\"result_id\":\x00\"caf\xc3\xa9\"\r\n\t ")
	mustPoison(t, s, rawRecord(codec.KindResult, 1, "results.req-1", payload, t0))

	d := readDeadLetter(t, s, "RESULTS", 1)
	if d.PayloadType != "blob" {
		t.Errorf("typeof(payload) = %s, want blob", d.PayloadType)
	}
	if !bytes.Equal(d.Payload, payload) {
		t.Fatalf("payload = %q, want %q", d.Payload, payload)
	}
}

func TestEmptyPayloadIsStoredAsEmptyBlob(t *testing.T) {
	for _, tt := range []struct {
		name    string
		payload []byte
	}{
		{"nil", nil},
		{"empty slice", []byte{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSink(t)
			mustPoison(t, s, rawRecord(codec.KindStarted, 1, "events.started.e.p", tt.payload, t0))

			var (
				typ string
				n   int
			)
			if err := s.db.QueryRow(`SELECT typeof(payload), length(payload) FROM dead_letters`).Scan(&typ, &n); err != nil {
				t.Fatal(err)
			}
			if typ != "blob" || n != 0 {
				t.Fatalf("payload is %s of length %d, want an empty blob", typ, n)
			}
		})
	}
}

func TestRedeliveredPoisonRecordIsRecordedOnce(t *testing.T) {
	s := newTestSink(t)
	bad := rawRecord(codec.KindResult, 42, "results.req-1", []byte("not json"), t0)

	rep := mustPoison(t, s, bad, bad) // twice in one batch
	why := modeltest.Reasons(rep, 2)
	if why[1] == "" {
		t.Fatal("the second copy was not rejected: it must be terminated too")
	}
	mustPoison(t, s, bad) // and again in a later batch

	if n := countRows(t, s, "dead_letters"); n != 1 {
		t.Fatalf("dead_letters has %d rows, want 1", n)
	}
	// The same seq on the other stream is another message.
	other := bad
	other.Stream = "EVENTS"
	mustPoison(t, s, other)
	if n := countRows(t, s, "dead_letters"); n != 2 {
		t.Fatalf("dead_letters has %d rows, want 2", n)
	}
}

// mustPoison writes recs, all poison, and fails the test unless each is rejected.
func mustPoison(t *testing.T, s *Sink, recs ...codec.Record) store.Report {
	t.Helper()
	rep, err := s.Write(context.Background(), recs)
	why := modeltest.Reasons(rep, len(recs))
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	for i, reason := range why {
		if reason == "" {
			t.Fatalf("poison record %d was not rejected", i)
		}
	}
	return rep
}
