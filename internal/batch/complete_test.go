package batch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/natstest"
	"fanin/internal/store"
)

// fakeOutput is a Completer: results whose id starts with "big-" need size bytes each, and
// completing one sets its stdout to "completed". fail decides, per attempt, whether a record
// cannot be completed now.
type fakeOutput struct {
	size int64
	fail func(stage, id string, attempt int) bool

	mu          sync.Mutex
	attempts    map[string]int // result id → Complete calls that included it
	times       map[string][]time.Time
	outstanding int64 // completed and not yet written
	most        int64 // the most outstanding at once
}

func newFakeOutput(size int64) *fakeOutput {
	return &fakeOutput{size: size, attempts: map[string]int{}, times: map[string][]time.Time{}}
}

func (f *fakeOutput) needs(r codec.Record) bool {
	return r.Result != nil && strings.HasPrefix(r.Result.ResultID, "big-")
}

func (f *fakeOutput) Sizes(ctx context.Context, recs []codec.Record) ([]int64, []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var sizes []int64
	var errs []error
	for i, r := range recs {
		if !f.needs(r) {
			continue
		}
		if sizes == nil {
			sizes = make([]int64, len(recs))
		}
		sizes[i] = f.size
		id := r.Result.ResultID
		if f.fail != nil && f.fail("sizes", id, len(f.times[id])) {
			f.times[id] = append(f.times[id], time.Now())
			if errs == nil {
				errs = make([]error, len(recs))
			}
			errs[i] = errors.New("nats: no responders available for request")
		}
	}
	return sizes, errs
}

func (f *fakeOutput) Complete(ctx context.Context, recs []codec.Record) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for i := range recs {
		r := &recs[i]
		if !f.needs(*r) {
			continue
		}
		id := r.Result.ResultID
		f.attempts[id]++
		if f.fail != nil && f.fail("complete", id, len(f.times[id])) {
			f.times[id] = append(f.times[id], time.Now())
			if errs == nil {
				errs = make([]error, len(recs))
			}
			errs[i] = errors.New("nats: timeout")
			continue
		}
		r.Result.Stdout = "completed"
		f.outstanding += f.size
		f.most = max(f.most, f.outstanding)
	}
	return errs
}

// written is called by the write function with the records it committed.
func (f *fakeOutput) written(recs []codec.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range recs {
		if !f.needs(r) {
			continue
		}
		if r.Result.Stdout != "completed" {
			return fmt.Errorf("%s written before its output was fetched", r.Result.ResultID)
		}
		f.outstanding -= f.size
	}
	return nil
}

// resultsConfig is testConfig for the results projection.
func resultsConfig() batch.Config {
	c, r := testConfig(), batch.Results()
	c.Stream, c.Durable, c.FilterSubject, c.Kind = r.Stream, r.Durable, r.FilterSubject, r.Kind
	return c
}

// publishResults publishes n results; every every-th one is "big-<i>".
func publishResults(t *testing.T, js jetstream.JetStream, n, every int) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("r-%d", i)
		if i%every == 0 {
			id = fmt.Sprintf("big-%d", i)
		}
		p := fmt.Appendf(nil, `{"result_id":%q,"request_id":"q","pc_id":"pc-%d","exit_code":0,"stdout":"","stderr":"","started_at":"2026-05-20T12:00:00Z","finished_at":"2026-05-20T12:00:01Z","stdout_object":"q/%s/stdout"}`, id, i, id)
		if _, err := js.PublishAsync("results.q", p); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("publish did not complete")
	}
}

func TestFetchedOutputStaysWithinTheBudget(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "RESULTS", "results.>")
	publishResults(t, js, 200, 4) // 50 big ones

	const budget = 1 << 20
	out := newFakeOutput(300 << 10) // three fit in the budget, not four
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var writes, mostBig int
	var writeErr error
	write := batch.StoreFunc(func(ctx context.Context, recs []codec.Record) (store.Report, error) {
		time.Sleep(5 * time.Millisecond) // a slow commit: the fetch stage must wait for the budget
		mu.Lock()
		defer mu.Unlock()
		writes++
		big := 0
		for _, r := range recs {
			seen[r.Seq] = true
			if out.needs(r) {
				big++
			}
		}
		mostBig = max(mostBig, big)
		if err := out.written(recs); err != nil && writeErr == nil {
			writeErr = err
		}
		return store.Report{}, nil
	})
	cfg := resultsConfig()
	cfg.CompleteMemory = budget
	l := batch.New(cfg, js, write, batch.WithLogger(quiet), batch.WithCompleter(out))
	stop := run(t, l)
	natstest.Eventually(t, 30*time.Second, "every result written", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 200 && natstest.ConsumerDrained(t, js, "RESULTS", "backend_results_projector")
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	if out.most > budget {
		t.Fatalf("%d bytes of output held at once, budget %d", out.most, budget)
	}
	if mostBig != 3 {
		t.Fatalf("a transaction held at most %d big results, want 3 (as many as the budget allows)", mostBig)
	}
	if got := l.Stats.Acked.Load(); got != 200 || l.Stats.Naked.Load() != 0 {
		t.Fatalf("acked %d, naked %d; want 200 and 0", got, l.Stats.Naked.Load())
	}
}

func TestOutputThatCannotBeFetchedIsNakedWithBackoff(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "RESULTS", "results.>")
	publishResults(t, js, 100, 10)

	// big-30 fails once looking up its size, then three times fetching; the others never.
	const failures = 4
	out := newFakeOutput(1 << 10)
	out.fail = func(stage, id string, attempt int) bool {
		if id != "big-30" || attempt >= failures {
			return false
		}
		return stage == "sizes" && attempt == 0 || stage == "complete" && attempt > 0
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var writeErr error
	write := batch.StoreFunc(func(ctx context.Context, recs []codec.Record) (store.Report, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			seen[r.Seq]++
		}
		if err := out.written(recs); err != nil && writeErr == nil {
			writeErr = err
		}
		return store.Report{}, nil
	})
	cfg := resultsConfig()
	l := batch.New(cfg, js, write, batch.WithLogger(quiet), batch.WithCompleter(out))
	stop := run(t, l)
	natstest.Eventually(t, 30*time.Second, "every result written", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 100 && natstest.ConsumerDrained(t, js, "RESULTS", "backend_results_projector")
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	for seq, n := range seen {
		if n != 1 {
			t.Errorf("message %d written %d times, want once", seq, n)
		}
	}
	if got := l.Stats.Naked.Load(); got != failures {
		t.Fatalf("naked %d, want %d: only the failing record, once per failure", got, failures)
	}
	// Each redelivery came no sooner than its nak delay, which grows: 20 ms × 1.5^k, less the
	// backoff's ±50% jitter. (Lower bounds only: a slow machine cannot make this fail.)
	times := out.times["big-30"]
	if len(times) != failures {
		t.Fatalf("%d failed attempts recorded, want %d", len(times), failures)
	}
	d := float64(cfg.RetryInitial)
	for k := 1; k < len(times); k++ {
		if gap := times[k].Sub(times[k-1]); float64(gap) < 0.5*d {
			t.Errorf("attempt %d came %s after the previous one, before its nak delay (≥ %s)", k+1, gap, time.Duration(0.5*d))
		}
		d *= 1.5
	}
}

func TestOutputFetchingIsTraced(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "RESULTS", "results.>")
	publishResults(t, js, 50, 10)

	out := newFakeOutput(1 << 10)
	out.fail = func(stage, id string, attempt int) bool { return stage == "complete" && id == "big-20" && attempt == 0 }
	w := newRecorder()
	tel := newTelemetry(t)
	l := batch.New(resultsConfig(), js, w, append(tel.opts, batch.WithCompleter(out))...)
	stop := run(t, l)
	natstest.Eventually(t, 30*time.Second, "every result written", func() bool {
		return w.distinct() == 50 && natstest.ConsumerDrained(t, js, "RESULTS", "backend_results_projector")
	})
	running := tel.collect(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	parents := map[string]bool{}
	for _, s := range tel.ended("process RESULTS") {
		parents[s.SpanContext().SpanID().String()] = true
	}
	spans := tel.ended("complete")
	if len(spans) == 0 {
		t.Fatal("no complete span")
	}
	naks := 0
	for _, s := range spans {
		if !parents[s.Parent().SpanID().String()] {
			t.Error("a complete span is not a child of a process span")
		}
		for _, e := range s.Events() {
			if e.Name == "nak" {
				naks++
			}
		}
	}
	if naks != 1 {
		t.Errorf("%d nak events on complete spans, want 1", naks)
	}
	if got, _ := sum(running, "fanin.messages.naked", map[string]string{"reason": "resolve_failed"}); got != 1 {
		t.Errorf("fanin.messages.naked{reason=resolve_failed} = %v, want 1", got)
	}
	if got, found := sum(running, "fanin.output.held", nil); !found || got != 0 {
		t.Errorf("fanin.output.held = %v (reported: %v), want 0 once everything is acked", got, found)
	}
	// Run has returned: its gauges' callback is unregistered, nothing reads the loop any more.
	after := tel.collect(t)
	for _, name := range []string{"fanin.output.held", "fanin.lag"} {
		if got, found := sum(after, name, nil); found {
			t.Errorf("%s = %v reported after Run returned: its callback is still registered", name, got)
		}
	}
}
