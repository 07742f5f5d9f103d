package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

func TestDeadLettersListAndReplay(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	r := startApp(t, cfg)
	ctx := context.Background()
	for _, m := range []struct{ subject, payload string }{
		{"events.started.e.pc1", `not json`},
		{"results.q", `{"request_id":"q","pc_id":"pc2","exit_code":1.5,"stdout":"","stderr":"","started_at":"2026-05-20T12:00:00Z","finished_at":"2026-05-20T12:00:01Z"}`},
	} {
		if _, err := js.Publish(ctx, m.subject, []byte(m.payload)); err != nil {
			t.Fatal(err)
		}
	}
	fleettest.WaitDrained(t, js, 30*time.Second)
	r.stop()

	// A message an older, stricter version set aside: valid for this one.
	db, err := sql.Open("sqlite3", cfg.DB.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO dead_letters (stream, stream_seq, subject, reason, payload, headers, recorded_at)
		VALUES ('EVENTS', 999, 'events.started.e.pc3', 'old bug', ?, CAST('NATS/1.0'||char(13,10)||'Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'||char(13,10,13,10) AS BLOB), '2026-05-20T12:00:00.000000Z')`,
		[]byte(`{"result_id":"r3","request_id":"q","exec_id":"e","pc_id":"pc3","started_at":"2026-05-20T12:00:00Z","manifest_id":"m","version":"1"}`)); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(ctx, append(args, "--db", cfg.DB.Path, "--nats-url", srv.ClientURL()), &out, &errb, env(nil))
		return code, out.String(), errb.String()
	}
	code, out, errs := run("dead-letters")
	if code != 0 || !strings.Contains(out, "3 dead letters") || !strings.Contains(out, "exit_code: 1.5 is not an int32") {
		t.Fatalf("list: %d\n%s%s", code, out, errs)
	}
	code, out, _ = run("dead-letters", "list", "--stream", "RESULTS", "--json")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"stream":"RESULTS"`) {
		t.Fatalf("list --stream RESULTS --json: %d\n%s", code, out)
	}
	code, out, _ = run("dead-letters", "replay", "--reason", "old bug", "--dry-run")
	if code != 0 || !strings.Contains(out, "1 dead letters") {
		t.Fatalf("replay --dry-run: %d\n%s", code, out)
	}
	code, out, errs = run("dead-letters", "replay", "--reason", "old bug")
	if code != 0 || !strings.Contains(out, "replayed 1 of 1") {
		t.Fatalf("replay: %d\n%s%s", code, out, errs)
	}
	code, out, _ = run("dead-letters")
	if code != 0 || !strings.Contains(out, "2 dead letters") || strings.Contains(out, "old bug") {
		t.Fatalf("after replay the replayed one must be gone: %d\n%s", code, out)
	}

	// The ingester projects the republished message like any other.
	r = startApp(t, cfg)
	natstest.Eventually(t, 30*time.Second, "the replayed message projected", func() bool {
		var n int
		db.QueryRow(`SELECT count(*) FROM execution_results WHERE result_id = 'r3'`).Scan(&n)
		return n == 1
	})
	r.stop()

	code, _, errs = run("dead-letters", "--since", "yesterday")
	if code != 2 || !strings.Contains(errs, "--since") {
		t.Fatalf("bad --since: %d %s", code, errs)
	}
}

// runDeadLetters runs `ingest dead-letters args...` on cfg's database and server.
func runDeadLetters(t *testing.T, cfg *config, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(append([]string{"dead-letters"}, args...), "--db", cfg.DB.Path, "--nats-url", cfg.NATS.URL)
	code = Main(context.Background(), args, &out, &errb, env(nil))
	return code, out.String(), errb.String()
}

func TestReplayRepublishesNonUTF8HeadersByteForByte(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	r := startApp(t, cfg)
	ctx := context.Background()
	header := nats.Header{
		"X-Bin":       {"a\xff\xfeb", "second"},
		"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
	msg := &nats.Msg{Subject: "results.q", Data: []byte("not json \xff"), Header: header}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitDrained(t, js, 30*time.Second)
	r.stop()

	code, out, errs := runDeadLetters(t, cfg)
	if code != 0 || !strings.Contains(out, `X-Bin="a\xff\xfeb" X-Bin=second traceparent=00-0af`) {
		t.Fatalf("list: %d, want the headers with the non-UTF-8 value quoted:\n%s%s", code, out, errs)
	}
	code, out, _ = runDeadLetters(t, cfg, "--json")
	var listed struct {
		StreamCreated string `json:"stream_created"`
		Seq           uint64 `json:"stream_seq"`
		HeadersBase64 []byte `json:"headers_base64"`
		PayloadBase64 []byte `json:"payload_base64"`
	}
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil {
		t.Fatalf("list --json: %d %v\n%s", code, err, out)
	}
	fromList, err := nats.DecodeHeadersMsg(listed.HeadersBase64)
	if err != nil || !maps.EqualFunc(fromList, header, slices.Equal) || string(listed.PayloadBase64) != "not json \xff" {
		t.Fatalf("list --json headers_base64 = %q (%v), payload %q; want the headers and payload byte for byte",
			listed.HeadersBase64, err, listed.PayloadBase64)
	}

	code, out, errs = runDeadLetters(t, cfg, "replay")
	if code != 0 || !strings.Contains(out, "replayed 1 of 1") {
		t.Fatalf("replay: %d\n%s%s", code, out, errs)
	}
	stream, err := js.Stream(ctx, "RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	got, err := stream.GetLastMsgForSubject(ctx, "results.q")
	if err != nil {
		t.Fatal(err)
	}
	if got.Sequence == listed.Seq {
		t.Fatal("the last message on results.q is the original: nothing was republished")
	}
	want := maps.Clone(header)
	want["Fanin-Replay-Of"] = []string{"RESULTS/" + strconv.FormatUint(listed.Seq, 10)}
	if !maps.EqualFunc(got.Header, want, slices.Equal) || string(got.Data) != "not json \xff" {
		t.Fatalf("republished header %q, data %q; want %q and the payload byte for byte", got.Header, got.Data, want)
	}
	if code, out, _ := runDeadLetters(t, cfg); code != 0 || !strings.Contains(out, "0 dead letters") {
		t.Fatalf("after the replay the dead letter must be gone: %d\n%s", code, out)
	}
}

func TestReplayDeletesOnlyTheReplayedIncarnation(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	r := startApp(t, cfg) // migrates, and creates the streams
	r.stop()
	// RESULTS/1 of two incarnations of the stream, and of one recorded before incarnations.
	execSQL(t, cfg.DB.Path,
		`INSERT INTO dead_letters (stream, stream_created, stream_seq, subject, reason, payload, recorded_at) VALUES
			('RESULTS', '2026-05-01T00:00:00.000000Z', 1, 'results.a', 'first', CAST('first' AS BLOB), '2026-05-01T00:00:01.000000Z'),
			('RESULTS', '2026-05-02T00:00:00.000000Z', 1, 'results.a', 'second', CAST('second' AS BLOB), '2026-05-02T00:00:01.000000Z'),
			('RESULTS', '', 1, 'results.a', 'legacy', CAST('legacy' AS BLOB), '2026-04-01T00:00:01.000000Z')`)

	code, out, _ := runDeadLetters(t, cfg)
	if code != 0 || !strings.Contains(out, "STREAM CREATED") || !strings.Contains(out, "2026-05-02T00:00:00.000000Z") {
		t.Fatalf("list does not show the incarnation: %d\n%s", code, out)
	}
	code, out, _ = runDeadLetters(t, cfg, "--json", "--reason", "legacy")
	if code != 0 || !strings.Contains(out, `"stream_created":""`) {
		t.Fatalf("list --json of a legacy row: %d\n%s", code, out)
	}
	code, out, errs := runDeadLetters(t, cfg, "replay", "--stream-created", "2026-05-02T00:00:00Z")
	if code != 0 || !strings.Contains(out, "replayed 1 of 1") {
		t.Fatalf("replay: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runDeadLetters(t, cfg)
	if code != 0 || !strings.Contains(out, "2 dead letters") || !strings.Contains(out, "first") ||
		!strings.Contains(out, "legacy") || strings.Contains(out, "second") {
		t.Fatalf("after replaying the second incarnation's RESULTS/1, the others must stay: %d\n%s", code, out)
	}
	stream, err := js.Stream(context.Background(), "RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	got, err := stream.GetLastMsgForSubject(context.Background(), "results.a")
	if err != nil || string(got.Data) != "second" || got.Header.Get("Fanin-Replay-Of") != "RESULTS/1" {
		t.Fatalf("republished %v: %q %v", err, got.Data, got.Header)
	}
	if code, _, errs := runDeadLetters(t, cfg, "--stream-created", "yesterday"); code != 2 || !strings.Contains(errs, "--stream-created") {
		t.Fatalf("bad --stream-created: %d %s", code, errs)
	}
}

func TestReplayWithinTheDuplicateWindowKeepsTheDeadLetter(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	r := startApp(t, cfg)
	msg := &nats.Msg{Subject: "results.q", Data: []byte("not json"), Header: nats.Header{"Nats-Msg-Id": {"agent-42"}}}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitDrained(t, js, 30*time.Second)
	r.stop()

	code, out, errs := runDeadLetters(t, cfg, "replay")
	if code != 1 || !strings.Contains(errs, `duplicate of Nats-Msg-Id "agent-42"`) || !strings.Contains(out, "replayed 0 of 1") {
		t.Fatalf("replay within the duplicate window: %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runDeadLetters(t, cfg); code != 0 || !strings.Contains(out, "1 dead letters") {
		t.Fatalf("the dead letter JetStream did not store again must stay: %d\n%s", code, out)
	}
}

// execSQL runs statements on the database at path, as another process would.
func execSQL(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestReplayWithNATSUnreachableSaysSo: nothing is published before the connection is up, and
// a server that stays down is named, rather than nats.go's "headers not supported".
func TestReplayWithNATSUnreachableSaysSo(t *testing.T) {
	db := filepath.Join(t.TempDir(), "fanin.db")
	if code := Main(context.Background(), []string{"migrate", "--db", db}, io.Discard, io.Discard, env(nil)); code != 0 {
		t.Fatalf("migrate: exit %d", code)
	}
	execSQL(t, db, `INSERT INTO dead_letters (stream, stream_seq, subject, reason, payload, headers, recorded_at)
		VALUES ('RESULTS', 7, 'results.q', 'old bug', CAST('{}' AS BLOB), CAST('NATS/1.0'||char(13,10)||'K: v'||char(13,10,13,10) AS BLOB), '2026-05-20T12:00:00.000000Z')`)
	url := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"dead-letters", "replay", "--db", db, "--nats-url", url}, &out, &errb, env(nil))
	if code != 1 || !strings.Contains(errb.String(), "not connected to NATS at "+url) || !strings.Contains(out.String(), "replayed 0 of 1") {
		t.Fatalf("replay with NATS down: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"dead-letters", "--db", db}, &out, io.Discard, env(nil)); code != 0 || !strings.Contains(out.String(), "1 dead letters") {
		t.Fatalf("the dead letter must stay: exit %d\n%s", code, out.String())
	}
}
