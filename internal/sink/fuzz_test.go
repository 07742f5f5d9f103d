package sink

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/modeltest"
)

// fuzzSeedPayloads are inputs for FuzzDecodeAndWrite: real-looking payloads of both kinds,
// truncated JSON, huge strings, invalid UTF-8, out-of-range numbers, nested junk, duplicated
// keys and odd but valid RFC 3339 times.
func fuzzSeedPayloads() []string {
	const (
		started = `{"result_id":"4f5e0c1a-9a55-4a43-8f8e-0b8f6a1c2d3e","request_id":"req-1","exec_id":"exec-1","pc_id":"MINIPC-01","started_at":"2026-05-20T12:00:00.123456789Z","manifest_id":"inventory-hw","version":"1.0.0"}`
		result  = `{"result_id":"4f5e0c1a-9a55-4a43-8f8e-0b8f6a1c2d3e","request_id":"req-1","exec_id":"exec-1","pc_id":"MINIPC-01","exit_code":0,"skipped":false,"stdout":"hostname=MINIPC-01","stderr":"","started_at":"2026-05-20T12:00:00Z","finished_at":"2026-05-20T12:00:02.5+09:00","manifest_id":"inventory-hw","parent_result_id":"p-1","collect_object":"c/1"}`
		legacy  = `{"request_id":"r","pc_id":"x","exit_code":0,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`
	)
	big := strings.Repeat("x", 1<<20)
	return []string{
		started, result, legacy,
		started[:57], result[:len(result)-1], legacy[:20],
		"", " ", "{}", "[]", "null", "0", `"str"`,
		strings.Replace(legacy, `"stdout":""`, `"stdout":"`+big+`"`, 1),
		strings.Replace(started, `"version":"1.0.0"`, `"version":"`+big[:300000]+`"`, 1),
		strings.Replace(legacy, `"stdout":""`, "\"stdout\":\"\xff\xfe\xed\xa0\x80\"", 1),
		strings.Replace(started, `MINIPC-01`, "PC-\xc3\x28", 1),
		strings.Replace(legacy, `"stdout":""`, `"stdout":"\ud800\u0000\udfff"`, 1),
		strings.Replace(legacy, `"exit_code":0`, `"exit_code":2147483648`, 1),
		strings.Replace(legacy, `"exit_code":0`, `"exit_code":-2147483649`, 1),
		strings.Replace(legacy, `"exit_code":0`, `"exit_code":-2147483648`, 1),
		strings.Replace(legacy, `"exit_code":0`, `"exit_code":99999999999999999999999999`, 1),
		strings.Replace(legacy, `"exit_code":0`, `"exit_code":1e2`, 1),
		strings.Replace(legacy, `"exit_code":0`, `"exit_code":-0`, 1),
		strings.Replace(legacy, `{`, `{"junk":{"a":[1,{"b":[null,true,false,"\u0000"]}],"a":-1.5e-7},`, 1),
		strings.Replace(legacy, `{`, `{"deep":`+strings.Repeat("[", 1200)+strings.Repeat("]", 1200)+`,`, 1),
		strings.Replace(legacy, `{`, `{"pc_id":"y",`, 1),
		strings.Replace(started, `{`, `{"unknown":1,"unknown":2,`, 1),
		strings.Replace(legacy, `"started_at":"2026-05-16T00:00:00Z"`, `"started_at":"2026-05-16T00:00:00.123456789123+23:59"`, 1),
		strings.Replace(legacy, `"started_at":"2026-05-16T00:00:00Z"`, `"started_at":"2026-05-16T1:00:00Z"`, 1),
		strings.Replace(legacy, `"started_at":"2026-05-16T00:00:00Z"`, `"started_at":"2026-05-16T00:00:00,5Z"`, 1),
		strings.Replace(legacy, `"started_at":"2026-05-16T00:00:00Z"`, `"started_at":"0000-01-01T00:00:00+01:00"`, 1),
		strings.Replace(legacy, `"started_at":"2026-05-16T00:00:00Z"`, `"started_at":"9999-12-31T23:59:59.999999999-23:59"`, 1),
		strings.Replace(started, `"started_at":"2026-05-20T12:00:00.123456789Z"`, `"started_at":"2026-02-29T00:00:00Z"`, 1),
		strings.Replace(legacy, `"skipped"`, `"skipped"`, 1) + "garbage",
		strings.Replace(legacy, `"request_id":"r"`, `"request_id":"r:with:colons"`, 1),
		strings.Replace(legacy, `{`, `{"result_id":null,"exec_id":null,"skipped":null,"manifest_id":"",`, 1),
	}
}

// fuzzSeq numbers the fuzz records: each worker process has its own database, so a counter per
// process keeps (stream, stream_seq) unique.
var fuzzSeq atomic.Uint64

// FuzzDecodeAndWrite drives the whole decode → sink path: whatever the payload, decoding never
// panics and Write never fails (a transient error on a healthy database would be a bug); a
// poison record lands in dead_letters with its payload byte for byte and the reason Write
// reported, a good one lands as an execution_results row.
func FuzzDecodeAndWrite(f *testing.F) {
	for _, p := range fuzzSeedPayloads() {
		f.Add([]byte(p), byte(codec.KindStarted))
		f.Add([]byte(p), byte(codec.KindResult))
	}
	f.Add([]byte(`{}`), byte(0)) // a kind no projection has

	// One sink per fuzz worker process, reused by every input: fresh tables are not needed.
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(f.TempDir(), "fuzz.db")
	cfg.Sync = SyncNormal
	s, err := Open(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, payload []byte, kind byte) {
		rec := codec.Record{Seq: fuzzSeq.Add(1), Published: t0.Add(time.Duration(kind) * time.Millisecond), Payload: payload}
		switch kind % 3 {
		case 0:
			rec.Kind, rec.Stream, rec.Subject = codec.KindStarted, "EVENTS", "events.started.e.p"
		case 1:
			rec.Kind, rec.Stream, rec.Subject = codec.KindResult, "RESULTS", "results.r"
		default:
			rec.Kind, rec.Stream, rec.Subject = 0, "OTHER", "other.x" // no projection: poison
		}
		rec.Decode()
		rep, err := s.Write(context.Background(), []codec.Record{rec})
		why := modeltest.Reasons(rep, 1)
		if err != nil {
			t.Fatalf("Write(%q as %s): %v", clip(payload), rec.Kind, err)
		}
		if len(why) != 1 {
			t.Fatalf("Report.DeadLetters has %d entries, want 1", len(why))
		}
		if rec.Poison != nil {
			if why[0] != rec.Poison.Error() {
				t.Fatalf("poison %q: rejected %q, want the decoder's reason %q", clip(payload), why[0], rec.Poison)
			}
			var got []byte
			var reason string
			if err := s.db.QueryRow(`SELECT payload, reason FROM dead_letters WHERE stream = ? AND stream_seq = ?`,
				rec.Stream, int64(rec.Seq)).Scan(&got, &reason); err != nil {
				t.Fatalf("poison %q: dead letter: %v", clip(payload), err)
			}
			if got == nil || !bytes.Equal(got, payload) {
				t.Fatalf("dead letter payload %q, want byte for byte %q", clip(got), clip(payload))
			}
			if reason == "" || reason != why[0] {
				t.Fatalf("dead letter reason %q, want %q", reason, why[0])
			}
			return
		}
		if why[0] != "" {
			t.Fatalf("good record %q rejected by the database: %s", clip(payload), why[0])
		}
		var id string
		if rec.Kind == codec.KindResult {
			id = rec.Result.ResultID
		} else {
			id = rec.Started.ResultID
		}
		var finished, version sql.NullString
		var recordedAt string
		if err := s.db.QueryRow(`SELECT finished_at, version, recorded_at FROM execution_results WHERE result_id = ?`, id).
			Scan(&finished, &version, &recordedAt); err != nil {
			t.Fatalf("good record %q: row %q: %v", clip(payload), id, err)
		}
		if rec.Kind == codec.KindResult && !finished.Valid {
			t.Fatalf("result %q: row %q still in flight", clip(payload), id)
		}
		if rec.Kind == codec.KindStarted && !version.Valid {
			t.Fatalf("started %q: row %q has no version", clip(payload), id)
		}
		if recordedAt > codec.FormatTime(rec.Published) {
			t.Fatalf("row %q: recorded_at %s later than this message's %s", id, recordedAt, codec.FormatTime(rec.Published))
		}
	})
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
