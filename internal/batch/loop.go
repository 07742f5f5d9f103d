// Package batch is fanin's pull loop: it fetches batches from a durable JetStream consumer,
// decodes them, hands each to a writer that commits it in one transaction, then acks (or
// terminates, for dead letters) every message of it; a failed write is naked with a growing
// delay. It knows nothing about SQLite.
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
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"fanin/internal/codec"
)

// WriteFunc commits a batch of records in one transaction. It returns, for each record (same
// index), the reason it was dead-lettered, or "" when it was projected; the loop terminates the
// former and acks the latter. An error means nothing may be acked: the loop naks the whole batch
// with a delay and retries it later. The records must not be kept after it returns.
type WriteFunc func(ctx context.Context, recs []codec.Record) (rejected []string, err error)

// ResolveFunc completes a decoded result before it is written, e.g. by fetching the large
// output its StdoutObject / StderrObject name. An error means the record cannot be written now
// and is retried later.
type ResolveFunc func(ctx context.Context, r *codec.Result) error

// Stats counts what a Loop has done since it started. The zero value is ready to use.
type Stats struct {
	Fetched      atomic.Uint64 // messages received
	Acked        atomic.Uint64 // messages projected and acked
	DeadLettered atomic.Uint64 // messages dead-lettered and terminated
	Naked        atomic.Uint64 // messages naked after a failed write or resolve
	Batches      atomic.Uint64 // batches committed
	Pending      atomic.Uint64 // the consumer's NumPending, as of the latest message fetched
}

// Loop is one projection: a durable consumer feeding a WriteFunc.
type Loop struct {
	cfg     Config
	js      jetstream.JetStream
	write   WriteFunc
	resolve ResolveFunc
	replay  bool
	log     *slog.Logger

	tp           trace.TracerProvider // nil: no tracing
	mp           metric.MeterProvider // nil: no metrics, no backlog polling
	backlogEvery time.Duration
	obs          *observer
	bound        atomic.Bool

	// Stats is updated as the loop runs; read it at any time.
	Stats Stats
}

// Option configures a Loop.
type Option func(*Loop)

// WithResolve sets the function that completes results before they are written.
func WithResolve(f ResolveFunc) Option { return func(l *Loop) { l.resolve = f } }

// WithReplay makes the loop recreate a durable that has acknowledged messages before, so the
// whole stream is projected again (see EnsureConsumer). Set it when the database is empty.
func WithReplay(replay bool) Option { return func(l *Loop) { l.replay = replay } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(l *Loop) { l.log = log } }

// New returns a loop for one projection. It does no I/O; call Run.
func New(cfg Config, js jetstream.JetStream, write WriteFunc, opts ...Option) *Loop {
	l := &Loop{cfg: cfg, js: js, write: write, log: slog.Default(), backlogEvery: DefaultBacklogInterval}
	for _, o := range opts {
		o(l)
	}
	l.log = l.log.With("projection", cfg.Kind.String(), "stream", cfg.Stream, "durable", cfg.Durable)
	tp, mp := l.tp, l.mp
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	var err error
	if l.obs, err = newObserver(cfg, tp, mp); err != nil {
		l.log.Warn("some metrics are disabled", "err", err)
	}
	return l
}

// Bound reports whether Run holds the durable: true from the moment it is bound until Run
// returns, except while a vanished durable is being bound again.
func (l *Loop) Bound() bool { return l.bound.Load() }

// fetched is one batch between the fetch and the write stage.
type fetched struct {
	msgs    []jetstream.Msg
	recs    []codec.Record
	bytes   int            // payload bytes
	decodes []decodeTiming // one per fetch grouped in
}

// decodeTiming is what the telemetry needs of one fetch's decoding.
type decodeTiming struct {
	start, end time.Time
	n          int   // messages decoded
	naked      int   // messages naked because their result could not be completed
	terminated int   // messages terminated for lack of JetStream metadata
	err        error // the first resolve error
}

// Run binds the durable (waiting, with backoff, for its stream to exist) and projects batches
// until ctx is cancelled. Fetching the next batch overlaps with writing the current one.
//
// Shutdown order, once ctx is cancelled: stop fetching (a Fetch under way ends within MaxWait),
// write and ack every batch already fetched, return. Writes in that phase are not interrupted;
// the caller bounds the whole by its shutdown timeout. Run returns nil after a clean stop.
func (l *Loop) Run(ctx context.Context) error {
	if err := l.cfg.Validate(); err != nil {
		return err
	}
	cons, err := l.bind(ctx, l.replay)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	l.bound.Store(true)
	defer l.bound.Store(false)
	l.log.Info("projecting", "filter", l.cfg.FilterSubject, "batch", l.cfg.BatchSize, "wait", l.cfg.MaxWait)

	// The fetch stage may run GroupBatches ahead: the write stage takes them in one transaction.
	ch := make(chan *fetched, l.cfg.groupBatches())
	var wg sync.WaitGroup
	if l.mp != nil && l.backlogEvery > 0 {
		wg.Add(1)
		go func() { // ends with ctx, as the fetch stage does
			defer wg.Done()
			l.pollBacklog(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		l.fetchLoop(ctx, cons, ch)
	}()
	l.writeLoop(ctx, ch)
	wg.Wait()
	return nil
}

// bind calls EnsureConsumer until it succeeds, backing off on failure. Only a configuration
// the server refuses outright is returned as an error.
func (l *Loop) bind(ctx context.Context, replay bool) (jetstream.Consumer, error) {
	bo := l.newBackoff(5 * time.Second)
	for attempt := 0; ; attempt++ {
		cons, err := EnsureConsumer(ctx, l.js, l.cfg, replay, l.log)
		if err == nil {
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code == 400 || errors.Is(err, ErrIncompatibleDurable) {
			return nil, err // the server refused the configuration: retrying changes nothing
		}
		d := bo.NextBackOff()
		if errors.Is(err, ErrStreamMissing) {
			if attempt == 0 || attempt%20 == 0 {
				l.log.Warn("stream does not exist yet: waiting for it (create it, or run with --create-streams)", "retry_in", d)
			}
		} else {
			l.log.Warn("cannot bind the durable: retrying", "err", err, "retry_in", d)
		}
		if !sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}

// fetchLoop fetches batches, decodes them and hands them to the write stage until ctx ends.
func (l *Loop) fetchLoop(ctx context.Context, cons jetstream.Consumer, out chan<- *fetched) {
	bo := l.newBackoff(5 * time.Second)
	failing := false
	for ctx.Err() == nil {
		start := time.Now()
		msgs, err := l.fetch(cons)
		l.obs.received(start, len(msgs), err)
		if len(msgs) > 0 {
			if f := l.prepare(ctx, msgs); f != nil {
				out <- f // the write stage drains until we close: this never blocks for good
			}
		}
		if err == nil {
			if failing {
				l.log.Info("fetching again")
				failing = false
			}
			bo.Reset()
			continue
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			l.log.Warn("durable vanished: binding it again", "err", err)
			l.bound.Store(false)
			if c, err := l.bind(ctx, false); err == nil {
				cons = c
				l.bound.Store(true)
			}
			continue
		}
		d := bo.NextBackOff()
		if !failing {
			l.log.Warn("fetch failed: retrying with backoff", "err", err, "retry_in", d)
			failing = true
		} else {
			l.log.Debug("fetch failed again", "err", err, "retry_in", d)
		}
		sleep(ctx, d)
	}
}

// fetch pulls one batch: up to BatchSize messages, or whatever arrived within MaxWait.
func (l *Loop) fetch(cons jetstream.Consumer) ([]jetstream.Msg, error) {
	maxBytes := l.cfg.MaxBatchBytes
	if nc := l.js.Conn(); nc != nil {
		maxBytes = max(maxBytes, 2*int(nc.MaxPayload()))
	}
	b, err := cons.Fetch(l.cfg.BatchSize, jetstream.FetchMaxWait(l.cfg.MaxWait), jetstream.FetchMaxBytes(maxBytes))
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	msgs := make([]jetstream.Msg, 0, l.cfg.BatchSize)
	for m := range b.Messages() {
		msgs = append(msgs, m)
	}
	if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return msgs, fmt.Errorf("fetch: %w", err)
	}
	return msgs, nil
}

// prepare turns messages into decoded records; results are resolved. Messages that are not
// JetStream messages are terminated (they cannot be acked or recorded); records whose resolve
// failed are naked for later.
func (l *Loop) prepare(ctx context.Context, msgs []jetstream.Msg) *fetched {
	l.Stats.Fetched.Add(uint64(len(msgs)))
	dt := decodeTiming{start: time.Now()}
	f := &fetched{msgs: msgs[:0], recs: make([]codec.Record, 0, len(msgs))}
	var pending uint64
	redelivered := 0
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			l.log.Error("message without JetStream metadata: terminating it", "subject", m.Subject(), "err", err)
			m.Term()
			dt.terminated++
			continue
		}
		if md.NumDelivered > 1 {
			redelivered++
		}
		r := codec.Record{
			Stream:    md.Stream,
			Seq:       md.Sequence.Stream,
			Subject:   m.Subject(),
			Published: md.Timestamp,
			Payload:   m.Data(),
			Header:    m.Headers(),
			Kind:      l.cfg.Kind,
		}
		r.Decode()
		if r.Poison == nil && r.Kind == codec.KindResult && l.resolve != nil {
			if err := l.resolve(ctx, &r.Result); err != nil {
				l.log.Warn("cannot complete result: retrying it later", "seq", r.Seq, "err", err)
				m.NakWithDelay(l.cfg.RetryInitial * 10)
				l.Stats.Naked.Add(1)
				if dt.naked == 0 {
					dt.err = err
				}
				dt.naked++
				continue
			}
		}
		pending = md.NumPending
		f.msgs = append(f.msgs, m)
		f.recs = append(f.recs, r)
		f.bytes += len(r.Payload)
	}
	l.Stats.Pending.Store(pending)
	if redelivered > 0 {
		l.obs.redeliveries(redelivered)
	}
	if dt.naked > 0 {
		l.obs.resolveFailed(dt.naked)
	}
	if len(f.msgs) == 0 {
		return nil
	}
	dt.end, dt.n = time.Now(), len(f.msgs)
	f.decodes = append(f.decodes, dt)
	return f
}

// writeLoop writes each fetched batch and settles its messages, until in is closed.
func (l *Loop) writeLoop(ctx context.Context, in <-chan *fetched) {
	// Writes are never interrupted: a batch in hand at shutdown is committed and acked.
	wctx := context.WithoutCancel(ctx)
	bo := l.newBackoff(l.cfg.RetryMax)
	var next *fetched
	for {
		f := next
		next = nil
		if f == nil {
			var ok bool
			if f, ok = <-in; !ok {
				return
			}
		}
		f = l.group(f, in)
		pctx, span, start := l.obs.startProcess(wctx, f)
		tctx, tspan, tstart := l.obs.startTransaction(pctx, len(f.recs))
		rejected, err := l.write(tctx, f.recs)
		l.obs.endTransaction(tctx, tspan, tstart, err)
		if err != nil {
			d := bo.NextBackOff()
			l.log.WarnContext(pctx, "write failed: naking the batch", "err", err, "messages", len(f.msgs), "redeliver_in", d)
			for _, m := range f.msgs {
				m.NakWithDelay(d)
			}
			l.Stats.Naked.Add(uint64(len(f.msgs)))
			l.obs.writeFailed(pctx, span, len(f.msgs), d, err)
			l.obs.endProcess(pctx, span, start, errorType(err).Value.AsString())
			// The naked batch comes back after d, however long; the loop itself tries the next
			// batch sooner, so the batches queued behind it are written (or naked) well within
			// their AckWait instead of expiring unseen.
			next = l.pause(ctx, min(d, l.cfg.AckWait/3), in)
			continue
		}
		bo.Reset()
		errType := ""
		if dead := l.settle(pctx, f, rejected); dead > 0 {
			errType = "dead_letter"
			l.obs.markDeadLetters(span, dead)
		}
		l.obs.endProcess(pctx, span, start, errType)
	}
}

// group adds to f the batches already waiting in in, up to GroupBatches in all: while the
// projection is behind, one transaction takes several fetches.
func (l *Loop) group(f *fetched, in <-chan *fetched) *fetched {
	more := l.waiting(in, f.bytes)
	if len(more) == 0 {
		return f
	}
	n := len(f.msgs)
	for _, g := range more {
		n += len(g.msgs)
	}
	// One allocation for the group: appending batch after batch would copy it again and again.
	all := &fetched{msgs: make([]jetstream.Msg, 0, n), recs: make([]codec.Record, 0, n)}
	for _, g := range append([]*fetched{f}, more...) {
		all.msgs = append(all.msgs, g.msgs...)
		all.recs = append(all.recs, g.recs...)
		all.decodes = append(all.decodes, g.decodes...)
		all.bytes += g.bytes
	}
	return all
}

// waiting returns the batches already waiting in in, up to GroupBatches-1 and until the group
// holds four times MaxBatchBytes of payload, without blocking.
func (l *Loop) waiting(in <-chan *fetched, bytes int) []*fetched {
	var more []*fetched
	for len(more) < l.cfg.groupBatches()-1 && bytes < 4*l.cfg.MaxBatchBytes {
		select {
		case g, ok := <-in:
			if !ok {
				return more
			}
			more = append(more, g)
			bytes += g.bytes
		default:
			return more
		}
	}
	return more
}

// settle acks the projected messages of a committed batch and terminates its dead letters; it
// returns how many it terminated. ctx carries the batch's process span.
func (l *Loop) settle(ctx context.Context, f *fetched, rejected []string) (dead uint64) {
	span := l.obs.startAck(ctx)
	defer span.End()
	var acked uint64
	for i, m := range f.msgs {
		if reason := rejected[i]; reason != "" {
			if len(reason) > 200 {
				reason = reason[:200]
			}
			m.TermWithReason("fanin dead letter: " + reason)
			dead++
			continue
		}
		// Ack is fire-and-forget: a lost ack only means a redelivery, which changes nothing.
		m.Ack()
		acked++
	}
	l.Stats.Acked.Add(acked)
	l.Stats.DeadLettered.Add(dead)
	l.Stats.Batches.Add(1)
	l.obs.settled(ctx, span, f.recs, rejected, int(acked), int(dead))
	if dead > 0 {
		l.log.WarnContext(ctx, "dead-lettered messages", "count", dead, "first_reason", firstNonEmpty(rejected))
	}
	return dead
}

// pause waits d after a failed write, so a failing database is not hammered. A batch the fetch
// stage hands over meanwhile is held, with InProgress sent on its messages so the server does
// not redeliver them, and returned to be written next. The pause ends early when ctx ends.
func (l *Loop) pause(ctx context.Context, d time.Duration, in <-chan *fetched) *fetched {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(max(l.cfg.AckWait/3, time.Second))
	defer tick.Stop()
	var held *fetched
	recv := in
	for {
		select {
		case <-ctx.Done():
			return held
		case <-timer.C:
			return held
		case f, ok := <-recv:
			if !ok {
				return held
			}
			held, recv = f, nil
		case <-tick.C:
			if held != nil {
				for _, m := range held.msgs {
					m.InProgress()
				}
			}
		}
	}
}

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

func firstNonEmpty(ss []string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
