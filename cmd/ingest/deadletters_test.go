package main

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

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
	if _, err := db.Exec(`INSERT INTO dead_letters VALUES ('EVENTS', 999, 'events.started.e.pc3', 'old bug', ?, '{"Traceparent":["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]}', '2026-05-20T12:00:00.000000Z')`,
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
