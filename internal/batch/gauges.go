package batch

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// gauges holds what the loop's observable gauges report at collection time: the end-to-end lag
// and the durable's backlog as last read.
type gauges struct {
	newest atomic.Int64 // JetStream timestamp (unix ns) of the newest message committed; 0: none yet

	backlogRead   atomic.Bool // the backlog below has been read at least once
	numPending    atomic.Int64
	numAckPending atomic.Int64
	numRedeliv    atomic.Int64

	meter                        metric.Meter
	opt                          metric.MeasurementOption
	lag                          metric.Float64ObservableGauge
	pending, ackPending, redeliv metric.Int64ObservableGauge
	held                         metric.Int64ObservableGauge // nil: no Completer
}

// newGauges creates the lag and backlog gauges on m, all with the attributes opt, and, when
// completing, the gauge of the bytes the complete stage holds. They report nothing until
// observe registers their callback.
func newGauges(m *meterBuilder, opt metric.MeasurementOption, completing bool) *gauges {
	g := &gauges{meter: m.meter, opt: opt}
	g.lag = m.floatGauge("fanin.lag", "s",
		"Now minus the JetStream timestamp of the newest message committed: how far behind the producers the database is. It grows while the stream is quiet too; read it with fanin.consumer.num_pending.")
	g.pending = m.intGauge("fanin.consumer.num_pending", "{message}",
		"Messages in the stream the durable has not delivered yet (its NumPending), refreshed every few seconds.")
	g.ackPending = m.intGauge("fanin.consumer.num_ack_pending", "{message}",
		"Messages delivered and not yet acked (the durable's NumAckPending), refreshed every few seconds.")
	g.redeliv = m.intGauge("fanin.consumer.num_redelivered", "{message}",
		"Messages delivered more than once and not yet acked (the durable's NumRedelivered), refreshed every few seconds.")
	if completing {
		g.held = m.intGauge("fanin.output.held", "By",
			"Bytes of large output fetched and not yet committed and acked; at CompleteMemory, fetching waits for commits.")
	}
	return g
}

// observe registers the gauges' callback, reading b for the bytes held (b is nil without a
// Completer), and returns what unregisters it.
func (g *gauges) observe(b *budget) (unregister func(), err error) {
	instruments := []metric.Observable{g.lag, g.pending, g.ackPending, g.redeliv}
	if g.held != nil && b != nil {
		instruments = append(instruments, g.held)
	} else {
		b = nil
	}
	reg, err := g.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if ns := g.newest.Load(); ns != 0 {
			o.ObserveFloat64(g.lag, time.Since(time.Unix(0, ns)).Seconds(), g.opt)
		}
		if g.backlogRead.Load() {
			o.ObserveInt64(g.pending, g.numPending.Load(), g.opt)
			o.ObserveInt64(g.ackPending, g.numAckPending.Load(), g.opt)
			o.ObserveInt64(g.redeliv, g.numRedeliv.Load(), g.opt)
		}
		if b != nil {
			o.ObserveInt64(g.held, b.held(), g.opt)
		}
		return nil
	}, instruments...)
	if err != nil {
		return func() {}, err
	}
	return func() { reg.Unregister() }, nil
}

// committed notes that messages up to the JetStream timestamp t are in the database.
func (g *gauges) committed(t time.Time) {
	if t.IsZero() {
		return
	}
	ns := t.UnixNano()
	for {
		old := g.newest.Load()
		if ns <= old || g.newest.CompareAndSwap(old, ns) {
			return
		}
	}
}

// backlog stores a consumer info's counts.
func (g *gauges) backlog(info *jetstream.ConsumerInfo) {
	g.numPending.Store(int64(info.NumPending))
	g.numAckPending.Store(int64(info.NumAckPending))
	g.numRedeliv.Store(int64(info.NumRedelivered))
	g.backlogRead.Store(true)
}

// meterBuilder creates instruments, replacing any the meter refuses by a no-op one and keeping
// the first error.
type meterBuilder struct {
	meter metric.Meter
	noop  noop.Meter
	err   error
}

func (m *meterBuilder) fail(err error) {
	if err != nil {
		m.err = errors.Join(m.err, err)
	}
}

func (m *meterBuilder) counter(name, unit, desc string) metric.Int64Counter {
	c, err := m.meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		m.fail(err)
		c, _ = m.noop.Int64Counter(name)
	}
	return c
}

func (m *meterBuilder) histogram(name, unit, desc string, buckets []float64) metric.Float64Histogram {
	h, err := m.meter.Float64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc),
		metric.WithExplicitBucketBoundaries(buckets...))
	if err != nil {
		m.fail(err)
		h, _ = m.noop.Float64Histogram(name)
	}
	return h
}

func (m *meterBuilder) intHistogram(name, unit, desc string, buckets []float64) metric.Int64Histogram {
	h, err := m.meter.Int64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc),
		metric.WithExplicitBucketBoundaries(buckets...))
	if err != nil {
		m.fail(err)
		h, _ = m.noop.Int64Histogram(name)
	}
	return h
}

func (m *meterBuilder) floatGauge(name, unit, desc string) metric.Float64ObservableGauge {
	g, err := m.meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		m.fail(err)
		g, _ = m.noop.Float64ObservableGauge(name)
	}
	return g
}

func (m *meterBuilder) intGauge(name, unit, desc string) metric.Int64ObservableGauge {
	g, err := m.meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		m.fail(err)
		g, _ = m.noop.Int64ObservableGauge(name)
	}
	return g
}
