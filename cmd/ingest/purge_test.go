package main

import (
	"bytes"
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// seedOldDeadLetters records n dead letters published in 2020 on RESULTS, as an older run
// would have left them.
func seedOldDeadLetters(t *testing.T, path string, n int) {
	t.Helper()
	execSQL(t, path, `WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM seq WHERE n < `+strconv.Itoa(n)+`)
		INSERT INTO dead_letters (stream, stream_created, stream_seq, subject, reason, payload, recorded_at)
		SELECT 'RESULTS', '2020-01-01T00:00:00.000000Z', n, 'results.old', 'old bug', CAST('old' AS BLOB),
			strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2020-01-02', '+' || n || ' seconds') FROM seq`)
}

func countDeadLetters(t *testing.T, path, where string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM dead_letters WHERE ` + where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPurgeWhileIngestingBreaksNothing: purges run again and again, each chunk taking the
// write lock, while the ingester projects a broadcast into the same file. The purge deletes
// exactly the old dead letters it selects; the ingester drains everything, exits 0, and its
// tables — its own dead letters included — are exact.
func TestPurgeWhileIngestingBreaksNothing(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	b := testBroadcast(2000, 7)
	fleettest.CreateExecution(t, cfg.DB.Path, b)
	r := startApp(t, cfg) // migrates
	seedOldDeadLetters(t, cfg.DB.Path, 3000)

	code, out, errs := runDeadLetters(t, cfg, "purge", "--until", "2021-01-01T00:00:00Z", "--dry-run")
	if code != 0 || !strings.Contains(out, "would purge 3000 dead letters") {
		t.Fatalf("purge --dry-run: %d\n%s%s", code, tail(out), errs)
	}
	if n := countDeadLetters(t, cfg.DB.Path, "1"); n != 3000 {
		t.Fatalf("after --dry-run %d dead letters, want 3000 still", n)
	}

	stop := make(chan struct{})
	var purges sync.WaitGroup
	var purged []string
	purges.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			code, out, errs := runDeadLetters(t, cfg, "purge", "--until", "2021-01-01T00:00:00Z")
			if code != 0 {
				t.Errorf("purge while ingesting: %d\n%s%s", code, out, errs)
				return
			}
			purged = append(purged, strings.TrimSpace(out))
		}
	})
	msgs := shuffled(b.Messages(), 8)
	publishAll(t, js, msgs)
	fleettest.WaitDrained(t, js, 2*time.Minute)
	close(stop)
	purges.Wait()
	if code := r.stop(); code != 0 {
		t.Fatalf("ingest exit code %d", code)
	}
	if len(purged) == 0 || purged[0] != "purged 3000 dead letters" {
		t.Fatalf("purges said %q, want the first to purge 3000", purged)
	}
	t.Logf("%d purges ran while ingesting", len(purged))
	fleettest.CheckTables(t, cfg.DB.Path, b, msgs)
}

func TestPurgeRefusesWhatLikelyIsAMistake(t *testing.T) {
	cfg := testConfig(t, "nats://127.0.0.1:4222") // never reached: a purge needs no NATS
	for _, args := range [][]string{{"purge"}, {"purge", "--limit", "5", "--all"}} {
		code, _, errs := runDeadLetters(t, cfg, args...)
		if code != 2 || !strings.Contains(errs, "purge") {
			t.Errorf("dead-letters %s: exit %d, %q; want a usage error", strings.Join(args, " "), code, errs)
		}
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"migrate", "--db", cfg.DB.Path}, &out, &errb, env(nil)); code != 0 {
		t.Fatalf("migrate: %d %s", code, errb.String())
	}
	seedOldDeadLetters(t, cfg.DB.Path, 3)
	code, stdout, errs := runDeadLetters(t, cfg, "purge", "--all")
	if code != 0 || !strings.Contains(stdout, "purged 3 dead letters") {
		t.Fatalf("purge --all: %d\n%s%s", code, stdout, errs)
	}
}

// tail is the end of a long output, for a failure message.
func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}
