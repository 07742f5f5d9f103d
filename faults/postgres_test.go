package faults

import (
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/fleet"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
	"fanin/internal/pgsink"
	"fanin/internal/pgtest"
	"fanin/internal/store"
)

// pg is the PostgreSQL server of the fault tests, started by the first test that needs one and
// stopped by TestMain.
var pg pgtest.Lazy

// newPGDB returns a fresh PostgreSQL database, migrated, with b's executions row.
func newPGDB(t *testing.T, b fleet.Broadcast) string {
	t.Helper()
	url := pg.Server().NewDB(t)
	ctx := context.Background()
	s, err := pgsink.Open(ctx, pgsink.Config{URL: url, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AddExecution(ctx, store.Execution{ExecID: b.ExecID, JobID: b.ManifestID, Version: b.Version,
		InitiatedBy: "faults", InitiatedAt: time.Now(), TargetCount: b.PCs}); err != nil {
		t.Fatal(err)
	}
	return url
}

// TestThreeReplicasOnPostgresSIGKILLedLoseNothing runs three ingesters on one pair of durables
// and one PostgreSQL database, SIGKILLs one of them at random moments while a broadcast is
// published and ingested, restarting it each time: the tables are exact — every run once,
// each counted once, every poison message once, byte for byte — and every message is acked.
func TestThreeReplicasOnPostgresSIGKILLedLoseNothing(t *testing.T) {
	pcs, kills := 5000, 6
	if soak() {
		pcs, kills = 30000, 12
	}
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL(), jetstream.WithPublishAsyncMaxPending(4096))
	b := broadcast(pcs, 41)
	msgs := b.Messages()
	db := newPGDB(t, b)
	dir := t.TempDir()
	args := ingestArgs(srv.ClientURL(), db)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))

	ps := make([]*proc, 3)
	for i := range ps {
		ps[i] = start(t, dir, args, nil)
	}
	for _, p := range ps {
		p.waitLog("projecting", 2, 60*time.Second)
	}
	wait := publishAsync(t, js, msgs)
	for i := range kills {
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		k := rng.IntN(len(ps))
		ps[k].kill()
		t.Logf("kill %d (replica %d): ack floors at %d", i+1, k, acked(js))
		ps[k] = start(t, dir, args, nil)
	}
	wait()
	fleettest.WaitDrained(t, js, 3*time.Minute)
	for _, p := range ps {
		p.waitLog("projecting", 2, 60*time.Second) // a SIGTERM before main installs its handler kills
		p.signal(syscall.SIGTERM)
	}
	for i, p := range ps {
		if code := p.wait(30 * time.Second); code != 0 {
			t.Errorf("replica %d: exit code %d after SIGTERM", i, code)
		}
	}
	checkPGTables(t, db, b, msgs)
}

// checkPGTables is fleettest.CheckTables for a PostgreSQL database.
func checkPGTables(t *testing.T, url string, b fleet.Broadcast, msgs []fleet.Message) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	want := fleettest.Expect(msgs, b.PCs)
	var rows, finished, versioned, distinctPCs, failed, reaped, all int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(finished_at), count(version), count(DISTINCT pc_id),
		count(*) FILTER (WHERE exit_code <> 0), coalesce(sum(reaped), 0), (SELECT count(*) FROM execution_results)
		FROM execution_results WHERE exec_id = $1`, b.ExecID).Scan(&rows, &finished, &versioned, &distinctPCs, &failed, &reaped, &all); err != nil {
		t.Fatal(err)
	}
	if rows != want.Rows || finished != want.Rows || versioned != want.Rows || distinctPCs != want.Rows ||
		failed != want.Failures || reaped != 0 || all != want.Rows {
		t.Errorf("execution_results: %d rows (%d in all), %d finished, %d with version, %d PCs, %d failed, %d reaped; want %d, %d, %d, %d, %d, 0",
			rows, all, finished, versioned, distinctPCs, failed, reaped, want.Rows, want.Rows, want.Rows, want.Rows, want.Failures)
	}
	var status string
	var success, failure int
	if err := conn.QueryRow(ctx, `SELECT status, success_count, failure_count FROM executions WHERE exec_id = $1`,
		b.ExecID).Scan(&status, &success, &failure); err != nil {
		t.Fatal(err)
	}
	if status != "completed" || success != want.Rows-want.Failures || failure != want.Failures {
		t.Errorf("executions: %s %d/%d, want completed %d/%d", status, success, failure, want.Rows-want.Failures, want.Failures)
	}
	wantPayloads := map[string]int{}
	for _, m := range msgs {
		if m.Poison {
			wantPayloads[string(m.Payload)]++
		}
	}
	rs, err := conn.Query(ctx, `SELECT payload FROM dead_letters`)
	if err != nil {
		t.Fatal(err)
	}
	payloads, err := pgx.CollectRows(rs, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	if len(payloads) != want.Poison {
		t.Errorf("dead_letters: %d rows, want %d", len(payloads), want.Poison)
	}
	for _, p := range payloads {
		wantPayloads[string(p)]--
	}
	for p, n := range wantPayloads {
		if n != 0 {
			t.Errorf("dead_letters: payload %q off by %d", p, -n)
		}
	}
}
