package batch

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

// msgRef is what the loop keeps of a fetched message once it is decoded: the subject that its
// ack, nak, progress or termination is published to, and the producer's span context when
// tracing is on and the message carried one. The message itself — the client's struct, its
// header map, its bookkeeping — is left to the collector: the record keeps what a dead letter
// needs (payload, headers, subject), so a message in flight costs only what it must.
type msgRef struct {
	reply string
	link  *trace.SpanContext // nil: no tracing, or no valid producer context
}

// The bodies of JetStream's acknowledgements (the protocol jetstream.Msg speaks).
var (
	ackBody      = []byte("+ACK")
	progressBody = []byte("+WPI")
)

// ack acks m: fire-and-forget, as jetstream.Msg.Ack; a lost ack only means a redelivery.
func ack(nc *nats.Conn, m msgRef) { nc.Publish(m.reply, ackBody) }

// term terminates m with reason, as jetstream.Msg.TermWithReason.
func term(nc *nats.Conn, m msgRef, reason string) { nc.Publish(m.reply, []byte("+TERM "+reason)) }

// nakWithDelay naks m to be redelivered after d, as jetstream.Msg.NakWithDelay.
func nakWithDelay(nc *nats.Conn, m msgRef, d time.Duration) {
	if d <= 0 {
		nc.Publish(m.reply, []byte("-NAK"))
		return
	}
	nc.Publish(m.reply, []byte(`-NAK {"delay": `+strconv.FormatInt(d.Nanoseconds(), 10)+"}"))
}

// progress tells the server m is still being worked on, as jetstream.Msg.InProgress.
func progress(nc *nats.Conn, m msgRef) { nc.Publish(m.reply, progressBody) }
