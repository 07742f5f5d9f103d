package batch_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"fanin/internal/batch"
	"fanin/internal/natstest"
)

// logCounter is a slog.Handler that counts records by message.
type logCounter struct {
	mu   sync.Mutex
	msgs map[string]int
}

func newLogCounter() *logCounter { return &logCounter{msgs: map[string]int{}} }

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCounter) WithGroup(string) slog.Handler            { return c }
func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs[r.Message]++
	return nil
}

func (c *logCounter) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msgs[msg]
}

// A stream deleted under a running loop takes its durable with it, and nothing may create it
// again here (no CreateStream): the loop must wait for it with backoff — one warning, not a
// line per attempt, a handful of attempts rather than a busy loop, unready all the while — and
// carry on, losing nothing, once the stream is back.
func TestDurableWhoseStreamIsGoneIsWaitedForWithBackoff(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 20)

	logs := newLogCounter()
	w := newRecorder()
	l := batch.New(testConfig(), js, w, batch.WithLogger(slog.New(logs)), batch.WithWatchInterval(50*time.Millisecond))
	stop := run(t, l)
	natstest.Eventually(t, 10*time.Second, "the first messages written", func() bool { return w.distinct() == 20 })
	if err := l.Ready(); err != nil {
		t.Fatalf("Ready() = %v while projecting", err)
	}

	if err := js.DeleteStream(context.Background(), "EVENTS"); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "the loop unready", func() bool { return l.Ready() != nil })
	const waitFor = 2 * time.Second
	time.Sleep(waitFor)
	if err := l.Ready(); err == nil {
		t.Fatal("Ready() = nil with the stream gone")
	}
	const waiting = "stream does not exist: waiting for it to be created"
	if n := logs.count(waiting); n != 1 {
		t.Errorf("%q logged %d times in %s, want once", waiting, n, waitFor)
	}
	// RetryInitial 100ms, growing to 5s: about 6 attempts in 2s. A busy loop makes thousands.
	if n := logs.count("cannot bind the durable yet"); n > 15 {
		t.Errorf("%d bind attempts in %s: not backing off", n, waitFor)
	}

	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 20) // the new stream's sequences 1..20 again
	natstest.Eventually(t, 20*time.Second, "ready again", func() bool { return l.Ready() == nil })
	natstest.Eventually(t, 20*time.Second, "the new stream projected", func() bool {
		return natstest.ConsumerDrained(t, js, "EVENTS", testConfig().Durable)
	})
	if got := logs.count("durable bound again"); got == 0 {
		t.Error("binding again was not logged")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := l.Stats.Acked.Load(); got != 40 {
		t.Errorf("acked %d, want 40: 20 before the stream went, 20 after it came back", got)
	}
}

// Run leaves nothing behind: once it returns, every goroutine it started (the stages, the
// watch, keep-alives, Fetch's subscriptions) has ended, with the server and the connection
// still up (the durable deleted). The gauges' callback is checked in TestOutputFetchingIsTraced.
func TestRunReleasesEverythingItStarted(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "RESULTS", "results.>")
	publishResults(t, js, 50, 10)
	before := goleak.IgnoreCurrent()

	w := newRecorder()
	tel := newTelemetry(t)
	l := batch.New(resultsConfig(), js, w, append(tel.opts, batch.WithCompleter(newFakeOutput(1<<10)))...)
	stop := run(t, l)
	natstest.Eventually(t, 30*time.Second, "every result written", func() bool { return w.distinct() == 50 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The durable's own goroutines live in the server, as long as it does: delete it.
	if err := js.DeleteConsumer(context.Background(), "RESULTS", resultsConfig().Durable); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
}
