package faults

import (
	"database/sql"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/codec"
	"fanin/internal/fleet"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// TestSIGKILLAtRandomMomentsLosesNothing kills the ingester with SIGKILL at random moments
// while a broadcast is being published and ingested, restarts it each time, then lets it
// finish: the tables are exact and every message ends acknowledged.
//
// Default: a 10,000-PC broadcast (~22,000 messages) so the package stays quick on two cores;
// FANIN_SOAK=1 runs the full 45,000-PC broadcast (~100,000 messages with duplicates). The kills
// come 100–600 ms apart, so they land while the burst is being published and ingested.
func TestSIGKILLAtRandomMomentsLosesNothing(t *testing.T) {
	pcs, kills := 10000, 5
	if soak() {
		pcs, kills = 45000, 8
	}
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL(), jetstream.WithPublishAsyncMaxPending(4096))
	b := broadcast(pcs, 11)
	msgs := b.Messages()
	db := newDB(t, b)
	dir := t.TempDir()
	args := ingestArgs(srv.ClientURL(), db)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	p := start(t, dir, args, nil)
	p.waitLog("projecting", 2, 30*time.Second) // the streams exist: publish
	wait := publishAsync(t, js, msgs)
	for i := range kills {
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		p.kill()
		t.Logf("kill %d: %d rows committed, ack floors at %d", i+1, countRows(t, db, "execution_results"), acked(js))
		p = start(t, dir, args, nil)
	}
	wait()
	fleettest.WaitDrained(t, js, 3*time.Minute)
	p.waitLog("projecting", 2, 30*time.Second) // a SIGTERM before main installs its handler kills
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	fleettest.CheckTables(t, db, b, msgs)
}

// TestNATSServerRestartMidIngest stops the NATS server for a few seconds mid-ingest and
// starts it again on the same store and port: the ingester reconnects by itself and loses
// nothing.
func TestNATSServerRestartMidIngest(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.RunAt(t, filepath.Join(dir, "js"), -1)
	url := srv.ClientURL()
	b := broadcast(3000, 12)
	msgs := b.Messages()
	half := len(msgs) / 2
	db := newDB(t, b)

	p := start(t, dir, ingestArgs(url, db), nil)
	p.waitLog("projecting", 2, 30*time.Second)
	nc, js := natstest.Connect(t, url)
	publish(t, js, msgs[:half])
	natstest.Eventually(t, 30*time.Second, "ingest under way", func() bool { return countRows(t, db, "execution_results") > 0 })

	srv.Shutdown()
	srv.WaitForShutdown()
	down := time.Now()
	time.Sleep(3 * time.Second)
	natstest.RunAt(t, filepath.Join(dir, "js"), srvPort(t, url))
	t.Logf("server down for %s", time.Since(down).Round(time.Millisecond))
	natstest.Eventually(t, 30*time.Second, "test client reconnected", nc.IsConnected)
	publish(t, js, msgs[half:])
	fleettest.WaitDrained(t, js, time.Minute)
	if len(p.logLines("NATS disconnected")) == 0 || len(p.logLines("NATS reconnected")) == 0 {
		t.Errorf("log has no disconnect/reconnect lines")
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	fleettest.CheckTables(t, db, b, msgs)
}

// TestDatabaseLockedPastBusyTimeout holds the database's write lock from another connection
// for 8 s, longer than the ingester's 5 s busy timeout, while a broadcast arrives: nothing is
// acked while nothing can be written, and it catches up once the lock is released.
func TestDatabaseLockedPastBusyTimeout(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	b := broadcast(1000, 13)
	msgs := b.Messages()
	db := newDB(t, b)
	p := start(t, t.TempDir(), ingestArgs(srv.ClientURL(), db), nil)
	p.waitLog("projecting", 2, 30*time.Second)

	locker, err := sql.Open("sqlite3", "file:"+db+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	tx, err := locker.Begin()
	if err != nil {
		t.Fatal(err)
	}
	locked := time.Now()
	publish(t, js, msgs)
	for time.Since(locked) < 8*time.Second {
		if n := acked(js); n != 0 {
			t.Fatalf("%d messages acked while the database was locked", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	failed := p.logLines("write failed: naking the batch")
	if len(failed) == 0 || !strings.Contains(failed[0], "database is locked") {
		t.Errorf("no write failure naming the lock in the log; first: %v", failed)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitDrained(t, js, time.Minute)
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	fleettest.CheckTables(t, db, b, msgs)
}

// TestSIGTERMMidBatchFinishesCleanly sends SIGTERM while a large backlog is being ingested:
// the process exits 0 within the shutdown timeout, every acked message has its row, and no
// message is left fetched but unacknowledged.
func TestSIGTERMMidBatchFinishesCleanly(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL(), jetstream.WithPublishAsyncMaxPending(4096))
	b := broadcast(20000, 14)
	b.DuplicateRate, b.Poison = 0, 0
	var started []fleet.Message
	for _, m := range b.Messages() {
		if m.Kind == codec.KindStarted {
			started = append(started, m)
		}
	}
	db := newDB(t, b)
	p := start(t, t.TempDir(), ingestArgs(srv.ClientURL(), db, "--batch", "200"), nil)
	p.waitLog("projecting", 2, 30*time.Second)
	publish(t, js, started)
	natstest.Eventually(t, time.Minute, "ingest under way", func() bool { return countRows(t, db, "execution_results") > 2000 })

	term := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(25 * time.Second)
	t.Logf("exited %d, %s after SIGTERM", code, time.Since(term).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	var info *jetstream.ConsumerInfo
	natstest.Eventually(t, 10*time.Second, "no ack pending", func() bool {
		info = consumerInfo(js, "EVENTS", "backend_events_projector")
		return info != nil && info.NumAckPending == 0
	})
	ackedMsgs := len(started) - int(info.NumPending)
	rows := countRows(t, db, "execution_results")
	if rows != ackedMsgs {
		t.Fatalf("%d messages acked, %d rows committed: shutdown acked what it had not written, or left fetched messages unacked", ackedMsgs, rows)
	}
	if info.NumPending == 0 {
		t.Logf("note: the whole backlog was ingested before SIGTERM landed; the test did not catch a batch in flight")
	}
}

// TestReplicasShareDurablesAndDatabase runs two, then three ingesters on the same durables and
// the same database file: the tables and counters are exact.
func TestReplicasShareDurablesAndDatabase(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(strings.Repeat("I", n), func(t *testing.T) {
			srv := natstest.Run(t)
			_, js := natstest.Connect(t, srv.ClientURL())
			b := broadcast(3000, uint64(20+n))
			msgs := b.Messages()
			db := newDB(t, b)
			dir := t.TempDir()
			var ps []*proc
			for range n {
				ps = append(ps, start(t, dir, ingestArgs(srv.ClientURL(), db, "--stats-interval", "100ms"), nil))
			}
			for _, p := range ps {
				p.waitLog("projecting", 2, 30*time.Second)
			}
			publish(t, js, msgs)
			fleettest.WaitDrained(t, js, 2*time.Minute)
			for _, p := range ps {
				p.signal(syscall.SIGTERM)
			}
			for i, p := range ps {
				if code := p.wait(30 * time.Second); code != 0 {
					t.Errorf("replica %d: exit code %d", i, code)
				}
				t.Logf("replica %d acked %d messages", i, loggedAcked(p))
				if l := p.logLines("database is empty but the durable has acknowledged messages: recreating it to project the whole stream again"); len(l) > 0 {
					t.Logf("replica %d recreated a durable at start (a replica raced another's first acks): %s", i, l[0])
				}
			}
			fleettest.CheckTables(t, db, b, msgs)
		})
	}
}

// srvPort returns the port of a nats://host:port URL.
func srvPort(t *testing.T, url string) int {
	t.Helper()
	i := strings.LastIndexByte(url, ':')
	var port int
	for _, c := range url[i+1:] {
		port = port*10 + int(c-'0')
	}
	if port == 0 {
		t.Fatalf("no port in %q", url)
	}
	return port
}

// loggedAcked sums, over both projections, the "acked" of each one's last progress line.
func loggedAcked(p *proc) int {
	last := map[string]int{}
	for _, l := range p.logLines("progress") {
		var v struct {
			Projection string `json:"projection"`
			Acked      int    `json:"acked"`
		}
		if json.Unmarshal([]byte(l), &v) == nil {
			last[v.Projection] = v.Acked
		}
	}
	n := 0
	for _, a := range last {
		n += a
	}
	return n
}
