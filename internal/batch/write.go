package batch

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// Store commits batches of records, each in one transaction. Package sink is one.
type Store interface {
	// Write commits recs and reports what it did: which records it wrote as dead letters (to
	// be terminated; the others are acked) and its counts. An error means nothing may be
	// acked: the loop naks the whole batch with a delay and retries it later; parts of it may
	// have been committed, which the report counts. The records must not be kept after Write
	// returns.
	Write(ctx context.Context, recs []codec.Record) (store.Report, error)
}

// StoreFunc is a function that is a Store.
type StoreFunc func(ctx context.Context, recs []codec.Record) (store.Report, error)

// Write calls f.
func (f StoreFunc) Write(ctx context.Context, recs []codec.Record) (store.Report, error) {
	return f(ctx, recs)
}

// ConcurrentStore is a Store that takes several transactions of one projection at once: its
// Write may be called again before an earlier call returned, on batches touching the same
// rows, and leaves the tables as the calls one after the other would. PostgreSQL's store is
// one; SQLite's, with one writer at a time, is not.
type ConcurrentStore interface {
	Store
	// ConcurrentWriters is how many transactions of one projection it takes at once to best
	// effect: the Writers a Config leaving it zero gets.
	ConcurrentWriters() int
}

// storeWriters is the Writers a loop writing into st has by default: what st, when it is a
// ConcurrentStore, says serves it best, else 1.
func storeWriters(st Store) int {
	if cs, ok := st.(ConcurrentStore); ok {
		return min(max(cs.ConcurrentWriters(), 1), MaxWriters)
	}
	return 1
}

// writeStage runs the Writers of the loop, each writing and settling the batches it takes
// from in, until in is closed and every batch taken is settled.
func (l *Loop) writeStage(ctx context.Context, in <-chan *fetched) {
	var wg sync.WaitGroup
	for i := range l.writeSince {
		wg.Go(func() { l.writer(ctx, in, &l.writeSince[i]) })
	}
	wg.Wait()
}

// writer writes each batch that comes in, grouped with those waiting behind it, and settles
// its messages, until in is closed. since holds when its write under way started. Each writer
// has a backoff of its own: the nak delays grow with its own failures in a row.
func (l *Loop) writer(ctx context.Context, in <-chan *fetched, since *atomic.Int64) {
	// Writes are never interrupted: a batch in hand at shutdown is committed and acked.
	wctx := context.WithoutCancel(ctx)
	bo := l.newBackoff(l.cfg.RetryMax)
	var next *fetched
	for {
		f := next
		next = nil
		if f == nil {
			var ok bool
			if f, ok = <-in; !ok {
				return
			}
		}
		f = l.group(f, in)
		if d, failed := l.write(wctx, f, bo, since); failed {
			// The naked batch comes back after d, however long; the writer itself tries the
			// next batch sooner, so the batches queued behind it are written (or naked) well
			// within their AckWait instead of expiring unseen.
			next = l.pause(ctx, min(d, l.cfg.AckWait/3), in)
		}
	}
}

// write commits f in one transaction of the store and settles it: acks and terminations when
// it committed, a nak with the next delay of bo when it failed (reported, with the delay).
// The store's report is recorded here, once: metrics, spans and the loop's health. since
// holds the write's start while it lasts.
func (l *Loop) write(ctx context.Context, f *fetched, bo *backoff.ExponentialBackOff, since *atomic.Int64) (delay time.Duration, failed bool) {
	since.Store(time.Now().UnixNano())
	defer since.Store(0)
	pctx, span, start := l.obs.startProcess(ctx, f)
	tctx, tspan, tstart := l.obs.startTransaction(pctx, len(f.recs))
	rep, err := l.store.Write(tctx, f.recs)
	l.wrote(&writeOutcome{at: time.Now(), err: err})
	l.obs.wrote(tctx, tspan, tstart, rep, err)
	if err != nil {
		delay = bo.NextBackOff()
		l.log.WarnContext(pctx, "write failed: naking the batch", "err", err, "messages", len(f.msgs), "redeliver_in", delay)
		l.nak(f.msgs, delay)
		l.giveBack(f)
		l.obs.writeFailed(pctx, span, len(f.msgs), delay, err)
		l.obs.endProcess(pctx, span, start, errorType(err).Value.AsString())
		return delay, true
	}
	bo.Reset()
	l.settle(pctx, span, f, rep.DeadLetters)
	l.giveBack(f)
	errType := ""
	if len(rep.DeadLetters) > 0 {
		errType = "dead_letter"
	}
	l.obs.endProcess(pctx, span, start, errType)
	return 0, false
}

// wrote records how a write ended as the latest outcome, unless a write that ended later (in
// another writer) was recorded already.
func (l *Loop) wrote(w *writeOutcome) {
	for {
		old := l.lastWrite.Load()
		if old != nil && old.at.After(w.at) || l.lastWrite.CompareAndSwap(old, w) {
			return
		}
	}
}

// group adds to f the batches already waiting in in, up to GroupBatches in all: while the
// projection is behind, one transaction takes several fetches.
func (l *Loop) group(f *fetched, in <-chan *fetched) *fetched {
	more := l.waiting(in, f.bytes)
	if len(more) == 0 {
		return f
	}
	n := len(f.msgs)
	for _, g := range more {
		n += len(g.msgs)
	}
	// One allocation for the group: appending batch after batch would copy it again and again.
	all := &fetched{msgs: make([]msgRef, 0, n), recs: make([]codec.Record, 0, n)}
	for _, g := range append([]*fetched{f}, more...) {
		all.msgs = append(all.msgs, g.msgs...)
		all.recs = append(all.recs, g.recs...)
		all.stages = append(all.stages, g.stages...)
		all.bytes += g.bytes
		all.held += g.held
	}
	return all
}

// waiting returns the batches already waiting in in, up to GroupBatches-1 and until the group
// holds four times MaxBatchBytes, without blocking.
func (l *Loop) waiting(in <-chan *fetched, bytes int) []*fetched {
	var more []*fetched
	for len(more) < l.cfg.groupBatches()-1 && bytes < 4*l.cfg.MaxBatchBytes {
		select {
		case g, ok := <-in:
			if !ok {
				return more
			}
			more = append(more, g)
			bytes += g.bytes
		default:
			return more
		}
	}
	return more
}

// pause waits d after a failed write, so a failing database is not hammered. A batch the fetch
// stage hands over meanwhile is held, with InProgress sent on its messages so the server does
// not redeliver them, and returned to be written next. The pause ends early when ctx ends.
func (l *Loop) pause(ctx context.Context, d time.Duration, in <-chan *fetched) *fetched {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(max(l.cfg.AckWait/3, time.Second))
	defer tick.Stop()
	var held *fetched
	recv := in
	for {
		select {
		case <-ctx.Done():
			return held
		case <-timer.C:
			return held
		case f, ok := <-recv:
			if !ok {
				return held
			}
			held, recv = f, nil
		case <-tick.C:
			if held != nil {
				l.inProgress(held.msgs)
			}
		}
	}
}
