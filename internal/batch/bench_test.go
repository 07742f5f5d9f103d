package batch_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/natstest"
	"fanin/internal/store"
)

// BenchmarkLoopTracing drains a backlog of traced messages with tracing off (the default no-op
// provider) and on (every span sampled, batched to a no-op exporter, one link per message),
// with a writer that does nothing: the worst case for tracing's share of the cost. Compare the
// msg/s of the two:
//
//	go test -run '^$' -bench LoopTracing -benchtime 5x ./internal/batch
func BenchmarkLoopTracing(b *testing.B) {
	const n = 20000
	for _, tracing := range []bool{false, true} {
		b.Run(fmt.Sprintf("tracing=%v", tracing), func(b *testing.B) {
			srv := natstest.Run(b)
			_, js := natstest.Connect(b, srv.ClientURL())
			natstest.CreateStream(b, js, "EVENTS", "events.>")
			var opts []batch.Option
			if tracing {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithRawSpanLimits(unlimitedLinks()))
				b.Cleanup(func() { tp.Shutdown(context.Background()) })
				opts = append(opts, batch.WithTracerProvider(tp))
			}
			cfg := testConfig()
			cfg.BatchSize = 1000
			var elapsed, cpu time.Duration
			for i := range b.N {
				publishTracedAsync(b, js, n)
				cfg.Durable = fmt.Sprintf("bench_%d", i)
				write := batch.StoreFunc(func(_ context.Context, recs []codec.Record) (store.Report, error) {
					return store.Report{}, nil
				})
				l := batch.New(cfg, js, write, append(opts, batch.WithLogger(quiet))...)
				start, cpu0 := time.Now(), cpuTime()
				stop := run(b, l)
				natstest.Eventually(b, time.Minute, "drained", func() bool { return l.Stats.Acked.Load() >= uint64(n*(i+1)) })
				elapsed, cpu = elapsed+time.Since(start), cpu+cpuTime()-cpu0
				stop()
			}
			msgs := float64(n * b.N * (b.N + 1) / 2) // each fresh durable drains the whole stream
			b.ReportMetric(msgs/elapsed.Seconds(), "msg/s")
			b.ReportMetric(float64(cpu.Microseconds())/msgs, "cpu-µs/msg")
		})
	}
}

// cpuTime returns the CPU time the process (the loop and the embedded server) has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// publishTracedAsync publishes n started events, each with a lowercase traceparent.
func publishTracedAsync(b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	for i := range n {
		msg := &nats.Msg{Subject: fmt.Sprintf("events.started.e.pc-%d", i), Data: startedPayload(i),
			Header: nats.Header{"traceparent": {fmt.Sprintf("00-%s-%s-01", traceID(i), spanID(i))}}}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publish did not complete")
	}
}
