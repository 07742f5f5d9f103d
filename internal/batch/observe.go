package batch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// ScopeName is the instrumentation scope of the loop's spans and metrics.
const ScopeName = "fanin/internal/batch"

// Attribute keys fanin adds to the messaging conventions. Metrics carry them as Prometheus
// labels of the same name.
const (
	// ProjectionKey names the projection: "started" or "result".
	ProjectionKey = attribute.Key("projection")
	// ReasonKey says why messages were dead-lettered ("poison": the payload can never decode;
	// "rejected": the database refused the row) or naked ("write_failed", "resolve_failed").
	ReasonKey = attribute.Key("reason")
	// FieldKey names the offending field of a poison message ("payload" when the payload as a
	// whole is wrong).
	FieldKey = attribute.Key("field")
)

// messagingSystemNATS is messaging.system for NATS (not an enumerated value in semconv).
var messagingSystemNATS = semconv.MessagingSystemKey.String("nats")

// Histogram buckets: seconds for durations, messages for batch sizes.
var (
	durationBuckets  = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	batchSizeBuckets = []float64{1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000}
)

// maxDeadLetterEvents bounds the span events one batch's dead letters add to its ack span.
const maxDeadLetterEvents = 32

// WithTracerProvider sets where the loop's spans go. The default, like a nil tp, records nothing
// and costs nothing per message. Per batch the loop makes a "receive <stream>" span (kind
// client, around a fetch that brought messages or failed) and a "process <stream>" span (kind
// consumer: decode, complete, transaction, ack) with one link per message to the producer's
// span, taken from its traceparent / tracestate headers, and child spans "decode", "complete"
// (with a Completer), "transaction" (the Store's Write, which receives it in its context, with
// what the store reported as attributes) and "ack <stream>". Spans with many links need a
// provider whose span limits allow them (the SDK keeps 128 links by default).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(l *Loop) { l.tp = tp } }

// WithMeterProvider sets where the loop's metrics go. The default, like a nil mp, records
// nothing; the backlog gauges are read by the loop's watch (WithWatchInterval).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(l *Loop) { l.mp = mp } }

// observer is a loop's tracing and metrics. With the no-op providers (the default) every method
// costs a few interface calls per batch and nothing per message.
type observer struct {
	tracer trace.Tracer
	prop   propagation.TraceContext

	receiveName, processName, ackName string
	spanAttrs                         []attribute.KeyValue // system, destination, consumer group
	metricAttrs                       []attribute.KeyValue // spanAttrs + projection

	baseOpt, receiveOpt, processOpt metric.MeasurementOption

	consumed     metric.Int64Counter
	receiveDur   metric.Float64Histogram
	processDur   metric.Float64Histogram
	txDur        metric.Float64Histogram
	batchSize    metric.Int64Histogram
	acked        metric.Int64Counter
	deadLettered metric.Int64Counter
	naked        metric.Int64Counter
	redelivered  metric.Int64Counter
	rows         metric.Int64Counter
	duplicates   metric.Int64Counter

	insertedOpt, updatedOpt, projectionOpt metric.MeasurementOption

	completing bool // the loop has a Completer: it may nak with reason resolve_failed
	gauges     *gauges
}

// newObserver builds the instruments of the loop for cfg. An instrument the meter refuses is
// replaced by a no-op one and reported in err; the loop runs either way.
func newObserver(cfg Config, tp trace.TracerProvider, mp metric.MeterProvider, completing bool) (_ *observer, err error) {
	o := &observer{
		tracer:      tp.Tracer(ScopeName),
		receiveName: "receive " + cfg.Stream,
		processName: "process " + cfg.Stream,
		ackName:     "ack " + cfg.Stream,
		spanAttrs: []attribute.KeyValue{
			messagingSystemNATS,
			semconv.MessagingDestinationName(cfg.Stream),
			semconv.MessagingConsumerGroupName(cfg.Durable),
		},
		completing: completing,
	}
	o.metricAttrs = append(append([]attribute.KeyValue{}, o.spanAttrs...), ProjectionKey.String(cfg.Kind.String()))
	o.baseOpt = metric.WithAttributeSet(attribute.NewSet(o.metricAttrs...))
	o.receiveOpt = metric.WithAttributeSet(attribute.NewSet(o.with(semconv.MessagingOperationName("receive"))...))
	o.processOpt = metric.WithAttributeSet(attribute.NewSet(o.with(semconv.MessagingOperationName("process"))...))

	m := meterBuilder{meter: mp.Meter(ScopeName)}
	o.consumed = m.counter("messaging.client.consumed.messages", "{message}",
		"Messages fetched from the durable (each delivery counts, redeliveries too).")
	o.receiveDur = m.histogram("messaging.client.operation.duration", "s",
		"Duration of a fetch (receive): up to MaxWait when the stream is caught up.", durationBuckets)
	o.processDur = m.histogram("messaging.process.duration", "s",
		"Duration of processing a batch: decode, transaction and ack.", durationBuckets)
	o.txDur = m.histogram("fanin.transaction.duration", "s",
		"Duration of the write of one batch (one transaction, or more when a rejected row splits it).", durationBuckets)
	o.batchSize = m.intHistogram("fanin.batch.size", "{message}",
		"Messages per committed transaction.", batchSizeBuckets)
	o.acked = m.counter("fanin.messages.acked", "{message}",
		"Messages projected, committed and acked.")
	o.deadLettered = m.counter("fanin.messages.dead_lettered", "{message}",
		"Messages recorded in dead_letters and terminated, by reason.")
	o.naked = m.counter("fanin.messages.naked", "{message}",
		"Messages naked with a delay for redelivery, by reason.")
	o.redelivered = m.counter("fanin.messages.redelivered", "{message}",
		"Messages received again after an earlier delivery (retries after a nak, a crash or an expired AckWait).")
	o.rows = m.counter("fanin.rows.written", "{row}",
		"Rows of the projection inserted or updated, by operation.")
	o.duplicates = m.counter("fanin.duplicates.ignored", "{message}",
		"Messages that changed nothing: duplicates and redeliveries of what is already projected.")
	proj := ProjectionKey.String(cfg.Kind.String())
	o.insertedOpt = metric.WithAttributeSet(attribute.NewSet(proj, attribute.String("operation", "insert")))
	o.updatedOpt = metric.WithAttributeSet(attribute.NewSet(proj, attribute.String("operation", "update")))
	o.projectionOpt = metric.WithAttributeSet(attribute.NewSet(proj))
	o.gauges = newGauges(&m, o.baseOpt, completing)
	return o, m.err
}

// zero adds 0 to every counter for each label set known in advance, so that an idle
// projection exposes its series at 0 rather than none: rate() and absent() then read a healthy
// idle instance as such. A poison message's field cannot be known before it arrives: only
// reason="poison" with field="payload" (the payload as a whole) is created here, beside
// reason="rejected".
func (o *observer) zero(ctx context.Context) {
	o.consumed.Add(ctx, 0, o.receiveOpt)
	o.acked.Add(ctx, 0, o.baseOpt)
	o.redelivered.Add(ctx, 0, o.baseOpt)
	o.rows.Add(ctx, 0, o.insertedOpt)
	o.rows.Add(ctx, 0, o.updatedOpt)
	o.duplicates.Add(ctx, 0, o.projectionOpt)
	o.naked.Add(ctx, 0, metric.WithAttributes(o.with(ReasonKey.String("write_failed"))...))
	if o.completing {
		o.naked.Add(ctx, 0, metric.WithAttributes(o.with(ReasonKey.String("resolve_failed"))...))
	}
	o.deadLettered.Add(ctx, 0, metric.WithAttributes(o.with(ReasonKey.String("rejected"))...))
	o.deadLettered.Add(ctx, 0, metric.WithAttributes(o.with(ReasonKey.String("poison"), FieldKey.String("payload"))...))
}

// with returns the metric attributes plus extra, in a new slice.
func (o *observer) with(extra ...attribute.KeyValue) []attribute.KeyValue {
	return append(append(make([]attribute.KeyValue, 0, len(o.metricAttrs)+len(extra)), o.metricAttrs...), extra...)
}

// received records one fetch that started at start and brought n messages. A fetch that brought
// nothing and failed in no way (a caught-up stream, every MaxWait) makes no span.
func (o *observer) received(start time.Time, n int, err error) {
	ctx := context.Background()
	opt := o.receiveOpt
	if err != nil {
		opt = metric.WithAttributes(o.with(semconv.MessagingOperationName("receive"), errorType(err))...)
	}
	o.receiveDur.Record(ctx, time.Since(start).Seconds(), opt)
	if n > 0 {
		o.consumed.Add(ctx, int64(n), o.receiveOpt)
	}
	if n == 0 && err == nil {
		return
	}
	_, span := o.tracer.Start(ctx, o.receiveName, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start))
	if span.IsRecording() {
		span.SetAttributes(o.spanAttrs...)
		span.SetAttributes(semconv.MessagingOperationName("receive"), semconv.MessagingOperationTypeReceive,
			semconv.MessagingBatchMessageCount(n))
	}
	if err != nil {
		markError(span, err)
	}
	span.End()
}

// startProcess starts the process span of a batch, backdated to when its decoding began. When
// the span records, it gets one link per message to the producer's context (from the W3C
// traceparent / tracestate headers, in any spelling) and a child span per decoded fetch.
func (o *observer) startProcess(ctx context.Context, f *fetched) (_ context.Context, _ trace.Span, start time.Time) {
	start = time.Now()
	if len(f.stages) > 0 {
		start = f.stages[0].start
	}
	ctx, span := o.tracer.Start(ctx, o.processName, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithTimestamp(start), trace.WithNewRoot())
	if !span.IsRecording() {
		return ctx, span, start
	}
	span.SetAttributes(o.spanAttrs...)
	span.SetAttributes(semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess,
		semconv.MessagingBatchMessageCount(len(f.msgs)))
	for _, m := range f.msgs {
		if m.link != nil {
			span.AddLink(trace.Link{SpanContext: *m.link})
		}
	}
	for _, d := range f.stages {
		_, ds := o.tracer.Start(ctx, d.stage, trace.WithTimestamp(d.start),
			trace.WithAttributes(semconv.MessagingBatchMessageCount(d.n)))
		if d.naked > 0 {
			ds.AddEvent("nak", trace.WithAttributes(ReasonKey.String("resolve_failed"),
				attribute.Int("count", d.naked), attribute.String("error", d.err.Error())))
		}
		if d.terminated > 0 {
			ds.AddEvent("term", trace.WithAttributes(ReasonKey.String("no_metadata"), attribute.Int("count", d.terminated)))
		}
		ds.End(trace.WithTimestamp(d.end))
	}
	return ctx, span, start
}

// producerContext extracts the producer's span context from a message's headers.
func (o *observer) producerContext(h map[string][]string) trace.SpanContext {
	if len(h) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(o.prop.Extract(context.Background(), HeaderCarrier(h)))
}

// startTransaction starts the span of a batch's write.
func (o *observer) startTransaction(ctx context.Context, n int) (context.Context, trace.Span, time.Time) {
	ctx, span := o.tracer.Start(ctx, "transaction")
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingBatchMessageCount(n))
	}
	return ctx, span, time.Now()
}

// wrote records a write that started at start, from the store's report, and ends its span:
// the transaction's duration, the rows and duplicates counted (a failed write may have
// committed parts of its batch), and the database's side in the database conventions.
func (o *observer) wrote(ctx context.Context, span trace.Span, start time.Time, rep store.Report, err error) {
	opt := o.baseOpt
	if err != nil {
		opt = metric.WithAttributes(o.with(errorType(err))...)
	}
	o.txDur.Record(ctx, time.Since(start).Seconds(), opt)
	if rep.Inserted > 0 {
		o.rows.Add(ctx, int64(rep.Inserted), o.insertedOpt)
	}
	if rep.Updated > 0 {
		o.rows.Add(ctx, int64(rep.Updated), o.updatedOpt)
	}
	if rep.Unchanged > 0 {
		o.duplicates.Add(ctx, int64(rep.Unchanged), o.projectionOpt)
	}
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("db.system.name", rep.System),
			attribute.Int("fanin.rows.inserted", rep.Inserted),
			attribute.Int("fanin.rows.updated", rep.Updated),
			attribute.Int("fanin.rows.unchanged", rep.Unchanged),
			attribute.Int("fanin.dead_letters", len(rep.DeadLetters)),
			attribute.Int("fanin.transactions", rep.Transactions),
			attribute.Float64("fanin.commit.duration", rep.Commit.Seconds()),
		)
		if rep.Operation != "" {
			span.SetAttributes(attribute.String("db.operation.name", rep.Operation))
		}
		if rep.StatusCode != "" {
			span.SetAttributes(attribute.String("db.response.status_code", rep.StatusCode))
		}
	}
	if err != nil {
		markError(span, err)
	}
	span.End()
}

// writeFailed records that a batch of n messages was naked, to be redelivered after delay.
func (o *observer) writeFailed(ctx context.Context, span trace.Span, n int, delay time.Duration, err error) {
	o.naked.Add(ctx, int64(n), metric.WithAttributes(o.with(ReasonKey.String("write_failed"))...))
	if span.IsRecording() {
		span.AddEvent("nak", trace.WithAttributes(ReasonKey.String("write_failed"),
			attribute.Int("count", n), attribute.String("delay", delay.String())))
	}
	markError(span, err)
}

// completeFailed counts n messages naked because they could not be completed.
func (o *observer) completeFailed(n int) {
	o.naked.Add(context.Background(), int64(n), metric.WithAttributes(o.with(ReasonKey.String("resolve_failed"))...))
}

// redeliveries counts n messages received again.
func (o *observer) redeliveries(n int) {
	o.redelivered.Add(context.Background(), int64(n), o.baseOpt)
}

// endProcess ends a batch's process span, which started at start; errType is "" for a batch
// that went through cleanly.
func (o *observer) endProcess(ctx context.Context, span trace.Span, start time.Time, errType string) {
	opt := o.processOpt
	if errType != "" {
		opt = metric.WithAttributes(o.with(semconv.MessagingOperationName("process"), semconv.ErrorTypeKey.String(errType))...)
	}
	o.processDur.Record(ctx, time.Since(start).Seconds(), opt)
	span.End()
}

// startAck starts the span of a committed batch's settlement.
func (o *observer) startAck(ctx context.Context) trace.Span {
	_, span := o.tracer.Start(ctx, o.ackName, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(o.spanAttrs...)
		span.SetAttributes(semconv.MessagingOperationName("ack"), semconv.MessagingOperationTypeSettle)
	}
	return span
}

// settled records a committed batch on its process span and its ack span: its acked
// messages, its dead letters, and the newest JetStream timestamp in it, for the lag gauge.
func (o *observer) settled(ctx context.Context, span, ack trace.Span, recs []codec.Record, dead []store.DeadLetter, acked int) {
	o.acked.Add(ctx, int64(acked), o.baseOpt)
	o.batchSize.Record(ctx, int64(len(recs)), o.baseOpt)
	var newest time.Time
	for i := range recs {
		if recs[i].Published.After(newest) {
			newest = recs[i].Published
		}
	}
	o.gauges.committed(newest)
	if len(dead) == 0 {
		return
	}
	type key struct{ reason, field string }
	counts := map[key]int64{}
	for n, d := range dead {
		k := key{"rejected", ""}
		var pe *codec.PoisonError
		if errors.As(d.Err, &pe) {
			k = key{"poison", pe.Field}
			if k.field == "" {
				k.field = "payload"
			}
		}
		counts[k]++
		if n < maxDeadLetterEvents && ack.IsRecording() {
			ack.AddEvent("dead_letter", trace.WithAttributes(ReasonKey.String(k.reason),
				attribute.Int64("messaging.nats.stream_sequence", int64(recs[d.Index].Seq)), attribute.String("error", d.Err.Error())))
		}
	}
	for k, n := range counts {
		attrs := o.with(ReasonKey.String(k.reason))
		if k.field != "" {
			attrs = append(attrs, FieldKey.String(k.field))
		}
		o.deadLettered.Add(ctx, n, metric.WithAttributes(attrs...))
	}
	o.markDeadLetters(ack, len(dead))
	o.markDeadLetters(span, len(dead))
}

// markDeadLetters marks span, a batch's process or ack span, as failed for its n dead letters.
func (o *observer) markDeadLetters(span trace.Span, n int) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(semconv.ErrorTypeKey.String("dead_letter"))
	span.SetStatus(codes.Error, fmt.Sprintf("%d messages dead-lettered", n))
}

// markError records err on span: its status, error.type, and an exception event.
func markError(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(errorType(err))
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// errorType classifies err for the error.type attribute, with low cardinality: "canceled",
// "timeout", "disconnected", else the Go type of the innermost wrapped error (e.g.
// "sqlite3.Error"), or "_OTHER" for plain errors.
func errorType(err error) attribute.KeyValue {
	switch {
	case errors.Is(err, context.Canceled):
		return semconv.ErrorTypeKey.String("canceled")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return semconv.ErrorTypeKey.String("timeout")
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrNoServers):
		return semconv.ErrorTypeKey.String("disconnected")
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			break
		}
		err = u
	}
	switch t := fmt.Sprintf("%T", err); t {
	case "*errors.errorString", "*fmt.wrapError", "*errors.joinError":
		return semconv.ErrorTypeOther
	default:
		return semconv.ErrorTypeKey.String(t)
	}
}
