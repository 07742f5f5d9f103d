package batch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// fetched is one batch on its way through the stages: its messages and their records, same
// index.
type fetched struct {
	msgs   []msgRef // what acking each message needs
	recs   []codec.Record
	bytes  int           // payload bytes, and bytes a Completer added
	held   int64         // bytes taken from the loop's budget, given back once settled
	stages []stageTiming // one per fetch decoded (and per piece completed) in it
}

// Names of the stages a stageTiming times.
const (
	stageDecode   = "decode"
	stageComplete = "complete"
)

// stageTiming is what the telemetry needs of one fetch's decoding, or of completing a piece of
// it.
type stageTiming struct {
	stage      string
	start, end time.Time
	n          int   // messages decoded, or completed
	naked      int   // messages naked because they could not be completed
	terminated int   // messages terminated for lack of JetStream metadata
	err        error // the first error of the naked ones
}

// fetchStage fetches batches, decodes them and completes them, sending each on to out, until
// ctx ends. A failed fetch is retried with backoff; a vanished durable is bound again. It
// returns an error only when the durable can never be bound again.
//
// Each fetch after a successful one is issued before the batch in hand is decoded and handed
// on, so the server delivers the next batch while this one is worked on instead of waiting
// for the next pull request. One fetch issued ahead at shutdown is still collected (it ends
// within MaxWait) and its batch written and settled like the others.
func (l *Loop) fetchStage(ctx context.Context, cons jetstream.Consumer, out chan<- *fetched) error {
	bo := l.newBackoff(min(5*time.Second, l.cfg.RetryMax)) // the pause after a failed fetch
	cbo := l.newBackoff(l.cfg.RetryMax)                    // the nak delay of records that could not be completed
	failing := false
	var ahead *pull // issued before the batch in hand was decoded; nil: none
	for ctx.Err() == nil || ahead != nil {
		l.heartbeat()
		p := ahead
		ahead = nil
		if p == nil {
			if !l.acquire(ctx, l.cfg.BatchSize) {
				return nil
			}
			p = l.issue(cons)
		}
		msgs, err := p.collect()
		l.release(l.cfg.BatchSize - len(msgs))
		l.obs.received(p.start, len(msgs), err)
		if err == nil && ctx.Err() == nil && l.tryAcquire(l.cfg.BatchSize) {
			ahead = l.issue(cons)
		}
		if f := l.decode(msgs); f != nil {
			// The write stage drains until out is closed: sending never blocks for good.
			l.complete(ctx, f, out, cbo)
		}
		switch {
		case err == nil:
			if failing {
				l.log.Info("fetching again")
				failing = false
			}
			bo.Reset()
		case errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound):
			l.log.Warn("durable vanished: binding it again", "err", err)
			c, err := l.rebind(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			cons = c
		default:
			d := bo.NextBackOff()
			if !failing {
				l.log.Warn("fetch failed: retrying with backoff", "err", err, "retry_in", d)
				failing = true
			} else {
				l.log.Debug("fetch failed again", "err", err, "retry_in", d)
			}
			sleep(ctx, d)
		}
	}
	return nil
}

// A pull is one fetch: a pull request for up to BatchSize messages, or whatever arrives within
// MaxWait, whose messages come in while the loop does other work.
type pull struct {
	start time.Time
	batch jetstream.MessageBatch
	err   error // the request could not be sent
}

// issue sends the pull request of one fetch.
func (l *Loop) issue(cons jetstream.Consumer) *pull {
	maxBytes := l.cfg.MaxBatchBytes
	if nc := l.js.Conn(); nc != nil {
		maxBytes = max(maxBytes, 2*int(nc.MaxPayload()))
	}
	p := &pull{start: time.Now()}
	p.batch, p.err = cons.Fetch(l.cfg.BatchSize, jetstream.FetchMaxWait(l.cfg.MaxWait), jetstream.FetchMaxBytes(maxBytes))
	return p
}

// collect waits for the fetch to end and returns its messages.
func (p *pull) collect() ([]jetstream.Msg, error) {
	if p.err != nil {
		return nil, fmt.Errorf("fetch: %w", p.err)
	}
	var msgs []jetstream.Msg
	for m := range p.batch.Messages() {
		if msgs == nil {
			msgs = make([]jetstream.Msg, 0, cap(p.batch.Messages()))
		}
		msgs = append(msgs, m)
	}
	if err := p.batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return msgs, fmt.Errorf("fetch: %w", err)
	}
	return msgs, nil
}

// decode turns messages into decoded records; it returns nil when none is left. Messages that
// are not JetStream messages are terminated: they can be neither acked nor recorded.
//
// The records keep only what their ack and a dead letter need: the header blocks and payloads
// of the batch are copied into one buffer, so the client's message buffers and header maps are
// left to the collector once decoded.
func (l *Loop) decode(msgs []jetstream.Msg) *fetched {
	if len(msgs) == 0 {
		return nil
	}
	st := stageTiming{stage: stageDecode, start: time.Now()}
	f := &fetched{msgs: make([]msgRef, 0, len(msgs)), recs: make([]codec.Record, 0, len(msgs))}
	size := 0
	for _, m := range msgs {
		size += store.HeaderLen(m.Headers()) + len(m.Data())
	}
	buf := make([]byte, 0, size)
	var pending uint64
	redelivered := 0
	created := l.binding.Load().StreamCreated
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			l.log.Error("message without JetStream metadata: terminating it", "subject", m.Subject(), "err", err)
			m.Term()
			l.release(1)
			st.terminated++
			continue
		}
		if md.NumDelivered > 1 {
			redelivered++
		}
		// The header block, then the payload, each capped so that appending to one never
		// writes over the next. buf has room for both: it never moves.
		h := len(buf)
		buf = store.AppendHeader(buf, m.Headers())
		p := len(buf)
		buf = append(buf, m.Data()...)
		header, payload := buf[h:p:p], buf[p:len(buf):len(buf)]
		if h == p {
			header = nil // no headers: SQL NULL
		}
		r := codec.Record{
			Stream:        md.Stream,
			Seq:           md.Sequence.Stream,
			StreamCreated: created,
			Subject:       m.Subject(),
			Published:     md.Timestamp,
			Payload:       payload,
			Header:        header,
			Kind:          l.cfg.Kind,
		}
		r.Decode()
		pending = md.NumPending
		ref := msgRef{reply: m.Reply()}
		if l.tp != nil {
			if sc := l.obs.producerContext(m.Headers()); sc.IsValid() {
				ref.link = &sc
			}
		}
		f.msgs = append(f.msgs, ref)
		f.recs = append(f.recs, r)
		f.bytes += len(r.Payload)
	}
	l.Stats.Pending.Store(pending)
	if redelivered > 0 {
		l.obs.redeliveries(redelivered)
	}
	if len(f.msgs) == 0 {
		return nil
	}
	st.end, st.n = time.Now(), len(f.msgs)
	f.stages = append(f.stages, st)
	return f
}
