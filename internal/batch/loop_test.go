package batch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/natstest"
	"fanin/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded server and the client keep a few goroutines alive until GC.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).processOpErr"),
	)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder is a Store that keeps every record it is given, and can be told to fail or
// reject.
type recorder struct {
	mu      sync.Mutex
	seqs    map[uint64]int // stream seq → times written
	calls   int
	fail    func(call int) error
	reject  func(r codec.Record) string
	blockCh chan struct{} // when set, each write waits for it
	entered atomic.Int32  // writes begun
}

func newRecorder() *recorder { return &recorder{seqs: map[uint64]int{}} }

func (w *recorder) Write(ctx context.Context, recs []codec.Record) (store.Report, error) {
	w.entered.Add(1)
	if w.blockCh != nil {
		<-w.blockCh
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.fail != nil {
		if err := w.fail(w.calls); err != nil {
			return store.Report{}, err
		}
	}
	var rep store.Report
	for i, r := range recs {
		w.seqs[r.Seq]++
		if r.Poison != nil {
			rep.DeadLetters = append(rep.DeadLetters, store.DeadLetter{Index: i, Err: r.Poison})
		} else if w.reject != nil {
			if reason := w.reject(r); reason != "" {
				rep.DeadLetters = append(rep.DeadLetters, store.DeadLetter{Index: i, Err: errors.New(reason)})
			}
		}
	}
	return rep, nil
}

func (w *recorder) distinct() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seqs)
}

func testConfig() batch.Config {
	c := batch.Started()
	c.BatchSize = 100
	c.MaxWait = 50 * time.Millisecond
	c.AckWait = 6 * time.Second
	c.RetryInitial = 20 * time.Millisecond
	c.RetryMax = 200 * time.Millisecond
	return c
}

func startedPayload(i int) []byte {
	return fmt.Appendf(nil, `{"result_id":"r-%d","request_id":"q","exec_id":"e","pc_id":"pc-%d","started_at":"2026-05-20T12:00:00Z","manifest_id":"m","version":"1"}`, i, i)
}

func publish(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	for i := range n {
		if _, err := js.PublishAsync(fmt.Sprintf("events.started.e.pc-%d", i), startedPayload(i)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("publish did not complete")
	}
}

// run starts the loop and returns a stop function that cancels it and waits for Run to return.
func run(t testing.TB, l *batch.Loop) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				err = errors.New("Run did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestLoopWritesEveryMessageAndAcksThem(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 1050)

	w := newRecorder()
	l := batch.New(testConfig(), js, w, batch.WithLogger(quiet))
	stop := run(t, l)
	natstest.Eventually(t, 20*time.Second, "all messages acked", func() bool {
		return w.distinct() == 1050 && natstest.ConsumerDrained(t, js, "EVENTS", "backend_events_projector")
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := l.Stats.Acked.Load(); got != 1050 {
		t.Fatalf("acked %d, want 1050", got)
	}
	// 11 fetches at least; the write stage may group fetches waiting behind a commit into one
	// transaction, so there may be fewer writes, but never many more.
	if w.calls > 22 {
		t.Fatalf("%d writes for 1050 messages at --batch 100: batches were not filled as expected", w.calls)
	}
}

func TestLoopNaksFailedWritesAndRetriesUntilTheyLand(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 300)

	w := newRecorder()
	w.fail = func(call int) error {
		if call <= 4 {
			return errors.New("database is locked")
		}
		return nil
	}
	l := batch.New(testConfig(), js, w, batch.WithLogger(quiet))
	run(t, l)
	natstest.Eventually(t, 30*time.Second, "all messages written after the failures", func() bool {
		return w.distinct() == 300 && natstest.ConsumerDrained(t, js, "EVENTS", "backend_events_projector")
	})
	if got := l.Stats.Naked.Load(); got == 0 {
		t.Fatal("failed writes were not naked")
	}
}

func TestLoopTerminatesRejectedMessages(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 200)
	ctx := context.Background()
	if _, err := js.Publish(ctx, "events.started.e.bad", []byte("not json")); err != nil {
		t.Fatal(err)
	}

	w := newRecorder()
	w.reject = func(r codec.Record) string {
		if r.Seq%50 == 0 {
			return "refused"
		}
		return ""
	}
	l := batch.New(testConfig(), js, w, batch.WithLogger(quiet))
	run(t, l)
	natstest.Eventually(t, 20*time.Second, "consumer drained", func() bool {
		return natstest.ConsumerDrained(t, js, "EVENTS", "backend_events_projector")
	})
	if got, want := l.Stats.DeadLettered.Load(), uint64(4+1); got != want {
		t.Fatalf("dead-lettered %d, want %d", got, want)
	}
	// Terminated messages are never redelivered.
	time.Sleep(200 * time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	for seq, n := range w.seqs {
		if n != 1 {
			t.Fatalf("seq %d written %d times, want once", seq, n)
		}
	}
}

func TestLoopWaitsForAMissingStream(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())

	w := newRecorder()
	l := batch.New(testConfig(), js, w, batch.WithLogger(quiet))
	run(t, l)
	time.Sleep(300 * time.Millisecond) // the loop is waiting, with backoff, not crashing
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 10)
	natstest.Eventually(t, 20*time.Second, "messages written once the stream exists", func() bool {
		return w.distinct() == 10
	})
}

func TestShutdownFinishesTheBatchInHand(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 100)

	w := newRecorder()
	w.blockCh = make(chan struct{})
	l := batch.New(testConfig(), js, w, batch.WithLogger(quiet))
	stop := run(t, l)
	natstest.Eventually(t, 10*time.Second, "a write begun", func() bool { return w.entered.Load() > 0 })

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond) // the loop is stopping, with a write blocked
	close(w.blockCh)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	// Everything fetched was written and acked before Run returned.
	if a := l.Stats.Acked.Load(); a == 0 || uint64(w.distinct()) != a {
		t.Fatalf("acked %d, written %d: the batch in hand was not finished", a, w.distinct())
	}
	cons, err := js.Consumer(context.Background(), "EVENTS", testConfig().Durable)
	if err != nil {
		t.Fatal(err)
	}
	// The acks are sent before Run returns; the server takes them in on its own goroutine.
	natstest.Eventually(t, 10*time.Second, "every message delivered acked", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0
	})
}

func TestEnsureConsumerReplaysTheStreamWhenAsked(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 50)

	w := newRecorder()
	l := batch.New(testConfig(), js, w, batch.WithLogger(quiet))
	stop := run(t, l)
	natstest.Eventually(t, 20*time.Second, "first pass acked", func() bool {
		return natstest.ConsumerDrained(t, js, "EVENTS", "backend_events_projector")
	})
	stop()

	// The database was wiped: the durable is recreated and the stream projected again.
	w2 := newRecorder()
	l2 := batch.New(testConfig(), js, w2, batch.WithLogger(quiet), batch.WithReplay(true))
	run(t, l2)
	natstest.Eventually(t, 20*time.Second, "second pass saw every message", func() bool { return w2.distinct() == 50 })

	// Without replay, a drained durable delivers nothing again.
	w3 := newRecorder()
	l3 := batch.New(testConfig(), js, w3, batch.WithLogger(quiet))
	stop3 := run(t, l3)
	time.Sleep(300 * time.Millisecond)
	stop3()
	if n := w3.distinct(); n != 0 {
		t.Fatalf("without replay %d messages were delivered again", n)
	}
}

func TestLargePayloadsBoundEachTransactionByBytes(t *testing.T) {
	srv := natstest.Run(t)
	nc, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	pad := strings.Repeat("x", 200<<10) // results carry up to 256 KiB of output inline
	for i := range 60 {
		p := fmt.Appendf(nil, `{"result_id":"r-%d","request_id":"q","exec_id":"e","pc_id":"pc-%d","started_at":"2026-05-20T12:00:00Z","manifest_id":"m","version":"1","padding":"%s"}`, i, i, pad)
		if _, err := js.PublishAsync(fmt.Sprintf("events.started.e.pc-%d", i), p); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()

	var (
		mu       sync.Mutex
		maxBytes int
		seen     = map[uint64]bool{}
	)
	write := batch.StoreFunc(func(ctx context.Context, recs []codec.Record) (store.Report, error) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range recs {
			n += len(r.Payload)
			seen[r.Seq] = true
		}
		maxBytes = max(maxBytes, n)
		return store.Report{}, nil
	})
	cfg := testConfig()
	cfg.MaxBatchBytes = 1 << 20
	l := batch.New(cfg, js, write, batch.WithLogger(quiet))
	run(t, l)
	natstest.Eventually(t, 20*time.Second, "every large message written", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 60 && natstest.ConsumerDrained(t, js, "EVENTS", "backend_events_projector")
	})
	// A fetch brings at most max(MaxBatchBytes, 2·max payload); a group stops past 4·MaxBatchBytes.
	limit := 4*cfg.MaxBatchBytes + 2*int(nc.MaxPayload())
	if maxBytes > limit {
		t.Fatalf("a transaction held %d bytes of payload, more than %d", maxBytes, limit)
	}
}
