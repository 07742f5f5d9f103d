package batch

import (
	"context"
	"fmt"
	"time"
)

// A Window bounds the messages several loops hold at once, from fetching them to settling
// them. Loops writing into one store commit one at a time: while one commits, the others need
// only a group ready behind it, not a whole MaxAckPending each. A loop alone behind fetches as
// far ahead as its MaxAckPending allows, when the window is no smaller. Share one Window
// between the loops of one store with WithWindow.
type Window struct {
	b *budget
}

// NewWindow returns a window of n messages.
func NewWindow(n int) *Window { return &Window{b: newBudget(int64(n))} }

// SharedWindow returns the window for loops of cfgs that write into one store: one and a half
// times the largest InFlight. Any one loop behind alone fetches as far ahead as its
// MaxAckPending allows, with room left for the others' fetches waiting for messages; two
// behind at once hold one and a half MaxAckPendings between them, not two. (A window of one
// MaxAckPending held them to transactions of a quarter of it: while one commits, the other
// waits with a group ready, and both fetch the next.)
func SharedWindow(cfgs ...Config) *Window {
	n := 0
	for _, c := range cfgs {
		n = max(n, c.InFlight())
	}
	return NewWindow(n + n/2)
}

// WithWindow makes the loop hold its messages within w, shared with the other loops given it.
func WithWindow(w *Window) Option { return func(l *Loop) { l.window = w } }

// InFlight is the most messages the durable delivers without their acks: MaxAckPending, or its
// default.
func (c Config) InFlight() int { return c.maxAckPending() }

// checkWindow reports a window too small for one fetch of the loop.
func (l *Loop) checkWindow() error {
	if l.window != nil && l.window.b.total < int64(l.cfg.BatchSize) {
		return fmt.Errorf("window of %d messages is smaller than BatchSize (%d)", l.window.b.total, l.cfg.BatchSize)
	}
	return nil
}

// acquire takes n messages of the window before a fetch, waiting while the other loops hold
// it; it reports false when ctx ended first. Waiting for them to settle is not being stuck:
// the fetch stage's heartbeat goes on.
func (l *Loop) acquire(ctx context.Context, n int) bool {
	if l.window == nil {
		return true
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := l.window.b.take(wctx, int64(n))
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		l.heartbeat()
	}
}

// tryAcquire takes n messages of the window if they are free now.
func (l *Loop) tryAcquire(n int) bool {
	return l.window == nil || l.window.b.tryTake(int64(n))
}

// release gives n messages back to the window: they were settled (acked, naked or
// terminated), or a fetch brought fewer than it took.
func (l *Loop) release(n int) {
	if l.window != nil && n > 0 {
		l.window.b.give(int64(n))
	}
}

// Held reports the messages taken from w and not given back: fetched and not yet settled.
func (w *Window) Held() int { return int(w.b.held()) }
