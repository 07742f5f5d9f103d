package store

import "time"

// DeadLetterRow is one row of dead_letters, as every store lists it: a message fanin could not
// project. (DeadLetter, in a Report, is a record of the batch just written that became one.)
//
// A message is named by Stream, StreamCreated and Seq together: a stream deleted and created
// again starts its sequence numbers at 1 again, so (Stream, Seq) alone can name two messages.
type DeadLetterRow struct {
	Stream string
	// StreamCreated is the creation time of the stream (its incarnation) in codec.TimeLayout;
	// "" for dead letters recorded before fanin kept it, or when the pull loop did not know it.
	StreamCreated string
	Seq           uint64
	Subject       string
	Reason        string
	Payload       []byte
	// Header is the message's header, byte for byte: key case kept, each key's values in the
	// order the message carried them (non-UTF-8 bytes included); nil when it had none.
	Header map[string][]string
	// RawHeader is Header as dead_letters.headers stores it, the NATS wire header block (see
	// EncodeHeader); nil when the message had none.
	RawHeader  []byte
	RecordedAt string // the JetStream publish time, in codec.TimeLayout
}

// DeadLetterFilter selects dead letters; zero fields match everything. Each store turns it
// into its own SQL.
type DeadLetterFilter struct {
	Stream string
	// StreamCreated selects one incarnation of the stream, in codec.TimeLayout.
	StreamCreated string
	// Reason matches dead letters whose reason contains it.
	Reason string
	// Since and Until bound recorded_at: Since ≤ recorded_at < Until.
	Since, Until time.Time
	// Limit caps the result (0: no limit). A purge takes none.
	Limit int
}

// DefaultPurgeChunk is how many dead letters a store's PurgeDeadLetters deletes per
// transaction unless told otherwise: small enough that an ingester writing the same database
// waits for one chunk a few milliseconds, not for the whole purge.
const DefaultPurgeChunk = 500
