package batch

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"

	"fanin/internal/store"
)

// maxTermReason bounds the reason a termination sends the server.
const maxTermReason = 200

// settle acks the projected messages of a committed batch and terminates its dead letters.
// ctx and span are the batch's process span.
func (l *Loop) settle(ctx context.Context, span trace.Span, f *fetched, dead []store.DeadLetter) {
	aspan := l.obs.startAck(ctx)
	defer aspan.End()
	var why map[int]error // the dead letters, by index; nil (the usual case): none
	if len(dead) > 0 {
		why = make(map[int]error, len(dead))
		for _, d := range dead {
			why[d.Index] = d.Err
		}
	}
	for i, m := range f.msgs {
		if err, ok := why[i]; ok {
			reason := err.Error()
			if len(reason) > maxTermReason {
				reason = reason[:maxTermReason]
			}
			term(l.nc, m, "fanin dead letter: "+reason)
			continue
		}
		// Ack is fire-and-forget: a lost ack only means a redelivery, which changes nothing.
		ack(l.nc, m)
	}
	l.release(len(f.msgs))
	acked := len(f.msgs) - len(why)
	l.Stats.Acked.Add(uint64(acked))
	l.Stats.DeadLettered.Add(uint64(len(why)))
	l.obs.settled(ctx, span, aspan, f.recs, dead, acked)
	if len(dead) > 0 {
		l.log.WarnContext(ctx, "dead-lettered messages", "count", len(dead), "first_reason", dead[0].Err.Error())
	}
}

// nak naks msgs, to be redelivered after d.
func (l *Loop) nak(msgs []msgRef, d time.Duration) {
	for _, m := range msgs {
		nakWithDelay(l.nc, m, d)
	}
	l.Stats.Naked.Add(uint64(len(msgs)))
	l.release(len(msgs))
}

// inProgress tells the server msgs are still being worked on, resetting their AckWait.
func (l *Loop) inProgress(msgs []msgRef) {
	for _, m := range msgs {
		progress(l.nc, m) // refused, harmlessly, for a message already acked
	}
}

// giveBack returns the bytes f held to the budget: f is settled or naked.
func (l *Loop) giveBack(f *fetched) {
	if f.held > 0 {
		l.budget.give(f.held)
		f.held = 0
	}
}
