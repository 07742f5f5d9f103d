// Package batch is fanin's pull loop: it fetches batches from a durable JetStream consumer,
// decodes them, has a Completer fetch what they only refer to (large output), hands each to a
// writer that commits it in one transaction, then acks (or terminates, for dead letters) every
// message of it; a failed write is naked with a growing delay. It knows nothing about SQLite or
// the Object Store.
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

// Completer completes decoded records that only refer to part of their content — results whose
// output lives in the Object Store — before their batch is written (see package output). The
// loop asks for sizes first, so that the bytes it holds stay within Config.OutputMemory, then
// completes the records a piece at a time. In both, errs is nil or has one entry per record: a
// non-nil entry means that record cannot be completed now, and it is naked and retried later.
type Completer interface {
	// Sizes reports about how many bytes completing each record will hold; sizes is nil when
	// no record needs completing.
	Sizes(ctx context.Context, recs []codec.Record) (sizes []int64, errs []error)
	// Complete completes recs in place; a record with an error is left unchanged.
	Complete(ctx context.Context, recs []codec.Record) (errs []error)
}

// Stats counts what a Loop has done since it started. The zero value is ready to use.
type Stats struct {
	Fetched      atomic.Uint64 // messages received
	Acked        atomic.Uint64 // messages projected and acked
	DeadLettered atomic.Uint64 // messages dead-lettered and terminated
	Naked        atomic.Uint64 // messages naked after a failed write, or whose output could not be fetched
	Batches      atomic.Uint64 // batches committed
	Pending      atomic.Uint64 // the consumer's NumPending, as of the latest message fetched
}

// Loop is one projection: a durable consumer feeding a WriteFunc.
type Loop struct {
	cfg       Config
	js        jetstream.JetStream
	write     WriteFunc
	completer Completer
	budget    *budget // of what completer fetched; nil without one
	bind      BindOptions
	log       *slog.Logger

	tp         trace.TracerProvider // nil: no tracing
	mp         metric.MeterProvider // nil: no metrics
	watchEvery time.Duration
	obs        *observer

	bindMu    sync.Mutex              // one EnsureConsumer at a time: the fetch stage's or watch's
	binding   atomic.Pointer[Binding] // the durable as last bound
	bound     atomic.Bool             // Run holds the durable
	unhealthy atomic.Pointer[error]   // why the durable cannot be trusted now; nil: it can

	// Stats is updated as the loop runs; read it at any time.
	Stats Stats
}

// Option configures a Loop.
type Option func(*Loop)

// WithCompleter sets what completes records before they are written.
func WithCompleter(c Completer) Option { return func(l *Loop) { l.completer = c } }

// WithReplay makes the loop recreate a durable that has acknowledged messages before, so the
// whole stream is projected again (see EnsureConsumer). Set it when the database is empty.
func WithReplay(replay bool) Option { return func(l *Loop) { l.bind.Replay = replay } }

// WithLedger ties the durable to the ledger's database and keeps its safe point there (see
// Ledger and EnsureConsumer).
func WithLedger(ledger Ledger) Option { return func(l *Loop) { l.bind.Ledger = ledger } }

// WithAdopt lets the loop take over a durable that feeds another database (see
// BindOptions.Adopt).
func WithAdopt(adopt bool) Option { return func(l *Loop) { l.bind.Adopt = adopt } }

// WithCreateStream sets what creates the stream when it does not exist (see
// BindOptions.CreateStream); without it a missing stream is waited for.
func WithCreateStream(create func(ctx context.Context) error) Option {
	return func(l *Loop) { l.bind.CreateStream = create }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(l *Loop) { l.log = log } }

// New returns a loop for one projection. It does no I/O; call Run.
func New(cfg Config, js jetstream.JetStream, write WriteFunc, opts ...Option) *Loop {
	l := &Loop{cfg: cfg, js: js, write: write, log: slog.Default(), watchEvery: DefaultWatchInterval}
	for _, o := range opts {
		o(l)
	}
	l.log = l.log.With("projection", cfg.Kind.String(), "stream", cfg.Stream, "durable", cfg.Durable)
	if l.completer != nil {
		l.budget = newBudget(cfg.outputMemory())
	}
	tp, mp := l.tp, l.mp
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	var err error
	var held func() int64
	if l.budget != nil {
		held = l.budget.held
	}
	if l.obs, err = newObserver(cfg, tp, mp, held); err != nil {
		l.log.Warn("some metrics are disabled", "err", err)
	}
	return l
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

// fetched is one batch between the fetch and the write stage.
type fetched struct {
	msgs    []jetstream.Msg
	recs    []codec.Record
	bytes   int            // payload bytes, and output bytes a Completer added
	held    int64          // bytes taken from the loop's budget, given back once settled
	decodes []decodeTiming // one per fetch (and output fetch) grouped in
}

// Names of the stages a decodeTiming times.
const (
	stageDecode = "decode"
	stageOutput = "fetch output"
)

// decodeTiming is what the telemetry needs of one fetch's decoding, or of fetching the output
// a piece of it needed.
type decodeTiming struct {
	stage      string
	start, end time.Time
	n          int   // messages decoded, or completed
	naked      int   // messages naked because their output could not be fetched
	terminated int   // messages terminated for lack of JetStream metadata
	err        error // the first error of the naked ones
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
	cons, err := l.rebind(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	l.bind.Replay = false // once: a durable bound again later is not replayed again
	defer l.bound.Store(false)
	l.log.Info("projecting", "filter", l.cfg.FilterSubject, "batch", l.cfg.BatchSize, "wait", l.cfg.MaxWait)

	// fctx ends the fetch stage: with ctx, or when the durable turns out not to be this
	// instance's to consume (its cause, then returned).
	fctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	// The fetch stage may run GroupBatches ahead: the write stage takes them in one transaction.
	ch := make(chan *fetched, l.cfg.groupBatches())
	var wg sync.WaitGroup
	if l.watchEvery > 0 {
		wg.Add(1)
		go func() { // ends with fctx, as the fetch stage does
			defer wg.Done()
			l.watch(fctx, stop)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		if err := l.fetchLoop(fctx, cons, ch); err != nil {
			stop(err)
		}
	}()
	l.writeLoop(ctx, ch)
	wg.Wait()
	if err := context.Cause(fctx); ctx.Err() == nil && err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// rebind binds the durable (again), marking the loop unbound meanwhile, and records the
// binding. It returns an error only when ctx ends or binding can never succeed.
func (l *Loop) rebind(ctx context.Context) (jetstream.Consumer, error) {
	l.bindMu.Lock()
	defer l.bindMu.Unlock()
	l.bound.Store(false)
	b, err := l.bindRetrying(ctx)
	if err != nil {
		return nil, err
	}
	l.binding.Store(&b)
	l.bound.Store(true)
	return b.Consumer, nil
}

// bindRetrying calls EnsureConsumer until it succeeds, backing off on failure. Only what can
// never succeed — a configuration the server refuses outright, a durable that feeds another
// database — is returned as an error.
func (l *Loop) bindRetrying(ctx context.Context) (Binding, error) {
	bo := l.newBackoff(5 * time.Second)
	for attempt := 0; ; attempt++ {
		b, err := EnsureConsumer(ctx, l.js, l.cfg, l.bind, l.log)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return Binding{}, ctx.Err()
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code == 400 || errors.Is(err, ErrForeignDurable) {
			return Binding{}, err // retrying changes nothing
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
			return Binding{}, ctx.Err()
		}
	}
}

// fetchLoop fetches batches, decodes them and hands them to the write stage until ctx ends. It
// returns an error when a vanished durable can never be bound again.
func (l *Loop) fetchLoop(ctx context.Context, cons jetstream.Consumer, out chan<- *fetched) error {
	bo := l.newBackoff(5 * time.Second)
	cbo := l.newBackoff(l.cfg.RetryMax) // the nak delay of results whose output could not be fetched
	failing := false
	for ctx.Err() == nil {
		start := time.Now()
		msgs, err := l.fetch(cons)
		l.obs.received(start, len(msgs), err)
		if len(msgs) > 0 {
			if f := l.prepare(msgs); f != nil {
				// The write stage drains until we close: sending never blocks for good.
				l.complete(ctx, f, out, cbo)
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
			c, err := l.rebind(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			cons = c
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
	return nil
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

// prepare turns messages into decoded records. Messages that are not JetStream messages are
// terminated (they cannot be acked or recorded).
func (l *Loop) prepare(msgs []jetstream.Msg) *fetched {
	l.Stats.Fetched.Add(uint64(len(msgs)))
	dt := decodeTiming{stage: stageDecode, start: time.Now()}
	f := &fetched{msgs: msgs[:0], recs: make([]codec.Record, 0, len(msgs))}
	var pending uint64
	redelivered := 0
	created := l.binding.Load().StreamCreated
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
			Stream:        md.Stream,
			Seq:           md.Sequence.Stream,
			StreamCreated: created,
			Subject:       m.Subject(),
			Published:     md.Timestamp,
			Payload:       m.Data(),
			Header:        m.Headers(),
			Kind:          l.cfg.Kind,
		}
		r.Decode()
		pending = md.NumPending
		f.msgs = append(f.msgs, m)
		f.recs = append(f.recs, r)
		f.bytes += len(r.Payload)
	}
	l.Stats.Pending.Store(pending)
	if redelivered > 0 {
		l.obs.redeliveries(redelivered)
	}
	if len(f.msgs) == 0 {
		return nil
	}
	dt.end, dt.n = time.Now(), len(f.msgs)
	f.decodes = append(f.decodes, dt)
	return f
}

// complete fetches the output the records of f need and sends f on to the write stage, in
// pieces that each hold at most OutputMemory of output, taking it from the budget first (so
// the write stage gives it back before more is fetched). Records whose output cannot be
// fetched now are naked with a delay from bo, which grows while fetching keeps failing.
func (l *Loop) complete(ctx context.Context, f *fetched, out chan<- *fetched, bo *backoff.ExponentialBackOff) {
	if l.completer == nil {
		out <- f
		return
	}
	start := time.Now()
	sizes, errs := l.completer.Sizes(ctx, f.recs)
	if sizes == nil && errs == nil {
		out <- f
		return
	}
	if sizes == nil {
		sizes = make([]int64, len(f.recs))
	}
	// Messages wait here for the budget and for the objects: keep them from being redelivered.
	stop := l.keepAlive(f.msgs)
	defer stop()
	dt := &f.decodes[0]
	f, sizes = l.dropFailed(f, sizes, errs, dt, bo)
	for first := true; len(f.msgs) > 0; first = false {
		// The longest prefix within the budget, and at least one record.
		n, held := 1, sizes[0]
		for n < len(f.msgs) && held+sizes[n] <= l.budget.total {
			held += sizes[n]
			n++
		}
		piece := &fetched{msgs: f.msgs[:n], recs: f.recs[:n]}
		rest := &fetched{msgs: f.msgs[n:], recs: f.recs[n:]}
		restSizes := sizes[n:]
		if first {
			piece.decodes = f.decodes
		} else {
			start = time.Now()
		}
		if err := l.budget.take(ctx, held); err != nil {
			// Shutting down: whatever is not fetched yet comes back soon, to this or another instance.
			l.nak(f.msgs, l.cfg.RetryInitial)
			return
		}
		piece.held = min(held, l.budget.total)
		ct := decodeTiming{stage: stageOutput, start: start}
		errs := l.completer.Complete(ctx, piece.recs)
		pieceSizes := sizes[:n]
		piece, pieceSizes = l.dropFailed(piece, pieceSizes, errs, &ct, bo)
		if errs == nil {
			bo.Reset()
		}
		ct.end, ct.n = time.Now(), len(piece.msgs)
		piece.decodes = append(piece.decodes, ct)
		if len(piece.msgs) == 0 {
			l.budget.give(piece.held)
		} else {
			for i := range piece.recs {
				piece.bytes += len(piece.recs[i].Payload)
			}
			for _, s := range pieceSizes {
				piece.bytes += int(s)
			}
			out <- piece
		}
		f, sizes = rest, restSizes
	}
}

// dropFailed naks the messages of f whose record has an error in errs and returns f without
// them (a new batch, f is not changed), with their sizes dropped too. The naks are recorded in dt.
func (l *Loop) dropFailed(f *fetched, sizes []int64, errs []error, dt *decodeTiming, bo *backoff.ExponentialBackOff) (*fetched, []int64) {
	if errs == nil {
		return f, sizes
	}
	kept := &fetched{msgs: make([]jetstream.Msg, 0, len(f.msgs)), recs: make([]codec.Record, 0, len(f.recs)),
		decodes: f.decodes, held: f.held, bytes: f.bytes}
	keptSizes := make([]int64, 0, len(sizes))
	var failed []jetstream.Msg
	var first error
	for i, err := range errs {
		if err == nil {
			kept.msgs = append(kept.msgs, f.msgs[i])
			kept.recs = append(kept.recs, f.recs[i])
			keptSizes = append(keptSizes, sizes[i])
			continue
		}
		failed = append(failed, f.msgs[i])
		if first == nil {
			first = err
		}
	}
	if len(failed) == 0 {
		return f, sizes
	}
	d := bo.NextBackOff()
	l.log.Warn("cannot fetch the output of some results: naking them", "count", len(failed), "first_err", first, "redeliver_in", d)
	l.nak(failed, d)
	l.obs.resolveFailed(len(failed))
	if dt.naked == 0 {
		dt.err = first
	}
	dt.naked += len(failed)
	return kept, keptSizes
}

// nak naks msgs, to be redelivered after d.
func (l *Loop) nak(msgs []jetstream.Msg, d time.Duration) {
	for _, m := range msgs {
		m.NakWithDelay(d)
	}
	l.Stats.Naked.Add(uint64(len(msgs)))
}

// keepAlive sends InProgress on msgs every AckWait/3 until the returned function is called.
func (l *Loop) keepAlive(msgs []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(max(l.cfg.AckWait/3, time.Second))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				for _, m := range msgs {
					m.InProgress() // refused, harmlessly, for a message already acked
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
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
			l.nak(f.msgs, d)
			l.giveBack(f)
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
		dead := l.settle(pctx, f, rejected)
		l.giveBack(f)
		if dead > 0 {
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
		all.held += g.held
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

// giveBack returns the output bytes f held to the budget: f is settled or naked.
func (l *Loop) giveBack(f *fetched) {
	if f.held > 0 {
		l.budget.give(f.held)
		f.held = 0
	}
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
