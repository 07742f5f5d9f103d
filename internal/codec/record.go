package codec

import "time"

// Kind says which event a projection expects on its subjects.
type Kind uint8

// The two event kinds fanin projects.
const (
	KindStarted Kind = iota + 1 // EventStarted, on events.started.>
	KindResult                  // ExecResult, on results.>
)

// String returns "started" or "result".
func (k Kind) String() string {
	switch k {
	case KindStarted:
		return "started"
	case KindResult:
		return "result"
	}
	return "unknown"
}

// Record is one JetStream message on its way from the pull loop to the sink: where it came
// from, and either its decoded event or the reason it can never be projected.
type Record struct {
	Stream string
	Seq    uint64 // stream sequence: with Stream and StreamCreated, the message's identity
	// StreamCreated is when the stream was created: a stream deleted and created again starts
	// its sequence numbers at 1 again, so (Stream, Seq) alone can name two messages.
	StreamCreated time.Time
	Subject       string
	Published     time.Time // the JetStream timestamp; becomes recorded_at
	// RecordedAt is Published in TimeLayout, set by Decode (in the fetch stage, off the
	// writer's path); "" means not yet formatted.
	RecordedAt string
	Payload    []byte
	// Header is the message's headers as a NATS header block, in the form dead letters keep
	// them (store.EncodeHeader's); nil when it had none. Only a dead letter reads it, so the
	// record keeps these few bytes rather than the client's map (several hundred bytes a
	// message in flight).
	Header []byte

	Kind Kind
	// Started is set when Kind is KindStarted and Poison is nil, Result when Kind is
	// KindResult and Poison is nil; otherwise they are nil. A record in flight holds only the
	// event it is, not room for both.
	Started *Started
	Result  *Result
	// Poison is non-nil when the payload can never succeed (a *PoisonError); the record is
	// dead-lettered with Poison.Error() as the reason.
	Poison error
}

// Decode fills r.Started or r.Result from r.Payload according to r.Kind, or sets r.Poison, and
// formats r.RecordedAt.
func (r *Record) Decode() {
	r.Started, r.Result, r.RecordedAt = nil, nil, ""
	switch r.Kind {
	case KindStarted:
		s, at, err := decodeStarted(r.Payload, &r.Published)
		if r.Poison = err; err == nil {
			r.Started, r.RecordedAt = &s, at
		}
	case KindResult:
		x, at, err := decodeResult(r.Payload, &r.Published)
		if r.Poison = err; err == nil {
			r.Result, r.RecordedAt = &x, at
		}
	default:
		r.Poison = &PoisonError{Reason: "no projection for this message"}
	}
	if r.RecordedAt == "" { // a poison record: its dead letter needs it
		r.RecordedAt = FormatTime(r.Published)
	}
}

// RecordedAtText returns r.RecordedAt, formatting Published if Decode did not.
func (r *Record) RecordedAtText() string {
	if r.RecordedAt != "" {
		return r.RecordedAt
	}
	return FormatTime(r.Published)
}
