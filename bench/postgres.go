package main

// The PostgreSQL modes (-pg names a server and a user allowed to create databases): each runs
// in a database of its own, created for it and dropped after.
//
//   - postgres-native: the ceiling — the rows fanin makes of the preloaded started events, made
//     beforehand and COPYed straight into execution_results (fanin's schema and indexes), in
//     transactions of about 8,000 rows (fanin's automatic group at N=1000). Only the COPY and
//     the commit are timed.
//   - postgres-sink: the PostgreSQL store alone — the same payloads decoded and written with
//     pgsink.Store.Write in batches of N, no NATS (as sink is for SQLite).
//   - fanin-postgres: the real ingester on the PostgreSQL store: batch.Loop on EVENTS from the
//     preloaded backlog, as fanin is for SQLite.
//
// The bar: fanin-postgres ≥ 0.7 × postgres-native.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/pgsink"
	"fanin/internal/project"
	"fanin/internal/store"
)

const (
	modePostgresNative = "postgres-native"
	modePostgresSink   = "postgres-sink"
	modeFaninPostgres  = "fanin-postgres"
	barPostgresRatio   = 0.7 // fanin-postgres ≥ 0.7 × postgres-native
	// nativeTxRows is how many rows postgres-native COPYs per transaction.
	nativeTxRows = 8000
)

func isPostgresMode(m string) bool {
	return m == modePostgresNative || m == modePostgresSink || m == modeFaninPostgres
}

// newPGDB creates a database for one mode and returns its connection string and a function
// that drops it.
func (e *env) newPGDB(ctx context.Context, name string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, e.opts.Postgres)
	if err != nil {
		return "", nil, fmt.Errorf("connect to -pg: %s", pgsink.Redact(err.Error(), e.opts.Postgres))
	}
	defer admin.Close(ctx)
	name = "fanin_bench_" + strings.NewReplacer("-", "_", ".", "_").Replace(name)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", nil, fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), e.opts.Postgres)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return withDatabase(e.opts.Postgres, name), drop, nil
}

// withDatabase returns connection string cs (a URL or libpq's key=value form) naming database name.
func withDatabase(cs, name string) string {
	if strings.HasPrefix(cs, "postgres://") || strings.HasPrefix(cs, "postgresql://") {
		u, q := cs, ""
		if i := strings.IndexByte(u, '?'); i >= 0 {
			u, q = u[:i], u[i:]
		}
		if i := strings.LastIndexByte(u, '/'); i > len("postgresql://") {
			u = u[:i]
		}
		return u + "/" + name + q
	}
	return cs + " dbname=" + name // a later key wins
}

// openPG opens and migrates a PostgreSQL store.
func openPG(ctx context.Context, url string) (*pgsink.Store, error) {
	cfg := pgsink.DefaultConfig()
	cfg.URL = url
	db, err := pgsink.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// startedRecords decodes the preloaded started events, from, in batches of n, calling f on each.
func startedRecords(e *env, n int, f func([]codec.Record) error) error {
	g := newGen(seedEvents)
	published := genStart.Add(5 * time.Second)
	recs := make([]codec.Record, 0, n)
	for i := 0; i < e.opts.PCs; {
		recs = recs[:0]
		for ; len(recs) < n && i < e.opts.PCs; i++ {
			g.next()
			payload := g.appendStarted(make([]byte, 0, 256))
			recs = append(recs, codec.Record{Stream: eventsStream, Seq: uint64(i + 1), Subject: eventsStream,
				Published: published, Payload: payload, Kind: codec.KindStarted})
		}
		if err := f(recs); err != nil {
			return err
		}
	}
	return nil
}

var copyColumns = []string{"result_id", "request_id", "exec_id", "pc_id", "started_at", "recorded_at", "job_id", "version"}

// postgresNative COPYs the rows of the started events straight into execution_results.
func postgresNative(ctx context.Context, e *env) (result, error) {
	res := result{Mode: modePostgresNative, N: nativeTxRows, Msgs: e.opts.PCs}
	url, drop, err := e.newPGDB(ctx, e.name(res.Mode, res.N))
	if err != nil {
		return res, err
	}
	defer drop()
	db, err := openPG(ctx, url)
	if err != nil {
		return res, err
	}
	db.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return res, err
	}
	defer conn.Close(ctx)

	// The rows, made beforehand: what the projection makes of each event.
	var chunks [][][]any
	err = startedRecords(e, nativeTxRows, func(recs []codec.Record) error {
		rows := make([][]any, len(recs))
		for i := range recs {
			recs[i].Decode()
			r, _, _ := project.ApplyStarted(nil, recs[i].Started, recs[i].RecordedAtText())
			rows[i] = []any{r.ResultID, r.RequestID, r.ExecID, r.PCID, r.StartedAt, r.RecordedAt, r.JobID, r.Version}
		}
		chunks = append(chunks, rows)
		return nil
	})
	if err != nil {
		return res, err
	}
	e.prog.start(res.Mode, uint64(res.Msgs))
	srv := findPGServer(ctx, conn)
	cpu0 := srv.cpu()
	mt := e.startMeter()
	done := 0
	for _, rows := range chunks {
		mt.begin()
		tx, err := conn.Begin(ctx)
		if err == nil {
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"execution_results"}, copyColumns, pgx.CopyFromRows(rows))
			if err == nil {
				err = tx.Commit(ctx)
			}
		}
		mt.end()
		if err != nil {
			mt.stop()
			return res, fmt.Errorf("copy: %w", err)
		}
		done += len(rows)
		e.prog.update(uint64(done))
	}
	res.M = mt.stop()
	res.PGCPU = srv.cpu() - cpu0
	e.prog.finish()
	return res, verifyPGRows(ctx, url, &res, e.opts.PCs)
}

// postgresSink writes the decoded started events with pgsink.Store.Write in batches of n.
func postgresSink(ctx context.Context, e *env, n int) (result, error) {
	res := result{Mode: modePostgresSink, N: n, Msgs: e.opts.PCs}
	url, drop, err := e.newPGDB(ctx, e.name(res.Mode, n))
	if err != nil {
		return res, err
	}
	defer drop()
	db, err := openPG(ctx, url)
	if err != nil {
		return res, err
	}
	defer db.Close()
	e.prog.start(fmt.Sprintf("%s N=%d", res.Mode, n), uint64(res.Msgs))
	mt := e.startMeter()
	done := 0
	err = startedRecords(e, n, func(recs []codec.Record) error {
		mt.begin()
		for j := range recs {
			recs[j].Decode()
		}
		rep, err := db.Write(ctx, recs)
		mt.end()
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if len(rep.DeadLetters) > 0 {
			return fmt.Errorf("write: %d records dead-lettered, first: %v", len(rep.DeadLetters), rep.DeadLetters[0].Err)
		}
		done += len(recs)
		e.prog.update(uint64(done))
		return nil
	})
	res.M = mt.stop()
	e.prog.finish()
	if err != nil {
		return res, err
	}
	return res, verifyPGRows(ctx, url, &res, e.opts.PCs)
}

// faninPostgres runs the started projection's batch.Loop (batch.Started() with N, T and
// writers; at 0, the store chooses them, as in ingest run) on the PostgreSQL store, over the
// whole preloaded backlog.
func faninPostgres(ctx context.Context, e *env, n int, wait time.Duration, writers int) (result, error) {
	res := result{Mode: modeFaninPostgres, N: n, Wait: wait, Msgs: e.opts.PCs}
	name := e.name(res.Mode, n)
	url, drop, err := e.newPGDB(ctx, name)
	if err != nil {
		return res, err
	}
	defer drop()
	db, err := openPG(ctx, url)
	if err != nil {
		return res, err
	}
	defer db.Close()
	nc, js, err := e.connect()
	if err != nil {
		return res, err
	}
	defer nc.Close()
	started := batch.Started()
	started.Durable, started.BatchSize, started.MaxWait, started.Writers = name, n, wait, writers
	st := &countingPG{Store: db}
	loops := []*batch.Loop{batch.New(started, js, st, batch.WithReplay(true), batch.WithLogger(e.log))}
	res.Writers = loops[0].Config().Writers
	var srv pgServer
	if c, err := pgx.Connect(ctx, url); err == nil {
		srv = findPGServer(ctx, c)
		c.Close(ctx)
	}
	cpu0 := srv.cpu()
	mt := e.startMeter()
	mt.begin()
	err = runLoops(ctx, e, loops, uint64(res.Msgs), fmt.Sprintf("%s N=%d", res.Mode, n), nil)
	mt.end()
	res.M = mt.stop()
	res.PGCPU = srv.cpu() - cpu0
	res.Txs = int(st.txs.Load())
	if err != nil {
		return res, err
	}
	if err := nc.Flush(); err != nil {
		return res, fmt.Errorf("flush acks: %w", err)
	}
	if err := verifyAcked(ctx, js, started.Stream, started.Durable, uint64(e.opts.PCs), true); err != nil {
		return res, err
	}
	return res, verifyPGRows(ctx, url, &res, e.opts.PCs)
}

// countingPG is the PostgreSQL store counting its transactions, to show how big fanin's really
// were. It takes concurrent writes as the store does (ConcurrentWriters is the store's).
type countingPG struct {
	*pgsink.Store
	txs atomic.Int64
}

func (c *countingPG) Write(ctx context.Context, recs []codec.Record) (store.Report, error) {
	rep, err := c.Store.Write(ctx, recs)
	c.txs.Add(int64(rep.Transactions))
	return rep, err
}

// pgServer is the PostgreSQL server's postmaster, when it runs on this machine and /proc shows
// it (0 otherwise): its CPU is then measured, as the NATS server's is.
type pgServer int

// findPGServer finds the postmaster of conn's backend: its parent process.
func findPGServer(ctx context.Context, conn *pgx.Conn) pgServer {
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return 0
	}
	if f := procStat(pid); len(f) > 1 {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%s/comm", f[1])); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			ppid, _ := strconv.Atoi(f[1])
			return pgServer(ppid)
		}
	}
	return 0
}

// cpu returns the CPU time the server's processes have used so far: the postmaster's, its
// children's (the backends and background workers) and that of the children it reaped.
func (p pgServer) cpu() time.Duration {
	if p == 0 {
		return 0
	}
	ticks := func(f []string, from, to int) (n int64) {
		for i := from; i <= to && i < len(f); i++ {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			n += v
		}
		return n
	}
	total := ticks(procStat(int(p)), 11, 14) // utime, stime, cutime, cstime
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) > 14 && f[1] == strconv.Itoa(int(p)) {
			total += ticks(f, 11, 14)
		}
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(total) * time.Second / hz
}

// procStat returns the fields of /proc/pid/stat after the command name: state, ppid, … (field
// 3 of stat is index 0), or nil.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func verifyPGRows(ctx context.Context, url string, res *result, want int) error {
	db, err := pgsink.Open(ctx, pgsink.Config{URL: url, MaxConns: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	c, err := db.CountResults(ctx, "")
	if err != nil {
		return err
	}
	res.Rows = c.Rows
	if c.Rows != want {
		return fmt.Errorf("verify: %d rows in execution_results, want %d", c.Rows, want)
	}
	return nil
}

// postgresBar judges fanin-postgres against the PostgreSQL ceiling, when both ran.
func (r *report) postgresBar() {
	f, ceiling := r.find(modeFaninPostgres, r.Options.Batch), r.find(modePostgresNative, nativeTxRows)
	if f == nil || ceiling == nil {
		if r.Options.Postgres != "" {
			r.skip("fanin-postgres ≥ 0.7 × postgres-native", barPostgresRatio, "needs the fanin-postgres and postgres-native modes")
		}
		return
	}
	r.judge("fanin-postgres ≥ 0.7 × postgres-native", f.Rate/ceiling.Rate, barPostgresRatio, true,
		fmt.Sprintf("%.0f vs %.0f rows/s (COPY, %d-row transactions), N=%d, %d writers", f.Rate, ceiling.Rate, nativeTxRows, f.N, f.Writers))
	// With several -pg-writers, each one's first run against the same ceiling.
	seen := map[int]bool{f.Writers: true}
	for _, rw := range r.Rows {
		if rw.Mode == modeFaninPostgres && rw.N == r.Options.Batch && !seen[rw.Writers] {
			seen[rw.Writers] = true
			r.inform(fmt.Sprintf("fanin-postgres with %d writers / postgres-native", rw.Writers), rw.Rate/ceiling.Rate,
				fmt.Sprintf("%.0f vs %.0f rows/s", rw.Rate, ceiling.Rate))
		}
	}
	if s := r.find(modePostgresSink, r.Options.Batch); s != nil {
		r.inform("postgres-sink / postgres-native", s.Rate/ceiling.Rate,
			fmt.Sprintf("%.0f vs %.0f rows/s: the store alone, no NATS", s.Rate, ceiling.Rate))
	}
}
