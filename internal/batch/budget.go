package batch

import (
	"context"
	"sync"
)

// budget bounds the bytes a loop holds of what a Completer fetched: the fetch stage takes before
// it fetches, the write stage gives back once the batch is settled or naked.
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
