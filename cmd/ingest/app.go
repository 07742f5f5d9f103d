package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/batch"
	"fanin/internal/broker"
	"fanin/internal/output"
	"fanin/internal/sink"
	"fanin/internal/telemetry"
)

// app is a running ingester: the database, the NATS connection (and the embedded server, in
// single-binary mode), the two projections, and the telemetry with its HTTP listener.
type app struct {
	cfg *config
	log *slog.Logger

	db    demoStore
	emb   *broker.Embedded
	nc    *broker.Conn
	js    jetstream.JetStream
	loops []*batch.Loop

	tel     *telemetry.Telemetry
	server  *telemetry.Server // nil when --metrics-addr is empty
	health  health
	systemd *systemd // nil when not started by systemd with $NOTIFY_SOCKET
}

// openApp opens the database (migrating it), sets up the telemetry and starts the /metrics,
// /healthz, /readyz listener, starts the embedded server if asked, connects to NATS and creates
// the streams if asked. On error, whatever was opened is closed.
func openApp(ctx context.Context, cfg *config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close(context.Background())
		}
	}()
	if a.db, err = openDatabase(ctx, cfg); err != nil {
		return nil, err
	}
	var rc readyChecker = a.db.(readyChecker)
	a.health.db.Store(&rc)
	applied, err := a.db.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("migrated the database", "db", cfg.dbName(), "versions", applied)
	}
	if !cfg.usePostgres() && cfg.DB.Sync == sink.SyncNormal {
		log.Warn("--sync normal: a power cut or OS crash loses everything committed since the last WAL checkpoint (up to 64 MiB), although those messages were acked and are not redelivered; on a new database, the schema too")
	}
	if err := a.openTelemetry(ctx); err != nil {
		return nil, err
	}

	if x := cfg.natsContext; x != nil {
		log.Info("NATS settings from a nats CLI context", "context", x.Name, "file", x.Path, "sets", slices.Sorted(maps.Values(cfg.fromContext)))
	}
	if cfg.EmbeddedNATS != "" {
		if a.emb, err = broker.StartEmbedded(ctx, cfg.EmbeddedNATS, cfg.DataDir, log); err != nil {
			return nil, flagError("embedded", err)
		}
		cfg.NATS.URL = a.emb.URL()
	}
	if a.nc, err = broker.Connect(ctx, cfg.NATS, log); err != nil {
		return nil, flagError("nats", err)
	}
	a.health.nc.Store(a.nc)
	if a.js, err = a.nc.JetStream(); err != nil {
		return nil, err
	}
	if cfg.CreateStreams {
		if err := a.createStreams(ctx); err != nil {
			return nil, err
		}
	}

	// A fresh or wiped database replays the streams from the start.
	empty, err := a.db.Empty(ctx)
	if err != nil {
		return nil, err
	}
	resolver, err := output.New(a.js, cfg.Output, a.tel.MeterProvider, log)
	if err != nil {
		return nil, err
	}
	a.health.output.Store(resolver)
	switch found, err := resolver.Probe(ctx); {
	case err != nil:
		log.Warn("cannot look up the output bucket: will retry as results need it", "bucket", cfg.Output.Bucket, "err", err)
	case !found:
		log.Warn("output bucket does not exist: results naming objects in it will keep their inline text, with a note",
			"bucket", cfg.Output.Bucket)
	}
	opts := []batch.Option{batch.WithReplay(empty), batch.WithLedger(a.db), batch.WithAdopt(cfg.AdoptDurables),
		batch.WithRewind(cfg.RewindDurables), batch.WithManaged(cfg.ManagedDurables), batch.WithLogger(log), batch.WithTracerProvider(a.tel.TracerProvider)}
	if a.tel.Metrics() {
		opts = append(opts, batch.WithMeterProvider(a.tel.MeterProvider))
	}
	// SQLite commits one transaction at a time: the two projections share one window of
	// messages in flight (one and a half times what either alone may hold), not one each.
	// PostgreSQL's writers commit side by side, each projection within its own MaxAckPending.
	if _, concurrent := a.db.(batch.ConcurrentStore); !concurrent {
		opts = append(opts, batch.WithWindow(batch.SharedWindow(cfg.Events, cfg.Results)))
	}
	a.loops = []*batch.Loop{
		batch.New(cfg.Events, a.js, a.db,
			append(opts, a.streamCreator(broker.EventsStream(cfg.Events.Stream)))...),
		batch.New(cfg.Results, a.js, a.db,
			append(opts, a.streamCreator(broker.ResultsStream(cfg.Results.Stream)), batch.WithCompleter(resolver))...),
	}
	a.health.loops.Store(&a.loops)
	return a, nil
}

// openTelemetry builds the providers, the fanin_ready gauge and starts the listener, so that
// /healthz answers while NATS is still being reached.
func (a *app) openTelemetry(ctx context.Context) (err error) {
	if a.tel, err = telemetry.Setup(ctx, a.cfg.Telemetry); err != nil {
		return err
	}
	if a.tel.Tracing() {
		a.log.Info("exporting traces over OTLP")
	}
	var opts []telemetry.ServerOption
	if a.cfg.Pprof {
		opts = append(opts, telemetry.WithProfiling())
	}
	ready := telemetry.NewReadiness(telemetry.DefaultReadyCacheTTL, a.health.checks()...)
	if a.tel.Metrics() {
		if err := ready.Observe(a.tel.MeterProvider); err != nil {
			return err
		}
	}
	if a.cfg.MetricsAddr == "" {
		return nil
	}
	srv := telemetry.NewServer(a.cfg.MetricsAddr, a.tel.Gatherer, ready, a.log, opts...)
	err = srv.Start()
	var note []any
	if err != nil && errors.Is(err, syscall.EADDRINUSE) && !a.metricsAddrGiven() {
		// Several instances on one host with the default flags: the second and later ones
		// serve on a free port of the same host, and say where.
		host, _, _ := net.SplitHostPort(a.cfg.MetricsAddr) // validated by finish
		srv = telemetry.NewServer(net.JoinHostPort(host, "0"), a.tel.Gatherer, ready, a.log, opts...)
		err = srv.Start()
		note = []any{"note", "the default " + a.cfg.MetricsAddr + " is busy (another instance on this host?); --metrics-addr sets a fixed address"}
	}
	if err != nil {
		return flagError("metrics", err)
	}
	a.server = srv
	if a.cfg.Pprof {
		note = append(note, "pprof", "http://"+srv.Addr()+"/debug/pprof/")
	}
	a.log.Info("serving /metrics, /healthz and /readyz", append([]any{"addr", "http://" + srv.Addr()}, note...)...)
	return nil
}

// metricsAddrGiven reports whether the operator chose --metrics-addr (on the command line or
// in $FANIN_METRICS_ADDR): an address chosen that cannot be had is an error, the default one
// busy is not.
func (a *app) metricsAddrGiven() bool {
	return a.cfg.given != nil && a.cfg.given("metrics-addr") != ""
}

// createStreams creates the missing streams, waiting with backoff while NATS is unreachable.
func (a *app) createStreams(ctx context.Context) error {
	bo := backoff.NewExponentialBackOff()
	bo.MaxInterval, bo.MaxElapsedTime = 5*time.Second, 0
	for {
		err := broker.CreateStreams(ctx, a.js, a.log,
			broker.EventsStream(a.cfg.Events.Stream), broker.ResultsStream(a.cfg.Results.Stream))
		if err == nil {
			return nil
		}
		d := bo.NextBackOff()
		a.log.Warn("cannot create the streams yet: retrying", "err", err, "retry_in", d)
		select {
		case <-ctx.Done():
			return fmt.Errorf("create streams: %w", ctx.Err())
		case <-time.After(d):
		}
	}
}

// streamCreator is the option that lets a projection create its stream again, with the
// original settings, when it is deleted while fanin runs — with --create-streams only.
func (a *app) streamCreator(sc jetstream.StreamConfig) batch.Option {
	if !a.cfg.CreateStreams {
		return func(*batch.Loop) {}
	}
	return batch.WithCreateStream(func(ctx context.Context) error {
		return broker.CreateStreams(ctx, a.js, a.log, sc)
	})
}

// run projects both streams until ctx is cancelled, then lets each projection finish the
// batches in hand (commit, then ack). It returns early with an error if a projection cannot
// start at all (a durable fanin cannot use).
func (a *app) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, l := range a.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Run(ctx); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel() // one projection cannot run: stop the other cleanly too
			}
		}()
	}
	if a.cfg.StatsInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.logStats(ctx)
		}()
	}
	wg.Wait()
	return firstErr
}

// logStats logs each projection's progress every StatsInterval while it changes.
func (a *app) logStats(ctx context.Context) {
	t := time.NewTicker(a.cfg.StatsInterval)
	defer t.Stop()
	last := make([]uint64, len(a.loops))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, l := range a.loops {
			done := l.Stats.Acked.Load() + l.Stats.DeadLettered.Load()
			if done == last[i] {
				continue
			}
			a.log.Info("progress", "projection", l.Config().Kind.String(),
				"per_second", float64(done-last[i])/a.cfg.StatsInterval.Seconds(),
				"acked", l.Stats.Acked.Load(), "dead_lettered", l.Stats.DeadLettered.Load(),
				"naked", l.Stats.Naked.Load(), "backlog", l.Stats.Pending.Load())
			last[i] = done
		}
	}
}

// close shuts down what run left: drain NATS (flushing the last acks) → close the database →
// stop the embedded server → flush the telemetry (the last spans and metrics) → stop the
// /metrics listener. It is bounded by ctx.
func (a *app) close(ctx context.Context) error {
	var errs []error
	if a.nc != nil {
		if err := a.nc.Drain(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if a.db != nil {
		if err := a.db.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if a.emb != nil {
		a.emb.Shutdown()
	}
	if a.tel != nil {
		if err := a.tel.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if a.server != nil {
		if err := a.server.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
