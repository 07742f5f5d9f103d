package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"fanin/internal/fleettest"
	"fanin/internal/natstest"
	"fanin/internal/pgsink"
	"fanin/internal/pgtest"
	"fanin/internal/store"
)

// pg is the PostgreSQL server of this package's tests, started by the first test that needs one.
var pg pgtest.Lazy

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	exitWith(code)
}

// testPassword is put in every connection string below; the test cluster trusts local
// connections, so it is never checked, only carried — and must never be shown.
const testPassword = "s3cr3t-Pw"

// pgURL returns a fresh database as a postgres:// URL carrying testPassword.
func pgURL(t *testing.T) string {
	t.Helper()
	cs := pg.Server().NewDB(t)
	cc, err := pgx.ParseConfig(cs)
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(cc.User, testPassword), Path: "/" + cc.Database}
	q := url.Values{}
	if strings.HasPrefix(cc.Host, "/") {
		u.Host = ""
		q.Set("host", cc.Host)
	} else {
		u.Host = cc.Host
	}
	q.Set("port", itoa(int(cc.Port)))
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String()
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestTwoReplicasIngestIntoOnePostgres runs two ingesters on the same durables and the same
// PostgreSQL database, each projection of each with two transactions in flight: the tables are what the broadcast must leave, /readyz checks the
// database, and no log line shows the password.
func TestTwoReplicasIngestIntoOnePostgres(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	dbURL := pgURL(t)
	b := testBroadcast(1000, 3)
	var logs syncBuffer
	var replicas []*running
	for range 2 {
		cfg := testConfig(t, srv.ClientURL())
		cfg.DB.Path, cfg.PG.URL = dbURL, dbURL
		cfg.LogLevel = "debug"
		log := newLogger(cfg, &logs)
		ctx, cancel := context.WithCancel(context.Background())
		a, err := openApp(ctx, cfg, log)
		if err != nil {
			cancel()
			t.Fatalf("open: %v", err)
		}
		if len(replicas) == 0 {
			if err := a.db.AddExecution(ctx, store.Execution{ExecID: b.ExecID, JobID: b.ManifestID, Version: b.Version,
				InitiatedBy: "test", InitiatedAt: time.Now(), TargetCount: b.PCs}); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range a.loops {
			// Left to the store, as --db-writers is by default: two transactions in flight.
			if w := l.Config().Writers; w != pgsink.DefaultWriters {
				t.Errorf("%s projection: %d writers, want PostgreSQL's %d", l.Config().Kind, w, pgsink.DefaultWriters)
			}
		}
		done := make(chan int, 1)
		go func() { done <- runUntilStopped(ctx, a) }()
		var once sync.Once
		code := -1
		r := &running{app: a, done: done, stop: func() int {
			once.Do(func() { cancel(); code = <-done })
			return code
		}}
		t.Cleanup(func() { r.stop() })
		replicas = append(replicas, r)
	}
	msgs := shuffled(b.Messages(), 4)
	publishAll(t, js, msgs)
	fleettest.WaitDrained(t, js, 2*time.Minute)
	if code, body := probe(t, "http://"+replicas[0].server.Addr()+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	for i, r := range replicas {
		if code := r.stop(); code != 0 {
			t.Fatalf("replica %d exit code %d", i, code)
		}
	}
	want := fleettest.Expect(msgs, b.PCs)
	db, err := pgsink.Open(context.Background(), pgsink.Config{URL: dbURL, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sum, err := db.Summary(context.Background(), b.ExecID)
	if err != nil {
		t.Fatal(err)
	}
	dead := 0
	for _, d := range sum.DeadLetters {
		dead += d.Count
	}
	if sum.Results.Rows != want.Rows || sum.Failed != want.Failures || sum.Succeeded != b.PCs-want.Failures ||
		sum.Status != "completed" || dead != want.Poison || sum.Results.InFlight != 0 {
		t.Fatalf("summary %+v (%d dead letters): want %+v", sum, dead, want)
	}
	if strings.Contains(logs.String(), testPassword) {
		t.Fatalf("the password is in the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "postgres://postgres@") {
		t.Errorf("the logs do not name the database without its password:\n%s", logs.String())
	}
}

// TestCommandsWorkOnPostgresAndNeverShowThePassword: migrate and dead-letters on a connection
// string with a password (a URL, libpq's key=value form, PG* variables), and a server that
// cannot be reached: nothing printed holds the password.
func TestCommandsWorkOnPostgresAndNeverShowThePassword(t *testing.T) {
	dbURL := pgURL(t)
	run := func(args ...string) (int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := Main(context.Background(), args, &out, &errb, env(nil))
		all := out.String() + errb.String()
		if strings.Contains(all, testPassword) || strings.Contains(all, url.QueryEscape(testPassword)) {
			t.Fatalf("ingest %v printed the password:\n%s", args, all)
		}
		return code, all
	}
	if code, out := run("migrate", "--db", dbURL); code != 0 || !strings.Contains(out, "applied migrations [1]") {
		t.Fatalf("migrate: %d %s", code, out)
	}
	if code, out := run("migrate", "--db", dbURL); code != 0 || !strings.Contains(out, "is up to date") {
		t.Fatalf("migrate again: %d %s", code, out)
	}
	if code, out := run("dead-letters", "list", "--db", dbURL); code != 0 || !strings.Contains(out, "0 dead letters") {
		t.Fatalf("dead-letters list: %d %s", code, out)
	}
	if code, out := run("dead-letters", "replay", "--db", dbURL); code != 0 || !strings.Contains(out, "replayed 0 of 0") {
		t.Fatalf("dead-letters replay: %d %s", code, out)
	}
	cc, _ := pgx.ParseConfig(dbURL)
	kv := "host=" + cc.Host + " port=" + itoa(int(cc.Port)) + " user=postgres password=" + testPassword +
		" dbname=" + cc.Database + " sslmode=disable"
	if code, out := run("migrate", "--db", kv); code != 0 || !strings.Contains(out, "is up to date") {
		t.Fatalf("migrate, key=value: %d %s", code, out)
	}
	t.Setenv("PGHOST", cc.Host)
	t.Setenv("PGPORT", itoa(int(cc.Port)))
	t.Setenv("PGUSER", "postgres")
	t.Setenv("PGPASSWORD", testPassword)
	t.Setenv("PGDATABASE", cc.Database)
	t.Setenv("PGSSLMODE", "disable")
	if code, out := run("migrate", "--db", "postgres://"); code != 0 || !strings.Contains(out, "is up to date") {
		t.Fatalf("migrate, PG* variables: %d %s", code, out)
	}
	unreachable := "postgres://fanin:" + testPassword + "@127.0.0.1:1/fanin?connect_timeout=2&sslmode=disable"
	if code, out := run("migrate", "--db", unreachable); code != 1 || !strings.Contains(out, "127.0.0.1") {
		t.Fatalf("migrate, server down: %d %s", code, out)
	}
	if code, out := run("migrate", "--db", "postgres://fanin:"+testPassword+"@host:notaport/x"); code != 2 {
		t.Fatalf("migrate, a connection string that cannot parse: %d %s", code, out)
	}
}

// TestPostgresRestartMidIngestLosesNothing restarts the PostgreSQL server while a broadcast is
// being ingested: the writes that meet it fail transiently and are naked, the pool reconnects
// by itself, and the tables end exact — no fanin restart.
func TestPostgresRestartMidIngestLosesNothing(t *testing.T) {
	if !pg.Server().Throwaway() {
		t.Skip("needs a throwaway cluster to restart")
	}
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	dbURL := pgURL(t)
	b := testBroadcast(3000, 5)
	cfg := testConfig(t, srv.ClientURL())
	cfg.DB.Path, cfg.PG.URL = dbURL, dbURL
	r := startPrepared(t, cfg, func(a *app) {
		if err := a.db.AddExecution(context.Background(), store.Execution{ExecID: b.ExecID, JobID: b.ManifestID,
			Version: b.Version, InitiatedBy: "test", InitiatedAt: time.Now(), TargetCount: b.PCs}); err != nil {
			t.Fatal(err)
		}
	})
	msgs := shuffled(b.Messages(), 6)
	publishAll(t, js, msgs[:len(msgs)/2])
	pg.Server().Restart(t)
	publishAll(t, js, msgs[len(msgs)/2:])
	pg.Server().Restart(t)
	fleettest.WaitDrained(t, js, 2*time.Minute)
	naked := r.loops[0].Stats.Naked.Load() + r.loops[1].Stats.Naked.Load()
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	db, err := pgsink.Open(context.Background(), pgsink.Config{URL: dbURL, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sum, err := db.Summary(context.Background(), b.ExecID)
	if err != nil {
		t.Fatal(err)
	}
	want := fleettest.Expect(msgs, b.PCs)
	dead := 0
	for _, d := range sum.DeadLetters {
		dead += d.Count
	}
	if sum.Results.Rows != want.Rows || sum.Failed != want.Failures || sum.Succeeded != b.PCs-want.Failures ||
		sum.Status != "completed" || dead != want.Poison {
		t.Fatalf("summary %+v (%d dead letters): want %+v", sum, dead, want)
	}
	t.Logf("%d messages naked across the restarts", naked)
}

// TestPostgresIsObservableAsSQLite: the same metrics, transaction spans saying
// db.system.name=postgresql, and /readyz answering from the database's probe.
func TestPostgresIsObservableAsSQLite(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	dbURL := pgURL(t)
	cfg := testConfig(t, srv.ClientURL())
	cfg.DB.Path, cfg.PG.URL = dbURL, dbURL
	spans := tracetest.NewInMemoryExporter()
	cfg.Telemetry.SpanExporter = spans
	b := testBroadcast(200, 12)
	r := startApp(t, cfg)
	base := "http://" + r.server.Addr()
	natstest.Eventually(t, 20*time.Second, "/readyz 200", func() bool {
		code, _ := probe(t, base+"/readyz")
		return code == 200
	})
	publishAll(t, js, b.Messages())
	fleettest.WaitDrained(t, js, 30*time.Second)
	inserted, _ := series(scrape(t, base+"/metrics"), "fanin_rows_written_total", map[string]string{"operation": "insert"})
	if inserted != float64(b.PCs) {
		t.Errorf("fanin_rows_written_total{operation=insert} = %v, want %d", inserted, b.PCs)
	}
	var tx int
	for _, s := range spans.GetSpans() {
		if s.Name != "transaction" {
			continue
		}
		tx++
		system, op := "", ""
		for _, kv := range s.Attributes {
			switch kv.Key {
			case "db.system.name":
				system = kv.Value.Emit()
			case "db.operation.name":
				op = kv.Value.Emit()
			}
		}
		if system != "postgresql" || op != "BEGIN" {
			t.Fatalf("transaction span says db.system.name=%q, db.operation.name=%q; want postgresql, BEGIN", system, op)
		}
	}
	if tx == 0 {
		t.Error("no transaction span")
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestDeadLettersListAndReplayOnPostgres: the dead letters of a PostgreSQL database are
// listed, replayed (payload and headers byte for byte) and deleted once republished, and the
// ingester projects the replayed message.
func TestDeadLettersListAndReplayOnPostgres(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	dbURL := pgURL(t)
	cfg := testConfig(t, srv.ClientURL())
	cfg.DB.Path, cfg.PG.URL = dbURL, dbURL
	ctx := context.Background()
	r := startApp(t, cfg)
	if _, err := js.Publish(ctx, "events.started.e.pc1", []byte("not json \xff")); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitDrained(t, js, 30*time.Second)
	r.stop()

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO dead_letters (stream, stream_seq, subject, reason, payload, headers, recorded_at)
		VALUES ('EVENTS', 999, 'events.started.e.pc3', 'old bug', $1, $2, '2026-05-20T12:00:00.000000Z')`,
		[]byte(`{"result_id":"r3","request_id":"q","exec_id":"e","pc_id":"pc3","started_at":"2026-05-20T12:00:00Z","manifest_id":"m","version":"1"}`),
		[]byte("NATS/1.0\r\nX-Bin: a\xffb\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(ctx, append(args, "--db", dbURL, "--nats-url", srv.ClientURL()), &out, &errb, env(nil))
		return code, out.String() + errb.String()
	}
	if code, out := run("dead-letters"); code != 0 || !strings.Contains(out, "2 dead letters") || !strings.Contains(out, `"a\xffb"`) {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if code, out := run("dead-letters", "replay", "--reason", "old bug"); code != 0 || !strings.Contains(out, "replayed 1 of 1") {
		t.Fatalf("replay: %d\n%s", code, out)
	}
	if code, out := run("dead-letters"); code != 0 || !strings.Contains(out, "1 dead letters") || strings.Contains(out, "old bug") {
		t.Fatalf("after the replay: %d\n%s", code, out)
	}
	r = startApp(t, cfg)
	natstest.Eventually(t, 30*time.Second, "the replayed message projected", func() bool {
		var n int
		conn.QueryRow(ctx, `SELECT count(*) FROM execution_results WHERE result_id = 'r3'`).Scan(&n)
		return n == 1
	})
	r.stop()
}
