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
}

// newGauges registers the lag and backlog gauges on meter, all with the attributes opt, and,
// when held is not nil, the gauge of the output bytes the loop holds.
func newGauges(m *meterBuilder, opt metric.MeasurementOption, held func() int64) *gauges {
	g := &gauges{}
	lag := m.floatGauge("fanin.lag", "s",
		"Now minus the JetStream timestamp of the newest message committed: how far behind the producers the database is. It grows while the stream is quiet too; read it with fanin.consumer.num_pending.")
	pending := m.intGauge("fanin.consumer.num_pending", "{message}",
		"Messages in the stream the durable has not delivered yet (its NumPending), refreshed every few seconds.")
	ackPending := m.intGauge("fanin.consumer.num_ack_pending", "{message}",
		"Messages delivered and not yet acked (the durable's NumAckPending), refreshed every few seconds.")
	redeliv := m.intGauge("fanin.consumer.num_redelivered", "{message}",
		"Messages delivered more than once and not yet acked (the durable's NumRedelivered), refreshed every few seconds.")
	instruments := []metric.Observable{lag, pending, ackPending, redeliv}
	var outputHeld metric.Int64ObservableGauge
	if held != nil {
		outputHeld = m.intGauge("fanin.output.held", "By",
			"Bytes of large output fetched and not yet committed and acked; at --output-memory, fetching waits for commits.")
		instruments = append(instruments, outputHeld)
	}
	_, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if ns := g.newest.Load(); ns != 0 {
			o.ObserveFloat64(lag, time.Since(time.Unix(0, ns)).Seconds(), opt)
		}
		if g.backlogRead.Load() {
			o.ObserveInt64(pending, g.numPending.Load(), opt)
			o.ObserveInt64(ackPending, g.numAckPending.Load(), opt)
			o.ObserveInt64(redeliv, g.numRedeliv.Load(), opt)
		}
		if held != nil {
			o.ObserveInt64(outputHeld, held(), opt)
		}
		return nil
	}, instruments...)
	m.fail(err)
	return g
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
