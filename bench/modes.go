package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/output"
	"fanin/internal/sink"
	"fanin/internal/store"
)

// Mode names.
const (
	modeDrain = "drain"
	modeSink  = "sink"
	// modeNative is SQLite's own speed on the same rows (see native.go).
	modeNative     = "native"
	modePerMessage = "per-message"
	modeFanin      = "fanin"
	modeLive       = "live"
	// modeFaninTraced is fanin with tracing on: every batch sampled, one link per message,
	// spans batched to an exporter that drops them.
	modeFaninTraced = "fanin-traced"
	// modeFaninOutput is fanin with its results loop on RESULTS_LARGE, where -large-output of
	// the results name their stdout in the Object Store.
	modeFaninOutput = "fanin-output"
)

// result is one measured mode.
type result struct {
	Mode    string
	N       int           // batch size
	Wait    time.Duration // fanin's T (fanin and live)
	Prefill int           // rows in the table before the run
	Msgs    int           // messages (or rows, for sink) processed
	Rows    int           // rows in execution_results afterwards (0: no database)
	Txs     int           // transactions committed (sink, native, fanin)
	Output  int64         // bytes of output read from the Object Store and stored (fanin-output)
	Pause   time.Duration // fanin: the longest time no message was acked, from the first ack to the last
	SideCPU time.Duration // fanin-litestream: the CPU time litestream used, from its start to its exit
	Writers int           // fanin-postgres: batch.Config.Writers as the loop ran with it
	PGCPU   time.Duration // PostgreSQL modes: the CPU time the server's processes used in the timed part
	M       measurement
	Lat     []time.Duration // live: publish → committed, one per message
}

// drain measures the JetStream ceiling: Fetch(N) and ack every message, no decode, no database,
// on a fresh durable over the whole preloaded backlog.
func drain(ctx context.Context, e *env, n int) (result, error) {
	res := result{Mode: modeDrain, N: n, Msgs: e.opts.PCs}
	nc, js, err := e.connect()
	if err != nil {
		return res, err
	}
	defer nc.Close()
	durable := e.name(modeDrain, n)
	cons, err := createConsumer(ctx, js, eventsStream, durable, startedFilter, max(3*n, 1000))
	if err != nil {
		return res, err
	}

	total := uint64(res.Msgs)
	var got uint64
	var st stall
	e.prog.start(fmt.Sprintf("drain N=%d", n), total)
	mt := e.startMeter()
	mt.begin()
	for got < total {
		b, err := cons.Fetch(int(min(uint64(n), total-got)), jetstream.FetchMaxWait(e.opts.Wait))
		if err != nil {
			mt.stop()
			return res, fmt.Errorf("fetch: %w", err)
		}
		for m := range b.Messages() {
			m.Ack()
			got++
		}
		if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			mt.stop()
			return res, fmt.Errorf("fetch: %w", err)
		}
		e.prog.update(got)
		if st.stuck(got) {
			mt.stop()
			return res, fmt.Errorf("stalled at %d of %d messages", got, total)
		}
	}
	mt.end()
	res.M = mt.stop()
	e.prog.finish()
	if err := nc.Flush(); err != nil {
		return res, fmt.Errorf("flush acks: %w", err)
	}
	return res, verifyAcked(ctx, js, eventsStream, durable, total, true)
}

// sinkOnly measures the SQLite ceiling: the same payloads, regenerated, decoded into records and
// written with sink.Write in batches of N — no NATS. Only the decode and the write are timed.
func sinkOnly(ctx context.Context, e *env, n int) (result, error) {
	res := result{Mode: modeSink, N: n, Msgs: e.opts.PCs}
	name := e.name(modeSink, n)
	path := e.dbPath(name)
	defer removeDB(path)
	db, err := openSink(ctx, e.sinkConfig(path))
	if err != nil {
		return res, err
	}
	defer db.Close()

	kinds := []codec.Kind{codec.KindStarted}
	if e.opts.Results {
		kinds = append(kinds, codec.KindResult)
		res.Msgs *= 2
	}
	recs := make([]codec.Record, 0, n)
	arena := make([]byte, 0, n*512)
	published := genStart.Add(5 * time.Second)
	var done uint64
	e.prog.start(fmt.Sprintf("sink N=%d", n), uint64(res.Msgs))
	mt := e.startMeter(path)
	for _, kind := range kinds {
		g := newGen(seedEvents)
		stream := eventsStream
		if kind == codec.KindResult {
			stream = resultsStream
		}
		for i := 0; i < e.opts.PCs; {
			recs, arena = recs[:0], arena[:0]
			for ; len(recs) < n && i < e.opts.PCs; i++ {
				g.next()
				start := len(arena)
				if kind == codec.KindStarted {
					arena = g.appendStarted(arena)
				} else {
					arena = g.appendResult(arena)
				}
				recs = append(recs, codec.Record{Stream: stream, Seq: uint64(i + 1), Subject: stream,
					Published: published, Payload: arena[start:len(arena):len(arena)], Kind: kind})
			}
			mt.begin()
			for j := range recs {
				recs[j].Decode()
			}
			rep, err := db.Write(ctx, recs)
			mt.end()
			res.Txs += rep.Transactions
			if err != nil {
				mt.stop()
				return res, fmt.Errorf("write: %w", err)
			}
			if len(rep.DeadLetters) > 0 {
				mt.stop()
				return res, fmt.Errorf("write: %d records dead-lettered, first: %v", len(rep.DeadLetters), rep.DeadLetters[0].Err)
			}
			done += uint64(len(recs))
			e.prog.update(done)
		}
	}
	res.M = mt.stop()
	e.prog.finish()
	return res, verifyRows(ctx, db, &res, e.opts.PCs, e.opts.Results)
}

// perMessage measures the original projector's way on the first limit messages of the
// backlog: iterate messages, decode, one autocommit insert, ack. The database is opened by
// sink.Open, so the pragmas are exactly fanin's; the consumer has the original's settings
// (server-default MaxAckPending).
func perMessage(ctx context.Context, e *env, limit int) (result, error) {
	limit = min(limit, e.opts.PCs)
	res := result{Mode: modePerMessage, N: 1, Msgs: limit}
	name := e.name("permsg", 1)
	path := e.dbPath(name)
	defer removeDB(path)
	db, err := openSink(ctx, e.sinkConfig(path))
	if err != nil {
		return res, err
	}
	defer db.Close()
	nc, js, err := e.connect()
	if err != nil {
		return res, err
	}
	defer nc.Close()
	cons, err := createConsumer(ctx, js, eventsStream, name, startedFilter, 0)
	if err != nil {
		return res, err
	}
	it, err := cons.Messages()
	if err != nil {
		return res, fmt.Errorf("messages: %w", err)
	}
	defer it.Stop()

	e.prog.start("per-message", uint64(limit))
	mt := e.startMeter(path)
	mt.begin()
	for done := range limit {
		msg, err := it.Next(jetstream.NextMaxWait(stallTimeout))
		if err != nil {
			mt.stop()
			return res, fmt.Errorf("next message (%d of %d): %w", done, limit, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			mt.stop()
			return res, fmt.Errorf("metadata: %w", err)
		}
		r := codec.Record{Payload: msg.Data(), Kind: codec.KindStarted}
		r.Decode()
		if r.Poison == nil {
			if err := db.InsertInFlight(ctx, *r.Started, md.Timestamp); err != nil {
				mt.stop()
				return res, err
			}
		}
		msg.Ack()
		e.prog.update(uint64(done + 1))
	}
	mt.end()
	res.M = mt.stop()
	e.prog.finish()
	it.Stop()
	if err := nc.Flush(); err != nil {
		return res, fmt.Errorf("flush acks: %w", err)
	}
	// Messages the iterator pulled ahead stay unacked: only the prefix is checked.
	if err := verifyAcked(ctx, js, eventsStream, name, uint64(limit), false); err != nil {
		return res, err
	}
	return res, verifyRows(ctx, db, &res, limit, false)
}

// fanin measures the real ingester: batch.Loop with the defaults of batch.Started() (and
// batch.Results() with output.DefaultConfig()'s resolver, with -results) and
// sink.DefaultConfig(), wired as cmd/ingest wires them; only the durables, the database path,
// N, T and the sync mode are the run's. mode is fanin, fanin-traced (tracing on) or
// fanin-output (the results loop on RESULTS_LARGE). The table holds prefill other rows
// beforehand. It is done when every message is acked.
func fanin(ctx context.Context, e *env, mode string, n int, wait time.Duration, prefill int, profile, heapProfile string) (result, error) {
	res := result{Mode: mode, N: n, Wait: wait, Prefill: prefill, Msgs: e.opts.PCs}
	name := e.name(res.Mode, n)
	path := e.dbPath(name)
	defer removeDB(path)
	if prefill > 0 {
		if err := prefillDB(ctx, e, path, prefill); err != nil {
			return res, err
		}
	}
	db, err := openSink(ctx, e.sinkConfig(path))
	if err != nil {
		return res, err
	}
	defer db.Close()

	nc, js, err := e.connect()
	if err != nil {
		return res, err
	}
	defer nc.Close()
	empty, err := db.Empty(ctx)
	if err != nil {
		return res, err
	}
	resolver, err := output.New(js, output.DefaultConfig(), nil, e.log)
	if err != nil {
		return res, err
	}
	opts := []batch.Option{batch.WithReplay(empty), batch.WithLogger(e.log)}
	if mode == modeFaninTraced {
		limits := sdktrace.NewSpanLimits()
		limits.LinkCountLimit = -1 // one link per message, however big the batch
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithRawSpanLimits(limits))
		defer tp.Shutdown(context.WithoutCancel(ctx))
		opts = append(opts, batch.WithTracerProvider(tp))
	}
	started := batch.Started()
	started.Durable, started.BatchSize, started.MaxWait = name, n, wait
	// The store counts the transactions, to show how big fanin's really were.
	var txs atomic.Int64
	store := batch.StoreFunc(func(ctx context.Context, recs []codec.Record) (store.Report, error) {
		rep, err := db.Write(ctx, recs)
		txs.Add(int64(rep.Transactions))
		return rep, err
	})
	cfgs := []batch.Config{started}
	if e.opts.Results {
		results := batch.Results()
		results.Durable, results.BatchSize, results.MaxWait = name+"_results", n, wait
		if mode == modeFaninOutput {
			results.Stream, results.FilterSubject = largeStream, largeFilter
			res.Output = int64(largeCount(e.opts.PCs, e.opts.LargeOutput)) * int64(e.opts.LargeSize)
		}
		cfgs = append(cfgs, results)
		res.Msgs *= 2
		// As cmd/ingest: the two projections of one store share one window.
		opts = append(opts, batch.WithWindow(batch.SharedWindow(started, results)))
	}
	loops := []*batch.Loop{batch.New(started, js, store, opts...)}
	if e.opts.Results {
		loops = append(loops, batch.New(cfgs[1], js, store, append(opts, batch.WithCompleter(resolver))...))
	}

	stopProfile := func() {}
	if profile != "" {
		if err := os.MkdirAll(filepath.Dir(profile), 0o755); err != nil {
			return res, fmt.Errorf("cpu profile: %w", err)
		}
		f, err := os.Create(profile)
		if err != nil {
			return res, fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, fmt.Errorf("cpu profile: %w", err)
		}
		stopProfile = pprof.StopCPUProfile
		defer stopProfile() // on an early return; stopping twice is harmless
	}
	label := fmt.Sprintf("%s N=%d", res.Mode, n)
	if prefill > 0 {
		label = fmt.Sprintf("fanin +%d rows", prefill)
	}
	var ls *replicator
	if mode == modeFaninLitestream {
		if ls, err = startLitestream(ctx, e.opts.Litestream, path); err != nil {
			return res, err
		}
		defer ls.stop() // on an early return; stopping twice is harmless
	}
	var (
		lastAcked uint64
		lastMove  time.Time
	)
	pauses := func() error { // the longest stretch without an ack: a write stall
		var acked uint64
		for _, l := range loops {
			acked += l.Stats.Acked.Load()
		}
		if now := time.Now(); acked != lastAcked {
			if lastAcked > 0 {
				res.Pause = max(res.Pause, now.Sub(lastMove))
			}
			lastAcked, lastMove = acked, now
		}
		return nil
	}
	mt := e.startMeter(path)
	if heapProfile != "" {
		mt.profileHeap()
	}
	mt.begin()
	err = runLoops(ctx, e, loops, uint64(res.Msgs), label, pauses)
	mt.end()
	stopProfile()
	res.M = mt.stop()
	if heapProfile != "" {
		if err := os.WriteFile(heapProfile, mt.heapProfileBytes(), 0o644); err != nil {
			return res, fmt.Errorf("heap profile: %w", err)
		}
	}
	res.Txs = int(txs.Load())
	if err != nil {
		return res, err
	}
	if ls != nil {
		n, err := ls.stop()
		res.SideCPU = ls.cpu
		if err != nil {
			return res, err
		} else if n > 0 {
			return res, fmt.Errorf("litestream had to take a full snapshot again %d times: fanin's checkpoints fought it (see %s)", n, ls.log)
		}
	}
	if err := nc.Flush(); err != nil {
		return res, fmt.Errorf("flush acks: %w", err)
	}
	for _, c := range cfgs {
		if err := verifyAcked(ctx, js, c.Stream, c.Durable, uint64(e.opts.PCs), true); err != nil {
			return res, err
		}
	}
	if err := verifyRows(ctx, db, &res, prefill+e.opts.PCs, e.opts.Results); err != nil {
		return res, err
	}
	if mode == modeFaninOutput {
		return res, verifyOutputs(ctx, db, largeCount(e.opts.PCs, e.opts.LargeOutput), e.opts.LargeSize)
	}
	return res, nil
}

// runLoops runs the loops until they have acked total messages between them, calling during
// (if set) on each poll while waiting, then stops them and waits for them to return. A loop
// that dead-letters or naks anything fails the run: the benchmark's messages are all good.
func runLoops(ctx context.Context, e *env, loops []*batch.Loop, total uint64, label string, during func() error) error {
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make([]error, len(loops))
	for i, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Run(runCtx)
		}()
	}
	stop := func() error {
		cancel()
		wg.Wait()
		return errors.Join(errs...)
	}

	e.prog.start(label, total)
	defer e.prog.finish()
	var st stall
	for {
		var acked, bad uint64
		for _, l := range loops {
			acked += l.Stats.Acked.Load()
			bad += l.Stats.DeadLettered.Load() + l.Stats.Naked.Load()
		}
		e.prog.update(acked)
		switch {
		case bad > 0:
			stop()
			return fmt.Errorf("%d messages dead-lettered or naked: every benchmark message is good", bad)
		case acked >= total:
			return stop()
		case st.stuck(acked):
			stop()
			return fmt.Errorf("stalled at %d of %d messages", acked, total)
		case ctx.Err() != nil:
			stop()
			return ctx.Err()
		}
		if during != nil {
			if err := during(); err != nil {
				stop()
				return err
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// prefillDB writes rows of another broadcast into a new database at path, fast (sync normal,
// batches of 5,000), and closes it: the fanin run then reopens it with the run's settings.
func prefillDB(ctx context.Context, e *env, path string, rows int) error {
	cfg := e.sinkConfig(path)
	cfg.Sync = sink.SyncNormal
	db, err := openSink(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	const n = 5000
	g := newGen(seedPrefill)
	recs := make([]codec.Record, 0, n)
	arena := make([]byte, 0, n*256)
	e.prog.start("prefill", uint64(rows))
	defer e.prog.finish()
	for i := 0; i < rows; {
		recs, arena = recs[:0], arena[:0]
		for ; len(recs) < n && i < rows; i++ {
			g.next()
			start := len(arena)
			arena = g.appendStarted(arena)
			recs = append(recs, codec.Record{Stream: "PREFILL", Seq: uint64(i + 1), Subject: "prefill",
				Published: genStart, Payload: arena[start:len(arena):len(arena)], Kind: codec.KindStarted})
			recs[len(recs)-1].Decode()
		}
		if _, err := db.Write(ctx, recs); err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
		e.prog.update(uint64(i))
	}
	return db.Close()
}

// verifyRows checks the database holds want rows (all finished, with results) and records it.
func verifyRows(ctx context.Context, db *sink.Sink, res *result, want int, finished bool) error {
	rows, fin, err := countRows(ctx, db)
	if err != nil {
		return err
	}
	res.Rows = rows
	if rows != want {
		return fmt.Errorf("verify: %d rows in execution_results, want %d", rows, want)
	}
	if finished && fin != want {
		return fmt.Errorf("verify: %d finished rows, want %d", fin, want)
	}
	return nil
}

// verifyOutputs checks that exactly want rows hold a stdout of size bytes: the text of their
// object, whole, where the message carried a short one.
func verifyOutputs(ctx context.Context, db *sink.Sink, want, size int) error {
	got, err := db.CountStdoutLength(ctx, size)
	if err != nil {
		return fmt.Errorf("count large outputs: %w", err)
	}
	if got != want {
		return fmt.Errorf("verify: %d rows hold a %d-byte stdout, want %d", got, size, want)
	}
	return nil
}
