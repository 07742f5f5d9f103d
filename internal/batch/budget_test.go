package batch

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBudgetWaitsForBytesGivenBack(t *testing.T) {
	b := newBudget(100)
	ctx := context.Background()
	if err := b.take(ctx, 60); err != nil {
		t.Fatal(err)
	}
	taken := make(chan error, 1)
	go func() { taken <- b.take(ctx, 60) }()
	select {
	case err := <-taken:
		t.Fatalf("took 60 of the 40 left: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.give(60)
	if err := <-taken; err != nil {
		t.Fatal(err)
	}
	if got := b.held(); got != 60 {
		t.Fatalf("held %d, want 60", got)
	}

	// More than the whole budget is taken as the whole budget, once it is all free.
	b.give(60)
	if err := b.take(ctx, 500); err != nil || b.held() != 100 {
		t.Fatalf("take(500) of 100: err %v, held %d", err, b.held())
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.take(cctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("take with nothing free and the context ending: %v", err)
	}
	b.give(500)
	if got := b.held(); got != 0 {
		t.Fatalf("held %d after giving everything back", got)
	}
}
