package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/fleet"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
	"fanin/internal/sink"
	"fanin/internal/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testBroadcast is the fleet the end-to-end tests ingest.
func testBroadcast(pcs int, seed uint64) fleet.Broadcast {
	return fleet.Broadcast{
		ExecID: "exec-1", RequestID: "req-1", ManifestID: "inventory-hw", Version: "1.0.0",
		PCs: pcs, Seed: seed, FailureRate: 0.05, DuplicateRate: 0.1, Poison: 5, LegacyResults: 0.05,
	}
}

// testConfig returns an ingester config for srv and a database in a temp dir, with short
// waits so tests run fast.
func testConfig(t *testing.T, url string) *config {
	t.Helper()
	fs := newFlagSet("test", "", io.Discard)
	cfg := ingestFlags(fs)
	if err := fs.parse(nil, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL = url
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.Telemetry.Getenv = func(string) string { return "" } // no OTLP from the developer's environment
	cfg.DB.Path = filepath.Join(t.TempDir(), "fanin.db")
	cfg.DB.Sync = sink.SyncNormal // fsync costs seconds under -race; durability is not what these tests check
	cfg.Events.BatchSize = 500
	cfg.Events.MaxWait = 50 * time.Millisecond
	cfg.Events.AckWait = 6 * time.Second
	cfg.CreateStreams = true
	cfg.StatsInterval = 0
	cfg.ShutdownTimeout = 20 * time.Second
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	cfg.Events.RetryInitial, cfg.Results.RetryInitial = 20*time.Millisecond, 20*time.Millisecond
	cfg.Events.RetryMax, cfg.Results.RetryMax = 500*time.Millisecond, 500*time.Millisecond
	return cfg
}

// running is an app started by startApp.
type running struct {
	*app
	stop func() int // cancel and wait; returns the exit code
	done chan int   // receives the exit code once, if the app stops by itself
}

// wait returns the exit code of an app that stops by itself within d.
func (r *running) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case code := <-r.done:
		r.stop = func() int { return code }
		return code
	case <-time.After(d):
		t.Fatalf("still running after %s", d)
		return -1
	}
}

func startApp(t *testing.T, cfg *config) *running {
	t.Helper()
	return startPrepared(t, cfg, nil)
}

// startPrepared is startApp calling prepare, if set, between opening the app and running it.
func startPrepared(t *testing.T, cfg *config, prepare func(*app)) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := openApp(ctx, cfg, quiet)
	if err != nil {
		cancel()
		t.Fatalf("open: %v", err)
	}
	if prepare != nil {
		prepare(a)
	}
	done := make(chan int, 1)
	go func() { done <- runUntilStopped(ctx, a) }()
	var once sync.Once
	code := -1
	r := &running{app: a, done: done, stop: func() int {
		once.Do(func() {
			cancel()
			code = <-done
		})
		return code
	}}
	t.Cleanup(func() { r.stop() })
	return r
}

func publishAll(t *testing.T, js jetstream.JetStream, msgs []fleet.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := fleet.Publish(ctx, js, msgs, false); err != nil {
		t.Fatal(err)
	}
}

func shuffled(msgs []fleet.Message, seed uint64) []fleet.Message {
	out := append([]fleet.Message(nil), msgs...)
	rand.New(rand.NewPCG(seed, 1)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// dump renders the three tables canonically, for comparing two databases.
func dump(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		`SELECT result_id, request_id, quote(exec_id), pc_id, quote(exit_code), stdout, stderr, started_at,
			quote(finished_at), recorded_at, quote(job_id), quote(version), reaped, quote(expires_at),
			quote(parent_result_id), skipped FROM execution_results ORDER BY result_id`,
		`SELECT * FROM executions ORDER BY exec_id`,
		`SELECT stream, stream_seq, subject, reason, hex(payload), quote(headers), recorded_at FROM dead_letters ORDER BY stream, stream_seq`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%v|", v)
			}
			b.WriteByte('\n')
		}
		rows.Close()
	}
	return b.String()
}

func TestBroadcastOf10000PCsEndToEnd(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	b := testBroadcast(10000, 1)
	fleettest.CreateExecution(t, cfg.DB.Path, b)

	r := startApp(t, cfg)
	msgs := shuffled(b.Messages(), 2) // started and results in any order
	publishAll(t, js, msgs)
	fleettest.WaitDrained(t, js, 2*time.Minute)
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	fleettest.CheckTables(t, cfg.DB.Path, b, msgs)
}

func TestCrashBetweenCommitAndAckChangesNothing(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	b := testBroadcast(600, 3)
	msgs := shuffled(b.Messages(), 4)

	// The reference: the same messages ingested without a crash.
	ref := testConfig(t, srv.ClientURL())
	ref.Events.Stream, ref.Results.Stream = "EVENTS", "RESULTS"
	fleettest.CreateExecution(t, ref.DB.Path, b)
	r := startApp(t, ref)
	publishAll(t, js, msgs)
	fleettest.WaitDrained(t, js, time.Minute)
	r.stop()

	// The crash: a second set of durables; the first instance commits some batches, then its
	// connection dies before it can ack them.
	cfg := testConfig(t, srv.ClientURL())
	cfg.Events.Durable, cfg.Results.Durable = "crash_events", "crash_results"
	fleettest.CreateExecution(t, cfg.DB.Path, b)
	db, err := sink.Open(context.Background(), cfg.DB)
	if err != nil {
		t.Fatal(err)
	}
	crashConn, crashJS := natstest.Connect(t, srv.ClientURL())
	var commits sync.WaitGroup
	commits.Add(2)
	crashed := make(chan struct{})
	var once sync.Once
	write := batch.StoreFunc(func(ctx context.Context, recs []codec.Record) (store.Report, error) {
		rep, err := db.Write(ctx, recs)
		if err == nil {
			once.Do(func() { crashConn.Close(); close(crashed) }) // committed, and now no ack can leave
		}
		return rep, err
	})
	ctx, cancel := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	for _, c := range []batch.Config{cfg.Events, cfg.Results} {
		l := batch.New(c, crashJS, write, batch.WithLogger(quiet))
		loops.Add(1)
		go func() { defer loops.Done(); l.Run(ctx) }()
	}
	select {
	case <-crashed:
	case <-time.After(30 * time.Second):
		t.Fatal("no batch committed")
	}
	cancel()
	loops.Wait()
	db.Close()

	// Restart: the unacked messages come back after AckWait and change nothing.
	r2 := startApp(t, cfg)
	natstest.Eventually(t, time.Minute, "crash durables drained", func() bool {
		return natstest.ConsumerDrained(t, js, "EVENTS", "crash_events") && natstest.ConsumerDrained(t, js, "RESULTS", "crash_results")
	})
	if code := r2.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if got, want := dump(t, cfg.DB.Path), dump(t, ref.DB.Path); got != want {
		t.Fatalf("tables after a crash between commit and ack differ from the reference:\n%s", firstDiff(got, want))
	}
}

func TestDatabaseLockedBacksOffAndCatchesUp(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	cfg.DB.BusyTimeout = 100 * time.Millisecond
	b := testBroadcast(1000, 5)
	fleettest.CreateExecution(t, cfg.DB.Path, b)
	r := startApp(t, cfg)

	// Another process holds the write lock for a few seconds while the burst arrives.
	locker, err := sql.Open("sqlite3", "file:"+cfg.DB.Path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	tx, err := locker.Begin()
	if err != nil {
		t.Fatal(err)
	}
	msgs := b.Messages()
	publishAll(t, js, msgs)
	natstest.Eventually(t, 20*time.Second, "naks while locked", func() bool {
		return r.loops[0].Stats.Naked.Load()+r.loops[1].Stats.Naked.Load() > 0
	})
	time.Sleep(2 * time.Second)
	if n := r.loops[0].Stats.Acked.Load() + r.loops[1].Stats.Acked.Load(); n != 0 {
		t.Fatalf("%d messages acked while the database was locked", n)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitDrained(t, js, time.Minute)
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	fleettest.CheckTables(t, cfg.DB.Path, b, msgs)
}

func TestGracefulShutdownAcksOnlyWhatIsCommitted(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	cfg.Events.BatchSize = 200
	b := testBroadcast(8000, 6)
	b.DuplicateRate, b.Poison = 0, 0
	var started []fleet.Message
	for _, m := range b.Messages() {
		if m.Kind == codec.KindStarted {
			started = append(started, m)
		}
	}
	r := startApp(t, cfg)
	publishAll(t, js, started)
	natstest.Eventually(t, time.Minute, "ingest under way", func() bool { return r.loops[0].Stats.Acked.Load() > 1000 })
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	ctx := context.Background()
	c, err := js.Consumer(ctx, "EVENTS", "backend_events_projector")
	if err != nil {
		t.Fatal(err)
	}
	// Acks are applied by the server shortly after they arrive.
	var info *jetstream.ConsumerInfo
	natstest.Eventually(t, 10*time.Second, "no ack pending", func() bool {
		info, err = c.Info(ctx)
		return err == nil && info.NumAckPending == 0
	})
	acked := len(started) - int(info.NumPending)
	var rows int
	db, err := sql.Open("sqlite3", "file:"+cfg.DB.Path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(*) FROM execution_results`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != acked {
		t.Fatalf("%d messages acked, %d rows committed: shutdown acked what it had not written or left fetched messages unacked", acked, rows)
	}
}

// A wiped projection is projected again from the start of the streams, and gives the same
// tables, counters included: whether its rows were deleted with the executions kept (whose
// counters the replay first sets back to 0, or they would count every run twice), or the file
// was deleted and the new one adopts the durables.
func TestReplayAfterAWipedDatabase(t *testing.T) {
	for _, tc := range []struct {
		name string
		wipe func(t *testing.T, cfg *config, b fleet.Broadcast)
	}{
		{"rows deleted, executions kept", func(t *testing.T, cfg *config, _ fleet.Broadcast) {
			execSQL(t, cfg.DB.Path, `DELETE FROM execution_results`, `DELETE FROM dead_letters`)
		}},
		{"file deleted, durables adopted", func(t *testing.T, cfg *config, b fleet.Broadcast) {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(cfg.DB.Path + suffix)
			}
			fleettest.CreateExecution(t, cfg.DB.Path, b)
			cfg.AdoptDurables = true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Run(t)
			_, js := natstest.Connect(t, srv.ClientURL())
			cfg := testConfig(t, srv.ClientURL())
			b := testBroadcast(300, 7)
			fleettest.CreateExecution(t, cfg.DB.Path, b)
			r := startApp(t, cfg)
			publishAll(t, js, b.Messages())
			fleettest.WaitDrained(t, js, time.Minute)
			r.stop()
			before := dump(t, cfg.DB.Path)

			tc.wipe(t, cfg, b)
			r = startApp(t, cfg)
			natstest.Eventually(t, time.Minute, "the stream projected again", func() bool {
				return dump(t, cfg.DB.Path) == before
			})
			fleettest.WaitDrained(t, js, time.Minute)
			if got := dump(t, cfg.DB.Path); got != before {
				t.Fatalf("after the replay drained: %s", firstDiff(got, before))
			}
			r.stop()
		})
	}
}

// A database that is not the one the durables feed — a new, empty file at another path — is
// refused: nothing consumed into it, and the durables are left as they are for their database.
func TestANewDatabaseRefusesTheDurablesOfAnother(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	b := testBroadcast(100, 3)
	fleettest.CreateExecution(t, cfg.DB.Path, b)
	r := startApp(t, cfg)
	publishAll(t, js, b.Messages())
	fleettest.WaitDrained(t, js, time.Minute)
	r.stop()
	ctx := context.Background()
	c, err := js.Consumer(ctx, "RESULTS", "backend_results_projector")
	if err != nil {
		t.Fatal(err)
	}
	created := c.CachedInfo().Created

	wrong := *cfg
	wrong.DB.Path = filepath.Join(t.TempDir(), "typo.db")
	r = startApp(t, &wrong)
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	var rows int
	db, err := sql.Open("sqlite3", "file:"+wrong.DB.Path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(*) FROM execution_results`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("the wrong database got %d rows (err %v)", rows, err)
	}
	c, err = js.Consumer(ctx, "RESULTS", "backend_results_projector")
	if err != nil {
		t.Fatal(err)
	}
	if !c.CachedInfo().Created.Equal(created) || c.CachedInfo().NumPending != 0 {
		t.Fatalf("the real database's durable was recreated or rewound: created %v (was %v), pending %d",
			c.CachedInfo().Created, created, c.CachedInfo().NumPending)
	}
}

// With --create-streams, a stream deleted while fanin runs is created again (not waited for),
// and what is published to the new one is projected.
func TestAStreamDeletedUnderCreateStreamsIsCreatedAgain(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	b := testBroadcast(200, 5)
	b.Poison = 0
	fleettest.CreateExecution(t, cfg.DB.Path, b)
	startApp(t, cfg)
	ctx := context.Background()
	natstest.Eventually(t, 30*time.Second, "streams created", func() bool {
		_, err := js.Stream(ctx, "RESULTS")
		return err == nil
	})
	if err := js.DeleteStream(ctx, "RESULTS"); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 30*time.Second, "RESULTS created again, its durable bound", func() bool {
		_, err := js.Consumer(ctx, "RESULTS", "backend_results_projector")
		return err == nil
	})
	msgs := b.Messages()
	publishAll(t, js, msgs)
	fleettest.WaitDrained(t, js, time.Minute)
	fleettest.CheckTables(t, cfg.DB.Path, b, msgs)
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n got  %s\n want %s", i+1, a, b)
		}
	}
	return "(no difference)"
}
