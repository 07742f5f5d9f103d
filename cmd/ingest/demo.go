package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fleet"
	"fanin/internal/pgsink"
	"fanin/internal/store"
)

const demoSynopsis = `ingest demo — the first thing to run: a broadcast to a simulated fleet, ingested live.

It starts the embedded JetStream server (storing in a temporary directory), the ingester, and a
fleet of --pcs PCs that each publish EventStarted then ExecResult with realistic jitter, some
duplicates and a few poison messages; it shows live progress, then a summary read back from the
SQLite file (--db, recreated at each run) or PostgreSQL database (--db postgres://…: the
previous demo's rows are deleted first).

Usage:
  ingest demo [flags]`

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("ingest demo", demoSynopsis, stdout)
	cfg := ingestFlags(fs)
	pcs := fs.Int("pcs", 10000, "fleet `size`: PCs that answer the broadcast")
	dups := fs.Float64("duplicates", 0.1, "share of messages an agent publishes twice (0–1)")
	poison := fs.Int("poison", 3, "malformed messages per stream")
	failures := fs.Float64("failure-rate", 0.03, "share of PCs whose command fails (0–1)")
	cfg.DB.Path = "fanin-demo.db"
	cfg.MetricsAddr = ""   // --metrics-addr 127.0.0.1:9464 to watch the demo
	cfg.LogLevel = "error" // dead letters are expected here: the summary lists them
	if code := parseFlags(fs, args, stdout, stderr, getenv); code >= 0 {
		return code
	}
	if *pcs < 1 || *dups < 0 || *dups > 1 || *failures < 0 || *failures > 1 || *poison < 0 {
		fmt.Fprintln(stderr, "ingest: --pcs must be positive; --duplicates and --failure-rate between 0 and 1; --poison not negative")
		return 2
	}
	dir, err := os.MkdirTemp("", "fanin-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cfg.EmbeddedNATS, cfg.DataDir, cfg.StatsInterval = "127.0.0.1:0", dir, 0
	if err := cfg.finish(); err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 2
	}
	cfg.Telemetry.Getenv = getenv
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if cfg.usePostgres() {
			break // the previous demo's rows are deleted once the database is open (runDemo)
		}
		if err := os.Remove(cfg.DB.Path + suffix); err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(stderr, "ingest: remove the previous demo database: %v\n", err)
			return 1
		}
	}
	log := newLogger(cfg, stderr)
	if err := runDemo(ctx, cfg, log, stdout, stderr, fleet.Broadcast{
		ExecID: "exec-demo-0001", RequestID: "req-demo-0001", ManifestID: "inventory-hw", Version: "1.0.0",
		PCs: *pcs, Seed: uint64(time.Now().UnixNano()), FailureRate: *failures,
		DuplicateRate: *dups, Poison: *poison, LegacyResults: 0.05,
	}); err != nil {
		fmt.Fprintf(stderr, "ingest: demo: %v\n", err)
		return 1
	}
	return 0
}

func runDemo(ctx context.Context, cfg *config, log *slog.Logger, stdout, stderr io.Writer, b fleet.Broadcast) error {
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	if pg, ok := a.db.(*pgsink.Store); ok {
		// A database is not a file to recreate: the previous demo's broadcast is deleted.
		if err := pg.DeleteBroadcast(ctx, b.ExecID, b.RequestID); err != nil {
			a.close(ctx)
			return err
		}
	}
	// The backend creates the execution before it broadcasts; fanin only moves it along.
	if err := a.db.AddExecution(ctx, store.Execution{ExecID: b.ExecID, JobID: b.ManifestID, Version: b.Version,
		InitiatedBy: "demo", InitiatedAt: time.Now(), TargetCount: b.PCs}); err != nil {
		a.close(ctx)
		return fmt.Errorf("create the execution: %w", err)
	}
	msgs := b.Messages()
	want := map[codec.Kind]uint64{}
	for _, m := range msgs {
		want[m.Kind]++
	}
	fmt.Fprintf(stdout, "broadcasting to %d PCs: %d messages (%d started, %d results, with duplicates and poison) on %s\n",
		b.PCs, len(msgs), want[codec.KindStarted], want[codec.KindResult], cfg.NATS.URL)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan int, 1)
	go func() { ran <- runUntilStopped(runCtx, a) }()

	begin := time.Now()
	pubErr := make(chan error, 1)
	go func() { pubErr <- fleet.Publish(runCtx, a.js, msgs, true) }()

	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(2*time.Minute + time.Duration(b.PCs)*time.Millisecond)
	var lastDone uint64
	lastAt := begin
	for {
		var done, backlog uint64
		finished := true
		for i, l := range a.loops {
			n := l.Stats.Acked.Load() + l.Stats.DeadLettered.Load()
			done += n
			backlog += l.Stats.Pending.Load()
			finished = finished && n >= want[[]codec.Kind{codec.KindStarted, codec.KindResult}[i]]
		}
		now := time.Now()
		rate := float64(done-lastDone) / now.Sub(lastAt).Seconds()
		lastDone, lastAt = done, now
		fmt.Fprintf(stderr, "\r%6.1fs  %7d / %d messages projected  %8.0f msg/s  backlog %6d ",
			now.Sub(begin).Seconds(), done, len(msgs), rate, backlog)
		if finished {
			fmt.Fprintln(stderr)
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr)
			stop()
			<-ran
			return ctx.Err()
		case err := <-pubErr:
			if err != nil {
				stop()
				<-ran
				return err
			}
			pubErr = nil
		case <-timeout:
			stop()
			<-ran
			return fmt.Errorf("not finished after %s", time.Since(begin).Round(time.Second))
		case <-tick.C:
		}
	}
	elapsed := time.Since(begin)
	stop()
	if code := <-ran; code != 0 {
		return fmt.Errorf("ingester exited with code %d", code)
	}
	return printSummary(ctx, cfg, b, len(msgs), elapsed, stdout)
}
