package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// Operator actions that used to lose data without a word (issue 15): each test reproduces one
// against the real binary and a real server, and checks that nothing is lost and that fanin
// says so.

// editFilter sets the results durable's filter, as `nats consumer edit RESULTS
// backend_results_projector --filter …` does.
func editFilter(t *testing.T, js jetstream.JetStream, filter string) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Consumer(ctx, "backend_results_projector")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	cfg.FilterSubject = filter
	if _, err := s.UpdateConsumer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestDurableFilterEditedFromOutsideLosesNothing edits the results durable's filter so that it
// passes over every result, then publishes the rest of the broadcast: fanin notices — while it
// runs, or at its next start — says so, and projects every result the wrong filter skipped.
func TestDurableFilterEditedFromOutsideLosesNothing(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "while running"
		if restart {
			name = "while stopped"
		}
		t.Run(name, func(t *testing.T) {
			srv := natstest.Run(t)
			_, js := natstest.Connect(t, srv.ClientURL())
			b := broadcast(1000, 21)
			msgs := b.Messages()
			half := len(msgs) / 2
			db := newDB(t, b)
			dir := t.TempDir()
			args := ingestArgs(srv.ClientURL(), db)

			p := start(t, dir, args, nil)
			p.waitLog("projecting", 2, 30*time.Second)
			publish(t, js, msgs[:half])
			fleettest.WaitDrained(t, js, time.Minute)
			time.Sleep(6 * time.Second) // one watch round: the safe point is saved
			if restart {
				p.signal(syscall.SIGTERM)
				p.wait(30 * time.Second)
			}
			editFilter(t, js, "results.nothing.>")
			publish(t, js, msgs[half:])
			if restart {
				p = start(t, dir, args, nil)
			}
			p.waitLog("durable's settings were changed outside fanin: messages they passed over would never be projected; recreating it from the last safe point", 1, 30*time.Second)
			fleettest.WaitDrained(t, js, time.Minute)
			p.stop()
			fleettest.CheckTables(t, db, b, msgs)
		})
	}
}

// TestDatabaseDeletedWhileRunningAcksNothing deletes the database file under a running fanin:
// it stops acking at once (the rows would exist nowhere), says why, and a restart that adopts
// the durables for the new file projects everything into it.
func TestDatabaseDeletedWhileRunningAcksNothing(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	b := broadcast(1000, 22)
	msgs := b.Messages()
	half := len(msgs) / 2
	db := newDB(t, b)
	dir := t.TempDir()
	args := ingestArgs(srv.ClientURL(), db)

	p := start(t, dir, args, nil)
	p.waitLog("projecting", 2, 30*time.Second)
	publish(t, js, msgs[:half])
	fleettest.WaitDrained(t, js, time.Minute)
	floor := acked(js)

	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	publish(t, js, msgs[half:])
	p.waitLog("write failed: naking the batch", 1, 30*time.Second)
	time.Sleep(2 * time.Second)
	if got := acked(js); got != floor {
		t.Fatalf("ack floors moved from %d to %d after the database was deleted: acked rows that exist nowhere", floor, got)
	}
	if line := p.logLines("write failed: naking the batch")[0]; !strings.Contains(line, "no longer exists") {
		t.Fatalf("the log does not say why: %s", line)
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)

	// A new file at --db is another database: refused, then adopted when the operator says so.
	fleettest.CreateExecution(t, db, b)
	p = start(t, dir, args, nil)
	if code := p.wait(30 * time.Second); code != 1 {
		t.Fatalf("exit code %d with a new database and the old durables, want 1", code)
	}
	p = start(t, dir, append(args, "--adopt-durables"), nil)
	p.waitLog("projecting", 2, 30*time.Second)
	fleettest.WaitDrained(t, js, time.Minute)
	p.stop()
	fleettest.CheckTables(t, db, b, msgs)
}

// TestReplicaOnTheWrongDatabaseRefusesToConsume starts a second instance whose --db has a
// typo: it exits 1 with one line saying why, and the real database's durables are untouched
// (no replay forced on every replica).
func TestReplicaOnTheWrongDatabaseRefusesToConsume(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	b := broadcast(500, 23)
	msgs := b.Messages()
	db := newDB(t, b)
	dir := t.TempDir()

	p := start(t, dir, ingestArgs(srv.ClientURL(), db), nil)
	p.waitLog("projecting", 2, 30*time.Second)
	publish(t, js, msgs)
	fleettest.WaitDrained(t, js, time.Minute)
	before := consumerInfo(js, "RESULTS", "backend_results_projector")

	typo := filepath.Join(t.TempDir(), "fanin-typo.db")
	q := start(t, dir, ingestArgs(srv.ClientURL(), typo), nil)
	if code := q.wait(30 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if lines := q.logLines("ingest stopped"); len(lines) != 1 || !strings.Contains(lines[0], "feeds database") {
		t.Fatalf("want one line saying the durable feeds another database, got %q", lines)
	}
	if n := countRows(t, typo, "execution_results"); n != 0 {
		t.Fatalf("the wrong database got %d rows", n)
	}
	after := consumerInfo(js, "RESULTS", "backend_results_projector")
	if after == nil || !after.Created.Equal(before.Created) || after.NumPending != 0 {
		t.Fatalf("the durable was recreated or rewound: %+v", after)
	}
	p.stop()
	fleettest.CheckTables(t, db, b, msgs)
}
