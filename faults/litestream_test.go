package faults

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/fleet"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// litestreamBin returns the litestream binary the tests run: FANIN_LITESTREAM, or bin/litestream
// as `make tools` (and `make test`) builds it from tools/litestream, pinned. Without it the test
// skips with one line, or fails when FANIN_REQUIRE_TOOLS=1 (CI).
func litestreamBin(t *testing.T) string {
	t.Helper()
	path := os.Getenv("FANIN_LITESTREAM")
	if path == "" {
		abs, err := filepath.Abs(filepath.Join("..", "bin", "litestream"))
		if err != nil {
			t.Fatal(err)
		}
		path = abs
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("FANIN_REQUIRE_TOOLS") == "1" {
			t.Fatalf("litestream is required (FANIN_REQUIRE_TOOLS=1) but %v: run `make tools`", err)
		}
		t.Skipf("no litestream at %s: `make tools` builds it", path)
	}
	return path
}

// litestream is one `litestream replicate` process replicating a database to a file replica.
type litestream struct {
	*proc
	bin, config string
}

// startLitestream starts `litestream replicate` with the example configuration fanin ships
// (deploy/litestream/litestream.yml), pointed at db and at a file replica under dir, logging at
// debug level, where each sync says whether it had to take a snapshot and why.
func startLitestream(t *testing.T, dir, db string) *litestream {
	t.Helper()
	bin := litestreamBin(t)
	shipped, err := os.ReadFile(filepath.Join("..", "deploy", "litestream", "litestream.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const shippedDB, shippedReplica = "/var/lib/fanin/fanin.db", "/var/backups/fanin"
	if !bytes.Contains(shipped, []byte("path: "+shippedDB)) || !bytes.Contains(shipped, []byte("path: "+shippedReplica)) {
		t.Fatalf("deploy/litestream/litestream.yml no longer replicates %s to %s: update this test", shippedDB, shippedReplica)
	}
	yml := "logging:\n  level: debug\n" + strings.NewReplacer(shippedDB, db, shippedReplica, filepath.Join(dir, "replica")).Replace(string(shipped))
	config := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startCommand(t, dir, exec.Command(bin, "replicate", "-config", config))
	return &litestream{proc: p, bin: bin, config: config}
}

// restore runs `litestream restore` of db's replica into out (which must not exist).
func (l *litestream) restore(t *testing.T, db, out string) {
	t.Helper()
	cmd := exec.Command(l.bin, "restore", "-config", l.config, "-o", out, db)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("litestream restore: %v\n%s", err, b)
	}
}

// stop sends SIGTERM (litestream syncs once more, then exits) and waits for the exit.
func (l *litestream) stop(t *testing.T) {
	t.Helper()
	l.signal(syscall.SIGTERM)
	if code := l.wait(60 * time.Second); code != 0 {
		t.Errorf("litestream exit code %d after SIGTERM", code)
	}
}

// resnapshots returns litestream's syncs that had to take a full snapshot for a reason: the
// WAL restarted, truncated or overwritten behind its back — the checkpoint fights the
// generation resets of litestream 0.3 stood for. The first sync's snapshot has no reason.
func (l *litestream) resnapshots() []string {
	var out []string
	for _, line := range strings.Split(l.logs(), "\n") {
		if strings.Contains(line, "snap=true") && strings.Contains(line, "reason=") {
			out = append(out, line)
		}
	}
	return out
}

// tableDigests returns, for every table of the database at path except SQLite's and
// litestream's own, its row count and a SHA-256 of all its rows in a deterministic order
// (every column, quoted as SQL literals), keyed by the table's CREATE statement.
func tableDigests(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name, sql FROM sqlite_schema WHERE type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_litestream\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tables := map[string]string{}
	for rows.Next() {
		var name, create string
		if err := rows.Scan(&name, &create); err != nil {
			t.Fatal(err)
		}
		tables[name] = create
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, create := range tables {
		var cols []string
		crs, err := db.Query(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, name)
		if err != nil {
			t.Fatal(err)
		}
		for crs.Next() {
			var c string
			if err := crs.Scan(&c); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, fmt.Sprintf("quote(%q)", c))
		}
		crs.Close()
		// Ordered by the quoted row itself: a total order on its values.
		q := fmt.Sprintf(`SELECT %s AS r FROM %q ORDER BY r`, strings.Join(cols, " || ',' || "), name)
		rs, err := db.Query(q)
		if err != nil {
			t.Fatalf("dump %s: %v", name, err)
		}
		h, n := sha256.New(), 0
		for rs.Next() {
			var r string
			if err := rs.Scan(&r); err != nil {
				t.Fatal(err)
			}
			h.Write([]byte(r))
			h.Write([]byte{'\n'})
			n++
		}
		if err := rs.Close(); err != nil {
			t.Fatal(err)
		}
		out[create] = fmt.Sprintf("%d rows, sha256 %s", n, hex.EncodeToString(h.Sum(nil))[:16])
	}
	return out
}

// sameTables fails the test unless the databases at a and b hold the same tables with the
// same rows.
func sameTables(t *testing.T, a, b string) {
	t.Helper()
	da, db := tableDigests(t, a), tableDigests(t, b)
	var keys []string
	for k := range da {
		keys = append(keys, k)
	}
	for k := range db {
		if _, ok := da[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if da[k] != db[k] {
			t.Errorf("table %s\n  source:   %s\n  restored: %s", strings.Fields(k)[2], da[k], db[k])
		}
	}
	if len(da) < 5 {
		t.Errorf("source has only %d tables", len(da))
	}
}

func integrityOK(t *testing.T, path string) {
	t.Helper()
	db := openReadOnly(t, path)
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Errorf("integrity_check of %s: %q %v", path, res, err)
	}
}

func openReadOnly(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// commitWatch records when another connection commits to a database, by polling
// PRAGMA data_version every 2 ms, to find the longest pause between two commits.
type commitWatch struct {
	stop    context.CancelFunc
	done    chan struct{}
	commits int
	first   time.Time
	last    time.Time
	gaps    []time.Duration
}

func watchCommits(t *testing.T, path string) *commitWatch {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &commitWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer db.Close()
		defer conn.Close()
		var prev int64 = -1
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var v int64
			if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
				continue
			}
			now := time.Now()
			if prev >= 0 && v != prev {
				if w.commits > 0 {
					w.gaps = append(w.gaps, now.Sub(w.last))
				} else {
					w.first = now
				}
				w.commits++
				w.last = now
			}
			prev = v
		}
	}()
	t.Cleanup(func() { w.finish() })
	return w
}

// finish stops watching and summarises the pauses between commits: the longest, and the
// 99th percentile.
func (w *commitWatch) finish() string {
	w.stop()
	<-w.done
	if len(w.gaps) == 0 {
		return "no commits seen"
	}
	g := append([]time.Duration(nil), w.gaps...)
	sort.Slice(g, func(i, j int) bool { return g[i] < g[j] })
	return fmt.Sprintf("%d commits seen over %s, longest pause %s, p99 %s, median %s",
		w.commits, w.last.Sub(w.first).Round(time.Millisecond), g[len(g)-1].Round(time.Millisecond),
		g[len(g)*99/100].Round(time.Millisecond), g[len(g)/2].Round(time.Millisecond))
}

// drainedDurables reports whether both durables have nothing pending or unacked.
func drainedDurables(t *testing.T, js jetstream.JetStream, events, results string) func() bool {
	return func() bool {
		return natstest.ConsumerDrained(t, js, "EVENTS", events) && natstest.ConsumerDrained(t, js, "RESULTS", results)
	}
}

// ingestRun ingests the whole backlog of EVENTS and RESULTS into db through its own durables,
// with or without litestream replicating it, and reports the throughput and the pauses
// between commits.
func ingestRun(t *testing.T, url string, js jetstream.JetStream, b fleet.Broadcast, n int, name string, withLitestream bool) (db string, ls *litestream, msgPerSec float64) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "fanin.db")
	fleettest.CreateExecution(t, db, b)
	if withLitestream {
		ls = startLitestream(t, dir, db)
		// litestream's first sync creates its tables and takes the first snapshot.
		natstest.Eventually(t, 30*time.Second, "litestream's first sync", func() bool {
			return strings.Contains(ls.logs(), "snap=true")
		})
	}
	events, results := name+"_events", name+"_results"
	watch := watchCommits(t, db)
	began := time.Now()
	p := start(t, dir, ingestArgs(url, db, "--sync", "full", "--events-durable", events, "--results-durable", results), nil)
	natstest.Eventually(t, 3*time.Minute, "ingest drained the backlog", drainedDurables(t, js, events, results))
	elapsed := time.Since(began)
	summary := watch.finish()
	msgPerSec = float64(n) / elapsed.Seconds()
	t.Logf("%s: %d messages in %s (%.0f msg/s, start-up included); %s", name, n, elapsed.Round(time.Millisecond), msgPerSec, summary)
	p.stop()
	return db, ls, msgPerSec
}

// TestLitestreamReplicatesAnIngestAndRestoresIt runs litestream beside the ingester, as the
// README's "Backups with litestream" says, while it ingests a broadcast's backlog: the
// replica, restored, holds exactly the source's rows in every table, and litestream never had
// to start over with a snapshot because fanin checkpointed behind its back. The same backlog
// is first ingested without litestream, through other durables, for the throughput and the
// pauses between commits to compare (logged, not asserted: this machine is shared).
//
// Default: an 18,000-PC broadcast (~40,000 messages); FANIN_SOAK=1 runs 90,000 PCs (~200,000).
func TestLitestreamReplicatesAnIngestAndRestoresIt(t *testing.T) {
	litestreamBin(t)
	pcs := 18000
	if soak() {
		pcs = 90000
	}
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL(), jetstream.WithPublishAsyncMaxPending(4096))
	createStreams(t, js)
	b := broadcast(pcs, 31)
	msgs := b.Messages()
	publish(t, js, msgs)
	t.Logf("%d messages published", len(msgs))

	base, _, without := ingestRun(t, srv.ClientURL(), js, b, len(msgs), "without_litestream", false)
	fleettest.CheckTables(t, base, b, msgs)

	db, ls, with := ingestRun(t, srv.ClientURL(), js, b, len(msgs), "with_litestream", true)
	t.Logf("throughput with litestream ÷ without: %.2f", with/without)
	fleettest.CheckTables(t, db, b, msgs)

	// The replica catches up while litestream still runs: no shutdown sync needed.
	restored := filepath.Join(t.TempDir(), "restored.db")
	natstest.Eventually(t, 60*time.Second, "the replica restored equals the source", func() bool {
		os.Remove(restored)
		ls.restore(t, db, restored)
		return fmt.Sprint(tableDigests(t, restored)) == fmt.Sprint(tableDigests(t, db))
	})
	ls.stop(t)
	if r := ls.resnapshots(); len(r) > 0 {
		t.Errorf("litestream had to snapshot again %d times (the WAL changed behind its back); first: %s", len(r), r[0])
	}
	sameTables(t, db, restored)
	integrityOK(t, restored)
	fleettest.CheckTables(t, restored, b, msgs)
}

// TestRestoredBackupBehindTheDurablesIsRewound restores a litestream replica that stopped
// replicating halfway through a broadcast, as after a lost disk: the restored database keeps
// its identity, so the durables accept it, but they acknowledged the second half after the
// backup and would never deliver it again. Started as usual, fanin finds that the database
// lacks messages the durables acknowledged (its stream marks are below their ack floors),
// recreates them from the safe point the restored database holds, and the tables come out
// exact — no flag to remember.
func TestRestoredBackupBehindTheDurablesIsRewound(t *testing.T) {
	litestreamBin(t)
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL(), jetstream.WithPublishAsyncMaxPending(4096))
	b := broadcast(4000, 32)
	msgs := b.Messages()
	half := len(msgs) / 2
	dir := t.TempDir()
	db := filepath.Join(dir, "fanin.db")
	fleettest.CreateExecution(t, db, b)
	ls := startLitestream(t, dir, db)
	natstest.Eventually(t, 30*time.Second, "litestream's first sync", func() bool {
		return strings.Contains(ls.logs(), "snap=true")
	})
	p := start(t, dir, ingestArgs(srv.ClientURL(), db), nil)
	p.waitLog("projecting", 2, 30*time.Second)

	publish(t, js, msgs[:half])
	fleettest.WaitDrained(t, js, time.Minute)
	natstest.Eventually(t, 30*time.Second, "safe points at the ack floors", func() bool {
		return safePoints(t, db) == acked(js)
	})
	backup := filepath.Join(t.TempDir(), "backup.db")
	natstest.Eventually(t, 60*time.Second, "the replica restored equals the source", func() bool {
		os.Remove(backup)
		ls.restore(t, db, backup)
		return fmt.Sprint(tableDigests(t, backup)) == fmt.Sprint(tableDigests(t, db))
	})
	ls.stop(t) // the last backup: the rest of the broadcast is acked after it

	publish(t, js, msgs[half:])
	fleettest.WaitDrained(t, js, time.Minute)
	p.stop()
	fleettest.CheckTables(t, db, b, msgs)

	// The disk is lost (the database and litestream's state beside it); the database is
	// restored from the replica.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(db + suffix)
	}
	os.RemoveAll(filepath.Join(dir, ".fanin.db-litestream"))
	ls.restore(t, db, db)
	if have, floors := countRows(t, db, "execution_results"), acked(js); have >= b.PCs || floors != int64(len(msgs)) {
		t.Fatalf("restored database holds %d of %d rows with the durables acked up to %d of %d: want it behind them",
			have, b.PCs, floors, len(msgs))
	} else {
		t.Logf("restored database holds %d of %d rows; the durables acked all %d messages", have, b.PCs, floors)
	}

	// The README's order: litestream first, replicating the restored database again, then
	// fanin, started as always.
	ls = startLitestream(t, dir, db)
	natstest.Eventually(t, 30*time.Second, "litestream's first sync", func() bool {
		return strings.Contains(ls.logs(), "snap=true")
	})
	p = start(t, dir, ingestArgs(srv.ClientURL(), db), nil)
	p.waitLog("recreated durable (database behind)", 2, 30*time.Second)
	fleettest.WaitDrained(t, js, time.Minute)
	p.stop()
	fleettest.CheckTables(t, db, b, msgs)
	integrityOK(t, db)

	restored := filepath.Join(t.TempDir(), "restored.db")
	natstest.Eventually(t, 60*time.Second, "the replica restored again equals the source", func() bool {
		os.Remove(restored)
		ls.restore(t, db, restored)
		return fmt.Sprint(tableDigests(t, restored)) == fmt.Sprint(tableDigests(t, db))
	})
	ls.stop(t)
}

// safePoints returns the sum of the safe points the database at path records, as acked sums
// the durables' ack floors.
func safePoints(t *testing.T, path string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(`SELECT coalesce(sum(ack_floor), 0) FROM durable_positions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLitestreamStoppedWhileFaninRuns stops litestream mid-broadcast while fanin goes on
// ingesting, then stops fanin too, whose last connection checkpoints the WAL into the
// database and deletes it; litestream started again (before fanin, as the README says) picks
// up the database as it is now, and the replica, restored, equals the source.
func TestLitestreamStoppedWhileFaninRuns(t *testing.T) {
	litestreamBin(t)
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL(), jetstream.WithPublishAsyncMaxPending(4096))
	b := broadcast(3000, 33)
	msgs := b.Messages()
	third := len(msgs) / 3
	dir := t.TempDir()
	db := filepath.Join(dir, "fanin.db")
	fleettest.CreateExecution(t, db, b)
	firstSync := func(ls *litestream) {
		natstest.Eventually(t, 30*time.Second, "litestream's first sync", func() bool {
			return strings.Contains(ls.logs(), "snap=true")
		})
	}

	ls := startLitestream(t, dir, db)
	firstSync(ls)
	p := start(t, dir, ingestArgs(srv.ClientURL(), db), nil)
	p.waitLog("projecting", 2, 30*time.Second)
	publish(t, js, msgs[:third])
	fleettest.WaitDrained(t, js, time.Minute)

	ls.stop(t)
	publish(t, js, msgs[third:2*third])
	fleettest.WaitDrained(t, js, time.Minute)
	p.stop()
	if _, err := os.Stat(db + "-wal"); !os.IsNotExist(err) {
		t.Logf("the WAL outlived fanin's last connection (%v)", err)
	}

	ls = startLitestream(t, dir, db)
	firstSync(ls)
	p = start(t, dir, ingestArgs(srv.ClientURL(), db), nil)
	p.waitLog("projecting", 2, 30*time.Second)
	publish(t, js, msgs[2*third:])
	fleettest.WaitDrained(t, js, time.Minute)
	p.stop()
	fleettest.CheckTables(t, db, b, msgs)

	restored := filepath.Join(t.TempDir(), "restored.db")
	natstest.Eventually(t, 60*time.Second, "the replica restored equals the source", func() bool {
		os.Remove(restored)
		ls.restore(t, db, restored)
		return fmt.Sprint(tableDigests(t, restored)) == fmt.Sprint(tableDigests(t, db))
	})
	ls.stop(t)
	integrityOK(t, restored)
	fleettest.CheckTables(t, restored, b, msgs)
	t.Logf("litestream, started again, snapshotted %d times for a reason: %q", len(ls.resnapshots()), ls.resnapshots())
}
