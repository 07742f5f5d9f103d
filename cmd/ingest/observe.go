package main

import (
	"context"
	"errors"
	"strconv"

	"github.com/mattn/go-sqlite3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/sink"
)

// scopeName is the instrumentation scope of what the write adapter records.
const scopeName = "fanin/cmd/ingest"

// writeMetrics counts what the sink reports for each write, per projection.
type writeMetrics struct {
	rows       metric.Int64Counter
	duplicates metric.Int64Counter
}

// newWriteMetrics creates the sink's instruments on mp.
func newWriteMetrics(mp metric.MeterProvider) (*writeMetrics, error) {
	m := mp.Meter(scopeName)
	rows, err1 := m.Int64Counter("fanin.rows.written", metric.WithUnit("{row}"),
		metric.WithDescription("execution_results rows inserted or updated, by operation."))
	dups, err2 := m.Int64Counter("fanin.duplicates.ignored", metric.WithUnit("{message}"),
		metric.WithDescription("Messages that changed nothing: duplicates and redeliveries of what is already projected."))
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &writeMetrics{rows: rows, duplicates: dups}, nil
}

// writer adapts the sink to the pull loop of one projection: it writes, then records the
// outcome for /readyz, the metrics, and on the "transaction" span the loop put in ctx.
func (a *app) writer(kind codec.Kind) batch.WriteFunc {
	proj := batch.ProjectionKey.String(kind.String())
	inserted := metric.WithAttributeSet(attribute.NewSet(proj, attribute.String("operation", "insert")))
	updated := metric.WithAttributeSet(attribute.NewSet(proj, attribute.String("operation", "update")))
	base := metric.WithAttributeSet(attribute.NewSet(proj))
	return func(ctx context.Context, recs []codec.Record) ([]string, error) {
		rep, err := a.db.Write(ctx, recs)
		a.health.wrote(err)
		// Parts of a failed write may have committed (a split batch): count what the report says.
		if rep.Inserted > 0 {
			a.metrics.rows.Add(ctx, int64(rep.Inserted), inserted)
		}
		if rep.Updated > 0 {
			a.metrics.rows.Add(ctx, int64(rep.Updated), updated)
		}
		if rep.Unchanged > 0 {
			a.metrics.duplicates.Add(ctx, int64(rep.Unchanged), base)
		}
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			annotate(span, rep, err)
		}
		return rep.Rejected, err
	}
}

// annotate describes a write on its span, in the database conventions.
func annotate(span trace.Span, rep sink.Report, err error) {
	span.SetAttributes(
		attribute.String("db.system.name", "sqlite"),
		attribute.String("db.operation.name", "BEGIN IMMEDIATE"),
		attribute.Int("fanin.rows.inserted", rep.Inserted),
		attribute.Int("fanin.rows.updated", rep.Updated),
		attribute.Int("fanin.rows.unchanged", rep.Unchanged),
		attribute.Int("fanin.dead_letters", rep.DeadLettered),
	)
	var se sqlite3.Error
	if errors.As(err, &se) {
		span.SetAttributes(attribute.String("db.response.status_code", strconv.Itoa(int(se.Code))))
	}
}
