// Package batch is fanin's pull loop. One Loop is one projection, a durable JetStream consumer
// feeding a Store, in four stages, each in its own file:
//
//   - fetch (fetch.go): pull up to BatchSize messages, or what came within MaxWait, and decode
//     them into records;
//   - complete (complete.go): have a Completer fill in what records only refer to, within a
//     memory budget, keeping the messages alive meanwhile;
//   - write (write.go): take the batches waiting into one group and commit it in one
//     transaction of the Store, pausing with backoff when it fails; Config.Writers such
//     writers at once, for a store that takes concurrent transactions;
//   - settle (settle.go): ack what was projected, terminate the dead letters, nak with a
//     growing delay what could not be written.
//
// Around them, bind.go binds the durable (consumer.go says how) and watch.go keeps an eye on
// it. The package knows nothing about SQLite, nor about what a Completer fetches.
package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"fanin/internal/fault"
)

// Stats counts what a Loop has done since it started. The zero value is ready to use.
type Stats struct {
	Acked        atomic.Uint64 // messages projected and acked
	DeadLettered atomic.Uint64 // messages dead-lettered and terminated
	Naked        atomic.Uint64 // messages naked after a failed write, or that could not be completed
	Pending      atomic.Uint64 // the consumer's NumPending, as of the latest message fetched
}

// Loop is one projection: a durable consumer feeding a Store.
type Loop struct {
	cfg       Config
	js        jetstream.JetStream
	nc        *nats.Conn // js's connection: acks are published on it
	store     Store
	completer Completer
	budget    *budget // of what completer holds; nil without one
	window    *Window // shared with the other loops of the store; nil: none
	bind      BindOptions
	log       *slog.Logger

	tp         trace.TracerProvider // nil: no tracing
	mp         metric.MeterProvider // nil: no metrics
	watchEvery time.Duration
	obs        *observer

	bindMu     sync.Mutex              // one EnsureConsumer at a time: the fetch stage's or watch's
	binding    atomic.Pointer[Binding] // the durable as last bound
	bound      atomic.Bool             // Run holds the durable
	unhealthy  atomic.Pointer[error]   // why the durable cannot be trusted now; nil: it can
	lastWrite  atomic.Pointer[writeOutcome]
	fetchBeat  atomic.Int64   // unix nanoseconds of the fetch stage's latest heartbeat; 0: Run is not running
	writeSince []atomic.Int64 // per writer, unix nanoseconds when its write under way started; 0: none

	// Stats is updated as the loop runs; read it at any time.
	Stats Stats
}

// writeOutcome is how the latest write to the store went.
type writeOutcome struct {
	at  time.Time
	err error
}

// Option configures a Loop.
type Option func(*Loop)

// WithReplay makes the loop recreate a durable that has acknowledged messages before, so the
// whole stream is projected again (see EnsureConsumer). Set it when the database is empty.
func WithReplay(replay bool) Option { return func(l *Loop) { l.bind.Replay = replay } }

// WithLedger ties the durable to the ledger's database and keeps its safe point there (see
// Ledger and EnsureConsumer).
func WithLedger(ledger Ledger) Option { return func(l *Loop) { l.bind.Ledger = ledger } }

// WithAdopt lets the loop take over a durable that feeds another database (see
// BindOptions.Adopt).
func WithAdopt(adopt bool) Option { return func(l *Loop) { l.bind.Adopt = adopt } }

// WithRewind makes the loop's first bind recreate its existing durable from the database's safe
// point (see BindOptions.Rewind): once, after restoring the database from a backup.
func WithRewind(rewind bool) Option { return func(l *Loop) { l.bind.Rewind = rewind } }

// WithManaged makes the loop bind a durable managed elsewhere, which it never creates,
// updates or recreates (see BindOptions.Managed): a missing one is waited for, an unsuitable
// one stops Run with ErrUnsuitableDurable.
func WithManaged(managed bool) Option { return func(l *Loop) { l.bind.Managed = managed } }

// WithCreateStream sets what creates the stream when it does not exist (see
// BindOptions.CreateStream); without it a missing stream is waited for.
func WithCreateStream(create func(ctx context.Context) error) Option {
	return func(l *Loop) { l.bind.CreateStream = create }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(l *Loop) { l.log = log } }

// New returns a loop for one projection, writing into st. It does no I/O; call Run.
func New(cfg Config, js jetstream.JetStream, st Store, opts ...Option) *Loop {
	l := &Loop{cfg: cfg, js: js, store: st, log: slog.Default(), watchEvery: DefaultWatchInterval}
	if js != nil {
		l.nc = js.Conn()
	}
	for _, o := range opts {
		o(l)
	}
	if l.cfg.Writers == 0 {
		l.cfg.Writers = storeWriters(st)
	}
	l.writeSince = make([]atomic.Int64, l.cfg.writers())
	l.log = l.log.With("projection", cfg.Kind.String(), "stream", cfg.Stream, "durable", cfg.Durable)
	if l.completer != nil {
		l.budget = newBudget(cfg.completeMemory())
	}
	tp, mp := l.tp, l.mp
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	var err error
	if l.obs, err = newObserver(cfg, tp, mp, l.budget != nil); err != nil {
		l.log.Warn("some metrics are disabled", "err", err)
	}
	return l
}

// Config returns the loop's configuration, with the Writers New chose when it was zero.
func (l *Loop) Config() Config { return l.cfg }

// Run binds the durable (waiting, with backoff, for its stream to exist) and projects batches
// until ctx is cancelled: fetch → complete → write → settle. Fetching and completing the next
// batches overlaps with writing the current ones (Writers transactions at once).
//
// Shutdown order, once ctx is cancelled: stop fetching (a Fetch under way ends within MaxWait),
// write and settle every batch already fetched, return. Writes in that phase are not
// interrupted; the caller bounds the whole by its shutdown timeout. Run returns nil after a
// clean stop, and an error only for what can never work: a configuration the server refuses,
// a durable that feeds another database (ErrForeignDurable). Everything Run starts (goroutines,
// metric callbacks) has ended when it returns.
func (l *Loop) Run(ctx context.Context) error {
	if err := l.cfg.Validate(); err != nil {
		return err
	}
	if _, ok := l.store.(ConcurrentStore); !ok && l.cfg.Writers > 1 {
		return fault.Fieldf("Writers", "%d: the store takes one transaction at a time", l.cfg.Writers)
	}
	if err := l.checkWindow(); err != nil {
		return err
	}
	l.heartbeat()
	defer l.fetchBeat.Store(0)
	cons, err := l.rebind(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	l.bind.Replay = false // once: a durable bound again later is not replayed again
	l.bind.Rewind = false // nor rewound
	defer l.bound.Store(false)
	unregister, err := l.obs.gauges.observe(l.budget)
	if err != nil {
		l.log.Warn("the lag and backlog gauges are disabled", "err", err)
	}
	defer unregister()
	l.obs.zero(ctx)
	l.log.Info("projecting", "filter", l.cfg.FilterSubject, "batch", l.cfg.BatchSize, "wait", l.cfg.MaxWait, "writers", l.cfg.writers())

	// fctx ends the stages ahead of the write: with ctx, or when the durable turns out not to
	// be this instance's to consume (its cause, then returned).
	fctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	// Up to GroupBatches batches wait for the write stage, whose next free writer takes them in
	// one transaction.
	completed := make(chan *fetched, l.cfg.groupBatches())
	var wg sync.WaitGroup
	if l.watchEvery > 0 {
		wg.Go(func() { l.watch(fctx, stop) })
	}
	wg.Go(func() {
		defer close(completed)
		stop(l.fetchStage(fctx, cons, completed)) // fetch → decode → complete
	})
	l.writeStage(ctx, completed) // group → write → settle
	wg.Wait()
	if err := context.Cause(fctx); ctx.Err() == nil && err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Bound reports whether Run holds the durable: true from the moment it is bound until Run
// returns, except while a vanished or altered durable is being bound again.
func (l *Loop) Bound() bool { return l.bound.Load() }

// Ready reports why the projection cannot be trusted to make progress now, or nil: the durable
// is not bound (yet, or again), or the server has not answered for it lately.
func (l *Loop) Ready() error {
	if !l.bound.Load() {
		return errors.New("durable not bound")
	}
	if p := l.unhealthy.Load(); p != nil {
		return *p
	}
	return nil
}

// WriteError reports the error of the latest write to the store, when it failed, or nil.
func (l *Loop) WriteError() error {
	w := l.lastWrite.Load()
	if w == nil || w.err == nil {
		return nil
	}
	return fmt.Errorf("last write failed %s ago: %w", time.Since(w.at).Round(time.Second), w.err)
}

// newBackoff returns a backoff from RetryInitial to maxInterval that never gives up.
func (l *Loop) newBackoff(maxInterval time.Duration) *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = l.cfg.RetryInitial
	bo.MaxInterval = max(maxInterval, l.cfg.RetryInitial)
	bo.MaxElapsedTime = 0 // never give up
	bo.Reset()
	return bo
}

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
