package batch

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"fanin/internal/codec"
	"fanin/internal/fault"
)

// Config describes one projection: which durable it pulls from, what it expects there, and how
// it batches and retries.
type Config struct {
	// Stream and Durable name the JetStream stream and the durable pull consumer on it.
	Stream, Durable string
	// FilterSubject is the consumer's filter, e.g. "events.started.>".
	FilterSubject string
	// Kind is the event every message on FilterSubject carries.
	Kind codec.Kind

	// BatchSize is N, the most messages one Fetch and one transaction hold (default 1000).
	BatchSize int
	// MaxWait is T, how long a Fetch waits to fill a batch (default 100ms). A caught-up
	// projection commits at least every T.
	MaxWait time.Duration
	// AckWait is how long the server waits for an ack before redelivering: how soon a crashed
	// instance's messages come back (default 30s). It must be well above MaxWait plus a slow
	// commit.
	AckWait time.Duration
	// GroupBatches is how many fetched batches one transaction may take together while the
	// projection is behind. Random result ids scatter a batch's writes over the B-trees; a
	// bigger transaction dirties each page for more rows, so a backlog drains faster the bigger
	// the group. Caught up, each transaction holds what one Fetch brought within MaxWait.
	// Zero (the default) means about GroupTarget messages: 8 batches at N=1000, none at
	// N ≥ 8000, so memory stays bounded whatever N. 1 disables grouping.
	GroupBatches int
	// MaxBatchBytes caps the bytes one Fetch brings (default 8 MiB; raised to twice the
	// server's max payload, so one message always fits), and a group stops growing past four
	// times it. With results carrying up to 256 KiB of output inline, this is what bounds
	// memory, not the message counts.
	MaxBatchBytes int
	// MaxAckPending caps unacked messages on the consumer. Zero means
	// (writers·group + ⌈group/2⌉ + 2)·BatchSize (and at least 1000): a full group committing
	// in each writer while half the next one and a batch more are fetched. With only
	// (group+2)·BatchSize, the fetch could bring 2 batches while a group of 8 committed, and
	// transactions averaged half a group. Loops given one Window (WithWindow) hold no more
	// than it between them besides.
	MaxAckPending int

	// Writers is how many transactions the write stage keeps in flight at once: each writer
	// takes its own group of the batches waiting, commits it and settles it, so one group's
	// transaction overlaps with the next one's. It needs a store that takes concurrent
	// transactions of one projection (a ConcurrentStore: PostgreSQL, not SQLite, which has one
	// writer). Zero (the default) means the store's choice: what its ConcurrentWriters says,
	// else 1.
	Writers int

	// CompleteMemory caps the bytes a Completer added to records that the loop holds at once,
	// from completing them to settling their batch (default 128 MiB): a batch whose records
	// need more is written in several transactions.
	CompleteMemory int64

	// RetryInitial and RetryMax are the first and the longest delay of the exponential backoffs
	// (defaults 100ms and 30s): the nak delay of a batch whose write failed, and of results
	// whose output could not be read; the pause after a failed fetch (which grows to at most
	// 5s) and between attempts to bind the durable start at RetryInitial too. Every such retry
	// goes on until it succeeds, so RetryInitial must be at least 1ms: a shorter delay would
	// retry in a busy loop (and a nak with no delay redelivers at once).
	RetryInitial, RetryMax time.Duration
}

// DefaultConfig returns a projection's defaults; the caller fills Stream, Durable,
// FilterSubject and Kind.
func DefaultConfig() Config {
	return Config{
		BatchSize:      1000,
		MaxBatchBytes:  8 << 20,
		CompleteMemory: DefaultCompleteMemory,
		MaxWait:        100 * time.Millisecond,
		AckWait:        30 * time.Second,
		RetryInitial:   100 * time.Millisecond,
		RetryMax:       30 * time.Second,
	}
}

// Started returns the defaults of the started projection (EVENTS, events.started.>).
func Started() Config {
	c := DefaultConfig()
	c.Stream, c.Durable, c.FilterSubject, c.Kind = "EVENTS", "backend_events_projector", "events.started.>", codec.KindStarted
	return c
}

// Results returns the defaults of the results projection (RESULTS, results.>).
func Results() Config {
	c := DefaultConfig()
	c.Stream, c.Durable, c.FilterSubject, c.Kind = "RESULTS", "backend_results_projector", "results.>", codec.KindResult
	return c
}

// GroupTarget is about how many messages an automatic group (GroupBatches 0) holds.
const GroupTarget = 8000

// DefaultCompleteMemory is the default Config.CompleteMemory.
const DefaultCompleteMemory = 128 << 20

// completeMemory returns the effective CompleteMemory.
func (c Config) completeMemory() int64 {
	if c.CompleteMemory > 0 {
		return c.CompleteMemory
	}
	return DefaultCompleteMemory
}

// GroupSize is how many messages one transaction holds at most while the loop is behind: the
// effective GroupBatches (see there) times BatchSize.
func (c Config) GroupSize() int { return c.groupBatches() * c.BatchSize }

// groupBatches returns the effective GroupBatches.
func (c Config) groupBatches() int {
	if c.GroupBatches > 0 {
		return c.GroupBatches
	}
	return min(max(GroupTarget/c.BatchSize, 1), 64)
}

// writers returns the effective Writers, once New has chosen the store's when it was 0.
func (c Config) writers() int { return max(c.Writers, 1) }

// maxAckPending returns the effective MaxAckPending.
func (c Config) maxAckPending() int {
	if c.MaxAckPending > 0 {
		return c.MaxAckPending
	}
	g := c.groupBatches()
	return max((c.writers()*g+(g+1)/2+2)*c.BatchSize, 1000)
}

// MaxWriters is the most Writers a Config may have.
const MaxWriters = 16

// Validate reports the first setting that cannot work, as a *fault.FieldError naming its field
// ("BatchSize"). JetStream refuses a Stream or Durable with whitespace, control characters, '.',
// '*', '>', '/' or '\', or longer than 255 bytes.
func (c Config) Validate() error {
	for _, n := range []struct{ field, name string }{{"Stream", c.Stream}, {"Durable", c.Durable}} {
		const maxLen = 255 // JSMaxNameLen of nats-server: a name is also a file name
		switch {
		case n.name == "":
			return fault.Fieldf(n.field, "must not be empty")
		case strings.ContainsFunc(n.name, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(".*>/\\", r) }):
			return fault.Fieldf(n.field, `%q: must not contain whitespace, '.', '*', '>', '/' or '\'`, n.name)
		case strings.ContainsFunc(n.name, unicode.IsControl) || !utf8.ValidString(n.name):
			return fault.Fieldf(n.field, "%q: must not contain control characters or invalid UTF-8", n.name)
		case len(n.name) > maxLen:
			return fault.Fieldf(n.field, "%.20q…: %d bytes, more than JetStream's %d", n.name, len(n.name), maxLen)
		}
	}
	switch {
	case c.FilterSubject == "":
		return fault.Fieldf("FilterSubject", "must not be empty")
	case c.Kind != codec.KindStarted && c.Kind != codec.KindResult:
		return fault.Fieldf("Kind", "unknown event kind %d", c.Kind)
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fault.Fieldf("BatchSize", "must be between 1 and 10000, not %d", c.BatchSize)
	case c.GroupBatches < 0 || c.GroupBatches > 100:
		return fault.Fieldf("GroupBatches", "must be between 0 (automatic) and 100, not %d", c.GroupBatches)
	case c.MaxBatchBytes < 64<<10:
		return fault.Fieldf("MaxBatchBytes", "must be at least 64 KiB, not %d", c.MaxBatchBytes)
	case c.MaxWait < time.Millisecond || c.MaxWait > time.Minute:
		return fault.Fieldf("MaxWait", "must be between 1ms and 1m, not %s", c.MaxWait)
	case c.AckWait < 2*c.MaxWait+5*time.Second:
		return fault.Fieldf("AckWait", "%s must be at least twice MaxWait plus 5s, room for a slow commit", c.AckWait)
	case c.MaxAckPending != 0 && c.MaxAckPending < 2*c.BatchSize:
		return fault.Fieldf("MaxAckPending", "%d must be at least twice BatchSize (%d), or a Fetch is silently capped", c.MaxAckPending, c.BatchSize)
	case c.Writers < 0 || c.Writers > MaxWriters:
		return fault.Fieldf("Writers", "must be between 0 (the store's choice) and %d, not %d", MaxWriters, c.Writers)
	case c.CompleteMemory < 0 || c.CompleteMemory > 0 && c.CompleteMemory < 1<<20:
		return fault.Fieldf("CompleteMemory", "must be at least 1 MiB, not %d bytes", c.CompleteMemory)
	case c.RetryInitial < time.Millisecond:
		return fault.Fieldf("RetryInitial", "must be at least 1ms, not %s: every retry would come at once", c.RetryInitial)
	case c.RetryMax < c.RetryInitial:
		return fault.Fieldf("RetryMax", "%s must be no less than RetryInitial (%s)", c.RetryMax, c.RetryInitial)
	}
	return nil
}
