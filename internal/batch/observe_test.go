package batch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"fanin/internal/batch"
	"fanin/internal/natstest"
)

// telemetry is an in-memory tracer and meter for a loop under test.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	opts   []batch.Option
}

func newTelemetry(t *testing.T) *telemetry {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(sr),
		sdktrace.WithRawSpanLimits(unlimitedLinks()))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	return &telemetry{spans: sr, reader: reader, opts: []batch.Option{
		batch.WithLogger(quiet), batch.WithTracerProvider(tp), batch.WithMeterProvider(mp),
		batch.WithWatchInterval(50 * time.Millisecond),
	}}
}

func unlimitedLinks() sdktrace.SpanLimits {
	l := sdktrace.NewSpanLimits()
	l.LinkCountLimit = -1
	return l
}

// ended returns the ended spans named name.
func (tel *telemetry) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tel.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// collect reads the metrics now.
func (tel *telemetry) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// matches reports whether set has every key = value of want.
func matches(set attribute.Set, want map[string]string) bool {
	for k, v := range want {
		got, ok := set.Value(attribute.Key(k))
		if !ok || got.Emit() != v {
			return false
		}
	}
	return true
}

// sum adds the points of the counter (or the counts of the histogram, or the values of the
// gauge) name whose attributes match want; found is false when no such point exists.
func sum(rm metricdata.ResourceMetrics, name string, want map[string]string) (total float64, found bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes, want) {
						total, found = total+float64(p.Value), true
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes, want) {
						total, found = total+float64(p.Count), true
					}
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes, want) {
						total, found = total+float64(p.Count), true
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes, want) {
						total, found = total+float64(p.Value), true
					}
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes, want) {
						total, found = total+p.Value, true
					}
				}
			}
		}
	}
	return total, found
}

func traceID(i int) trace.TraceID {
	id, _ := trace.TraceIDFromHex(fmt.Sprintf("%032x", 0xabc000+i))
	return id
}

func spanID(i int) trace.SpanID {
	id, _ := trace.SpanIDFromHex(fmt.Sprintf("%016x", 0xdef000+i))
	return id
}

// publishTraced publishes n started events; message i carries a traceparent naming traceID(i),
// under the key spelling key(i) ("" for no header at all).
func publishTraced(t *testing.T, js jetstream.JetStream, n int, key func(i int) string) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		msg := &nats.Msg{Subject: fmt.Sprintf("events.started.e.pc-%d", i), Data: startedPayload(i)}
		if k := key(i); k != "" {
			msg.Header = nats.Header{}
			msg.Header[k] = []string{fmt.Sprintf("00-%s-%s-01", traceID(i), spanID(i))}
			msg.Header["tracestate"] = []string{"vendor=x"}
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
}

func attrOf(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func TestProcessSpanLinksEveryMessageToItsProducerInEitherHeaderSpelling(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	const n = 150
	// Lowercase as W3C and most non-Go clients write it, canonical as Go's HeaderCarrier does,
	// and every tenth message without any trace context.
	publishTraced(t, js, n, func(i int) string {
		switch {
		case i%10 == 9:
			return ""
		case i%2 == 0:
			return "traceparent"
		default:
			return "Traceparent"
		}
	})

	tel := newTelemetry(t)
	w := newRecorder()
	l := batch.New(testConfig(), js, w, tel.opts...)
	stop := run(t, l)
	natstest.Eventually(t, 20*time.Second, "all messages written and acked", func() bool {
		return w.distinct() == n && natstest.ConsumerDrained(t, js, "EVENTS", "backend_events_projector")
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	process := tel.ended("process EVENTS")
	if len(process) == 0 {
		t.Fatal("no process span")
	}
	linked := map[trace.TraceID]int{}
	messages := 0
	for _, s := range process {
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("process span kind %s, want consumer", s.SpanKind())
		}
		for key, want := range map[string]string{
			"messaging.system": "nats", "messaging.operation.name": "process", "messaging.operation.type": "process",
			"messaging.destination.name": "EVENTS", "messaging.consumer.group.name": "backend_events_projector",
		} {
			if v, ok := attrOf(s, key); !ok || v.Emit() != want {
				t.Errorf("process span %s = %q, want %q", key, v.Emit(), want)
			}
		}
		count, ok := attrOf(s, "messaging.batch.message_count")
		if !ok {
			t.Fatal("process span lacks messaging.batch.message_count")
		}
		messages += int(count.AsInt64())
		for _, link := range s.Links() {
			linked[link.SpanContext.TraceID()]++
			if !link.SpanContext.IsRemote() || link.SpanContext.TraceState().Get("vendor") != "x" {
				t.Errorf("link %v: want a remote context with its tracestate", link.SpanContext)
			}
		}
		if s.Status().Code == codes.Error {
			t.Errorf("clean batch has status %v", s.Status())
		}
	}
	if messages != n {
		t.Errorf("process spans count %d messages, want %d", messages, n)
	}
	for i := range n {
		want := 1
		if i%10 == 9 {
			want = 0
		}
		if got := linked[traceID(i)]; got != want {
			t.Errorf("message %d: %d links to its producer's trace, want %d", i, got, want)
		}
	}
	if len(linked) != n-n/10 {
		t.Errorf("%d distinct linked traces, want %d", len(linked), n-n/10)
	}

	// Receive spans are separate roots of kind client; the children hang under process.
	receive := tel.ended("receive EVENTS")
	if len(receive) == 0 || receive[0].SpanKind() != trace.SpanKindClient {
		t.Fatalf("receive spans: %d, want at least one of kind client", len(receive))
	}
	parents := map[trace.SpanID]bool{}
	for _, s := range process {
		parents[s.SpanContext().SpanID()] = true
	}
	for _, name := range []string{"decode", "transaction", "ack EVENTS"} {
		children := tel.ended(name)
		if len(children) == 0 {
			t.Errorf("no %q span", name)
		}
		for _, c := range children {
			if !parents[c.Parent().SpanID()] {
				t.Errorf("%q span is not a child of a process span", name)
			}
		}
	}
	if ack := tel.ended("ack EVENTS"); len(ack) > 0 && ack[0].SpanKind() != trace.SpanKindClient {
		t.Errorf("ack span kind %s, want client", ack[0].SpanKind())
	}
}

// TestMetricsFollowAScriptedRun drives one loop through a good batch, a poison message and a
// failing database, and checks that each metric moves as it should.
func TestMetricsFollowAScriptedRun(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	tel := newTelemetry(t)
	w := newRecorder()
	var (
		mu    sync.Mutex
		fails int
	)
	w.fail = func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return errors.New("database is locked")
		}
		return nil
	}
	l := batch.New(testConfig(), js, w, tel.opts...)
	run(t, l)
	drained := func() bool { return natstest.ConsumerDrained(t, js, "EVENTS", "backend_events_projector") }
	ours := map[string]string{"projection": "started", "messaging.destination.name": "EVENTS",
		"messaging.consumer.group.name": "backend_events_projector", "messaging.system": "nats"}
	value := func(rm metricdata.ResourceMetrics, name string, extra ...string) float64 {
		want := map[string]string{}
		for k, v := range ours {
			want[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			want[extra[i]] = extra[i+1]
		}
		v, _ := sum(rm, name, want)
		return v
	}

	// 1. A good batch.
	publish(t, js, 100)
	natstest.Eventually(t, 20*time.Second, "good batch acked", drained)
	// The server may count the acks before the loop has recorded the batch it just settled.
	var rm metricdata.ResourceMetrics
	natstest.Eventually(t, 5*time.Second, "the settled batch recorded", func() bool {
		rm = tel.collect(t)
		return value(rm, "fanin.messages.acked") == 100
	})
	if got := value(rm, "messaging.client.consumed.messages", "messaging.operation.name", "receive"); got != 100 {
		t.Errorf("consumed %v, want 100", got)
	}
	if got := value(rm, "fanin.messages.acked"); got != 100 {
		t.Errorf("acked %v, want 100", got)
	}
	for _, name := range []string{"fanin.batch.size", "fanin.transaction.duration", "messaging.process.duration", "messaging.client.operation.duration"} {
		if got := value(rm, name); got < 1 {
			t.Errorf("%s recorded %v times, want at least once", name, got)
		}
	}
	if lag, ok := sum(rm, "fanin.lag", ours); !ok || lag < 0 || lag > 60 {
		t.Errorf("lag %v (present %v), want a few seconds at most", lag, ok)
	}
	// The backlog gauges are refreshed every 50ms here: they reach zero once drained.
	natstest.Eventually(t, 5*time.Second, "backlog gauges at zero", func() bool {
		rm := tel.collect(t)
		pending, ok := sum(rm, "fanin.consumer.num_pending", ours)
		ackPending, ok2 := sum(rm, "fanin.consumer.num_ack_pending", ours)
		_, ok3 := sum(rm, "fanin.consumer.num_redelivered", ours)
		return ok && ok2 && ok3 && pending == 0 && ackPending == 0
	})

	// 2. Poison: dead-lettered by reason, the batch's spans marked failed.
	if _, err := js.Publish(context.Background(), "events.started.e.bad", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*time.Second, "poison terminated", func() bool {
		rm := tel.collect(t)
		return drained() && value(rm, "fanin.messages.dead_lettered") == 1 &&
			value(rm, "messaging.process.duration", "error.type", "dead_letter") == 1
	})
	rm = tel.collect(t)
	if got := value(rm, "fanin.messages.dead_lettered", "reason", "poison", "field", "payload"); got != 1 {
		t.Errorf("dead letters with reason poison, field payload: %v, want 1", got)
	}
	if got := value(rm, "messaging.process.duration", "error.type", "dead_letter"); got != 1 {
		t.Errorf("process durations with error.type dead_letter: %v, want 1", got)
	}
	var deadSpan bool
	for _, s := range tel.ended("process EVENTS") {
		if v, _ := attrOf(s, "error.type"); v.Emit() == "dead_letter" && s.Status().Code == codes.Error {
			deadSpan = true
		}
	}
	if !deadSpan {
		t.Error("no process span with error status and error.type dead_letter")
	}

	// 3. A busy database: the batch is naked, retried, and lands.
	mu.Lock()
	fails = 2
	mu.Unlock()
	publish(t, js, 50)
	natstest.Eventually(t, 20*time.Second, "batch landed after the failures", func() bool {
		return drained() && value(tel.collect(t), "fanin.messages.acked") == 150
	})
	rm = tel.collect(t)
	if got := value(rm, "fanin.messages.naked", "reason", "write_failed"); got < 50 {
		t.Errorf("naked %v, want at least 50", got)
	}
	if got := value(rm, "fanin.messages.redelivered"); got < 50 {
		t.Errorf("redelivered %v, want at least 50", got)
	}
	if got := value(rm, "fanin.transaction.duration", "error.type", "_OTHER"); got != 2 {
		t.Errorf("failed transactions %v, want 2", got)
	}
	if got := value(rm, "messaging.client.consumed.messages"); got < 201 {
		t.Errorf("consumed %v, want every delivery (at least 201)", got)
	}
	var failed, failedTx bool
	for _, s := range tel.ended("process EVENTS") {
		if s.Status().Code == codes.Error && s.Status().Description == "database is locked" {
			failed = true
		}
	}
	for _, s := range tel.ended("transaction") {
		if v, _ := attrOf(s, "error.type"); s.Status().Code == codes.Error && v.Emit() == "_OTHER" {
			failedTx = true
		}
	}
	if !failed || !failedTx {
		t.Errorf("failed batch: process span with error status %v, transaction span with error.type %v", failed, failedTx)
	}
}

func TestHeaderCarrierIgnoresCase(t *testing.T) {
	h := batch.HeaderCarrier(nats.Header{"traceparent": {"lower"}, "Tracestate": {"canon"}})
	for key, want := range map[string]string{"traceparent": "lower", "Traceparent": "lower", "TRACESTATE": "canon", "baggage": ""} {
		if got := h.Get(key); got != want {
			t.Errorf("Get(%q) = %q, want %q", key, got, want)
		}
	}
	h.Set("traceparent", "new")
	h.Set("tracestate", "s")
	if len(h) != 2 || h["traceparent"][0] != "new" || h["tracestate"][0] != "s" {
		t.Errorf("after Set: %v, want each key once, as given", map[string][]string(h))
	}
	if keys := h.Keys(); len(keys) != 2 {
		t.Errorf("Keys() = %v", keys)
	}
}

func TestLoopReportsWhetherItIsBound(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	l := batch.New(testConfig(), js, newRecorder(), batch.WithLogger(quiet))
	stop := run(t, l)
	time.Sleep(100 * time.Millisecond)
	if l.Bound() {
		t.Fatal("bound before its stream exists")
	}
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	natstest.Eventually(t, 10*time.Second, "bound", l.Bound)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if l.Bound() {
		t.Fatal("still bound after Run returned")
	}
}
