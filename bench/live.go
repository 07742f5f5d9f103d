package main

import (
	"context"
	"fmt"
	"time"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/store"
)

// live measures latency: a fresh stream, fanin's loop (batch.Started() defaults on the LIVE
// stream) running on it, and messages published at rate per second for duration. Each
// message's latency is from its JetStream timestamp to the return of the sink.Write that
// committed it; the observation wraps cmd/ingest's adapter and allocates nothing per message.
func live(ctx context.Context, e *env, n int, wait time.Duration, rate float64, duration time.Duration) (result, error) {
	total := int(rate * duration.Seconds())
	res := result{Mode: modeLive, N: n, Wait: wait, Msgs: total}
	name := e.name(modeLive, n)
	path := e.dbPath(name)
	defer removeDB(path)
	db, err := openSink(ctx, e.sinkConfig(path))
	if err != nil {
		return res, err
	}
	defer db.Close()
	lat := make([]time.Duration, 0, total)
	// The sink, timing each record from its publication to its commit.
	write := batch.StoreFunc(func(ctx context.Context, recs []codec.Record) (store.Report, error) {
		rep, err := db.Write(ctx, recs)
		if err == nil {
			now := time.Now()
			for i := range recs {
				if len(lat) < cap(lat) {
					lat = append(lat, now.Sub(recs[i].Published))
				}
			}
		}
		return rep, err
	})

	nc, js, err := e.connect()
	if err != nil {
		return res, err
	}
	defer nc.Close()
	cfg := batch.Started()
	cfg.Stream, cfg.FilterSubject, cfg.Durable, cfg.BatchSize, cfg.MaxWait = liveStream, liveFilter, name, n, wait
	loop := batch.New(cfg, js, write, batch.WithReplay(true), batch.WithLogger(e.log))
	// Each live run starts from an empty stream: its durable delivers everything on it.
	stream, err := js.Stream(ctx, liveStream)
	if err != nil {
		return res, fmt.Errorf("stream %s: %w", liveStream, err)
	}
	if err := stream.Purge(ctx); err != nil {
		return res, fmt.Errorf("purge %s: %w", liveStream, err)
	}

	// Start publishing once the loop has bound its durable, so binding is not counted as latency.
	g := newGen(seedLive + uint64(e.seq))
	var subj []byte
	var begin time.Time
	sent := 0
	publish := func() error {
		if begin.IsZero() {
			if _, err := js.Consumer(ctx, liveStream, name); err != nil {
				return nil // not bound yet
			}
			begin = time.Now()
		}
		due := min(total, int(time.Since(begin).Seconds()*rate)+1)
		for ; sent < due; sent++ {
			g.next()
			subj = g.appendStartedSubject(subj[:0], "live.started")
			if err := e.publish(ctx, string(subj), g.appendStarted(make([]byte, 0, 256))); err != nil {
				return err
			}
		}
		return nil
	}

	mt := e.startMeter(path)
	mt.begin()
	err = runLoops(ctx, e, []*batch.Loop{loop}, uint64(total), fmt.Sprintf("live %.0f/s", rate), publish)
	mt.end()
	res.M = mt.stop()
	if err != nil {
		return res, err
	}
	if err := e.publishComplete(ctx); err != nil {
		return res, err
	}
	if err := nc.Flush(); err != nil {
		return res, fmt.Errorf("flush acks: %w", err)
	}
	if err := verifyAcked(ctx, js, liveStream, name, 0, true); err != nil {
		return res, err
	}
	res.Lat = lat
	return res, verifyRows(ctx, db, &res, total, false)
}
