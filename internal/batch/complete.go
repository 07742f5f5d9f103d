package batch

import (
	"context"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"fanin/internal/codec"
)

// Completer completes decoded records that only refer to part of their content (package output
// fetches the large output results name) before their batch is written. The loop asks for sizes
// first, so that the bytes it holds stay within Config.CompleteMemory, then completes the
// records a piece at a time. In both, errs is nil or has one entry per record: a non-nil entry
// means that record cannot be completed now, and it is naked and retried later.
type Completer interface {
	// Sizes reports about how many bytes completing each record will hold; sizes is nil when
	// no record needs completing.
	Sizes(ctx context.Context, recs []codec.Record) (sizes []int64, errs []error)
	// Complete completes recs in place; a record with an error is left unchanged.
	Complete(ctx context.Context, recs []codec.Record) (errs []error)
}

// WithCompleter sets what completes records before they are written.
func WithCompleter(c Completer) Option { return func(l *Loop) { l.completer = c } }

// complete has the Completer complete the records of f and sends f on to the write stage, in
// pieces that each hold at most CompleteMemory, taking it from the budget first (so the settle
// stage gives it back before more is held). Records that cannot be completed now are naked with
// a delay from bo, which grows while completing keeps failing.
func (l *Loop) complete(ctx context.Context, f *fetched, out chan<- *fetched, bo *backoff.ExponentialBackOff) {
	if l.completer == nil {
		out <- f
		return
	}
	start := time.Now()
	sizes, errs := l.completer.Sizes(ctx, f.recs)
	if sizes == nil && errs == nil {
		out <- f
		return
	}
	if sizes == nil {
		sizes = make([]int64, len(f.recs))
	}
	// Messages wait here for the budget and for the Completer: keep them from being redelivered.
	stop := l.keepAlive(f.msgs)
	defer stop()
	st := &f.stages[0]
	f, sizes = l.dropFailed(f, sizes, errs, st, bo)
	for first := true; len(f.msgs) > 0; first = false {
		// The longest prefix within the budget, and at least one record.
		n, held := 1, sizes[0]
		for n < len(f.msgs) && held+sizes[n] <= l.budget.total {
			held += sizes[n]
			n++
		}
		piece := &fetched{msgs: f.msgs[:n], recs: f.recs[:n]}
		rest := &fetched{msgs: f.msgs[n:], recs: f.recs[n:]}
		restSizes := sizes[n:]
		if first {
			piece.stages = f.stages
		} else {
			start = time.Now()
		}
		if err := l.budget.take(ctx, held); err != nil {
			// Shutting down: whatever is not completed yet comes back soon, to this or another instance.
			l.nak(f.msgs, l.cfg.RetryInitial)
			return
		}
		piece.held = min(held, l.budget.total)
		ct := stageTiming{stage: stageComplete, start: start}
		errs := l.completer.Complete(ctx, piece.recs)
		pieceSizes := sizes[:n]
		piece, pieceSizes = l.dropFailed(piece, pieceSizes, errs, &ct, bo)
		if errs == nil {
			bo.Reset()
		}
		ct.end, ct.n = time.Now(), len(piece.msgs)
		piece.stages = append(piece.stages, ct)
		if len(piece.msgs) == 0 {
			l.budget.give(piece.held)
		} else {
			for i := range piece.recs {
				piece.bytes += len(piece.recs[i].Payload)
			}
			for _, s := range pieceSizes {
				piece.bytes += int(s)
			}
			out <- piece
		}
		f, sizes = rest, restSizes
	}
}

// dropFailed naks the messages of f whose record has an error in errs and returns f without
// them (a new batch, f is not changed), with their sizes dropped too. The naks are recorded in st.
func (l *Loop) dropFailed(f *fetched, sizes []int64, errs []error, st *stageTiming, bo *backoff.ExponentialBackOff) (*fetched, []int64) {
	if errs == nil {
		return f, sizes
	}
	kept := &fetched{msgs: make([]msgRef, 0, len(f.msgs)), recs: make([]codec.Record, 0, len(f.recs)),
		stages: f.stages, held: f.held, bytes: f.bytes}
	keptSizes := make([]int64, 0, len(sizes))
	var failed []msgRef
	var first error
	for i, err := range errs {
		if err == nil {
			kept.msgs = append(kept.msgs, f.msgs[i])
			kept.recs = append(kept.recs, f.recs[i])
			keptSizes = append(keptSizes, sizes[i])
			continue
		}
		failed = append(failed, f.msgs[i])
		if first == nil {
			first = err
		}
	}
	if len(failed) == 0 {
		return f, sizes
	}
	d := bo.NextBackOff()
	l.log.Warn("cannot complete some records: naking them", "count", len(failed), "first_err", first, "redeliver_in", d)
	l.nak(failed, d)
	l.obs.completeFailed(len(failed))
	if st.naked == 0 {
		st.err = first
	}
	st.naked += len(failed)
	return kept, keptSizes
}

// keepAlive sends InProgress on msgs every AckWait/3 until the returned function is called.
func (l *Loop) keepAlive(msgs []msgRef) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(max(l.cfg.AckWait/3, time.Second))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				l.inProgress(msgs)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// budget bounds the bytes a loop holds of what a Completer added: the complete stage takes
// before it completes, the settle stage gives back once the batch is settled or naked.
type budget struct {
	mu    sync.Mutex
	free  int64
	total int64
	freed chan struct{} // closed, and replaced, whenever bytes are given back
}

func newBudget(total int64) *budget {
	return &budget{free: total, total: total, freed: make(chan struct{})}
}

// take waits until n bytes (at most the total) are free and takes them, or returns ctx's error.
func (b *budget) take(ctx context.Context, n int64) error {
	n = min(n, b.total)
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-freed:
		}
	}
}

// give returns n bytes taken before.
// tryTake takes n if it is free now, without waiting.
func (b *budget) tryTake(n int64) bool {
	n = min(n, b.total)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free < n {
		return false
	}
	b.free -= n
	return true
}

func (b *budget) give(n int64) {
	n = min(n, b.total)
	b.mu.Lock()
	b.free += n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// held reports the bytes taken and not given back.
func (b *budget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total - b.free
}
