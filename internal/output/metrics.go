package output

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of the resolver's metrics.
const ScopeName = "fanin/internal/output"

// Outcomes of reading one object: the values of OutcomeKey.
const (
	outcomeFetched    = "fetched"    // read whole
	outcomeTruncated  = "truncated"  // read up to MaxObjectBytes, the rest cut
	outcomeMissing    = "missing"    // the object or its bucket does not exist: a note was stored
	outcomeUnreadable = "unreadable" // it exists but cannot be read (bad digest or metadata): a note was stored
	outcomeFailed     = "failed"     // a transient failure: its result is retried later
)

// Attributes of the resolver's metrics.
const (
	OutcomeKey = attribute.Key("fanin.output.outcome")
	FieldKey   = attribute.Key("fanin.output.field") // stdout or stderr
)

// metrics are the resolver's instruments.
type metrics struct {
	objects  metric.Int64Counter     // fanin.output.objects{outcome, field}
	bytes    metric.Int64Counter     // fanin.output.bytes{field}
	duration metric.Float64Histogram // fanin.output.read.duration{outcome}
}

func newMetrics(mp metric.MeterProvider) (metrics, error) {
	meter := mp.Meter(ScopeName)
	objects, err1 := meter.Int64Counter("fanin.output.objects", metric.WithUnit("{object}"),
		metric.WithDescription("Output objects a result named, by outcome: fetched, truncated, missing, unreadable (both stored with a note) or failed (retried)"))
	bytes, err2 := meter.Int64Counter("fanin.output.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes of output text read from the Object Store"))
	duration, err3 := meter.Float64Histogram("fanin.output.read.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to look up and read one output object"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	m := metrics{objects, bytes, duration}
	if err := errors.Join(err1, err2, err3); err != nil {
		return m, err
	}
	m.zero(context.Background())
	return m, nil
}

// zero adds 0 to every counter for each label set, so that a resolver that has read nothing
// yet exposes its series at 0 rather than none (rate() and absent() alerts then work from the
// start).
func (m metrics) zero(ctx context.Context) {
	for _, field := range []string{"stdout", "stderr"} {
		f := FieldKey.String(field)
		for _, outcome := range []string{outcomeFetched, outcomeTruncated, outcomeMissing, outcomeUnreadable, outcomeFailed} {
			m.objects.Add(ctx, 0, metric.WithAttributes(OutcomeKey.String(outcome), f))
		}
		m.bytes.Add(ctx, 0, metric.WithAttributes(f))
	}
}

func (m metrics) record(ctx context.Context, field, outcome string, n int64, d time.Duration) {
	if m.objects == nil {
		return
	}
	// The read is done: a cancelled batch context must not drop its measurements.
	ctx = context.WithoutCancel(ctx)
	f := FieldKey.String(field)
	m.objects.Add(ctx, 1, metric.WithAttributes(OutcomeKey.String(outcome), f))
	if n > 0 {
		m.bytes.Add(ctx, n, metric.WithAttributes(f))
	}
	m.duration.Record(ctx, d.Seconds(), metric.WithAttributes(OutcomeKey.String(outcome)))
}
