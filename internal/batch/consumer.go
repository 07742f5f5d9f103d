package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/fault"
)

// ErrStreamMissing is returned (wrapped) by EnsureConsumer when the stream does not exist yet.
var ErrStreamMissing = errors.New("stream missing")

// ErrForeignDurable is returned (wrapped) by EnsureConsumer, and by Run, when the durable feeds
// another database than the Ledger's: this instance's database file is not the one the durable's acks
// stand for (a typo, a new path), and consuming would take its share of the stream into the
// wrong file. BindOptions.Adopt overrides it.
var ErrForeignDurable = fault.Permanent(errors.New("durable feeds another database"))

// MetadataDatabase is the consumer metadata key holding the identity of the database a durable
// feeds (Ledger.DatabaseID).
const MetadataDatabase = "fanin.database"

// Ledger is what the loop keeps in the database about its durable, so that a durable need not
// be trusted blindly: which database it feeds, and a stream position up to which every message
// is in that database. The sink implements it.
type Ledger interface {
	// DatabaseID is the database's identity, recorded in the durables' metadata.
	DatabaseID(ctx context.Context) (string, error)
	// SafePoint returns the position SaveSafePoint recorded for this incarnation of the stream
	// (0: none; the stream is then read from its start).
	SafePoint(ctx context.Context, stream, durable string, streamCreated time.Time) (uint64, error)
	// SaveSafePoint records that every message up to seq is in the database.
	SaveSafePoint(ctx context.Context, stream, durable string, streamCreated time.Time, seq uint64) error
	// ResetForReplay prepares an empty projection for a replay from the start of the streams
	// (domain.md, "Replay"); it does nothing to a projection that is not empty.
	ResetForReplay(ctx context.Context) (bool, error)
}

// A CommitMarker is a Ledger that also records, in each write transaction, the last stream
// sequence it committed. Every message is committed before it is acked, so the database that
// did the work holds every message up to its durable's ack floor; one that lacks a message at or
// below the floor is an older copy — restored from a backup, or a file put back by hand — and
// the messages acked after it was copied would never reach it. With a CommitMarker,
// EnsureConsumer finds that at bind and rewinds the durable to the database's safe point (a
// managed durable is refused instead, saying how to recreate it).
type CommitMarker interface {
	// LastCommitted returns the highest sequence of the stream's incarnation created at
	// streamCreated that a committed transaction held; known is false when the database has
	// no record of it (another incarnation, or written before it kept them).
	LastCommitted(ctx context.Context, stream string, streamCreated time.Time) (seq uint64, known bool, err error)
}

// BindOptions say how EnsureConsumer may treat an existing durable.
type BindOptions struct {
	// Replay recreates a durable that has acknowledged messages before, so the whole stream is
	// delivered anew: set it when the database is empty (wiped), which is safe because every
	// write is idempotent.
	Replay bool
	// Adopt takes over a durable that feeds another database: it is recreated to deliver the
	// whole stream into this one. It changes nothing when Managed.
	Adopt bool
	// Rewind recreates an existing durable of this database to deliver again from the Ledger's
	// safe point (from the start of the stream when none is known): for the first start on a
	// database restored from a backup (litestream), which is behind what the durable acked
	// — messages acked after the backup would otherwise never reach it. Redelivery is safe:
	// every write is idempotent. It changes nothing when Managed.
	Rewind bool
	// Managed binds a durable managed elsewhere (NACK, Terraform, the nats CLI): fanin never
	// creates, updates, labels, deletes or recreates it. A missing durable is ErrDurableMissing,
	// to be waited for; one fanin cannot use without losing messages — settings that pass over
	// them, a push consumer, acknowledged messages an empty database (Replay) lacks — is
	// ErrUnsuitableDurable; one labelled for another database is ErrForeignDurable. Each says
	// what the operator should create.
	Managed bool
	// Ledger, when set, ties the durable to its database and keeps its safe point.
	Ledger Ledger
	// CreateStream, when set, is called when the stream does not exist, and binding goes on
	// if it succeeds.
	CreateStream func(ctx context.Context) error
}

// Binding is a durable as EnsureConsumer bound it.
type Binding struct {
	Consumer jetstream.Consumer
	// StreamCreated is the creation time of the stream: its incarnation.
	StreamCreated time.Time
	// DatabaseID is what the durable's metadata says it feeds ("" without a Ledger).
	DatabaseID string
}

// consumerConfig is the durable's configuration as fanin needs it.
func (c Config) consumerConfig(dbID string) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       c.Durable,
		Description:   fmt.Sprintf("fanin %s projection", c.Kind),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		// Never give up on a message: poison is terminated explicitly, and everything else
		// is retried until it lands. A MaxDeliver would drop rows during a long outage.
		MaxDeliver:    -1,
		FilterSubject: c.FilterSubject,
		MaxAckPending: c.maxAckPending(),
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	if dbID != "" {
		cc.Metadata = map[string]string{MetadataDatabase: dbID}
	}
	return cc
}

// unsafeChanges lists the settings of have, an existing durable, under which it may have passed
// over messages fanin needs: a different filter skips them, another ack policy acks them
// without fanin, a MaxDeliver gives up on them. Its position can then not be trusted, and
// updating the settings in place would not bring those messages back.
func unsafeChanges(have, want jetstream.ConsumerConfig) []any {
	var ch []any
	if len(have.FilterSubjects) == 1 && have.FilterSubject == "" {
		have.FilterSubject, have.FilterSubjects = have.FilterSubjects[0], nil // the same filter, as a list
	}
	if have.FilterSubject != want.FilterSubject || len(have.FilterSubjects) > 0 {
		filter := fmt.Sprintf("%q", have.FilterSubject)
		if len(have.FilterSubjects) > 0 {
			filter = fmt.Sprintf("%q", have.FilterSubjects)
		}
		ch = append(ch, "filter_subject", fmt.Sprintf("%s, want %q", filter, want.FilterSubject))
	}
	if have.AckPolicy != want.AckPolicy {
		ch = append(ch, "ack_policy", fmt.Sprintf("%s, want %s", have.AckPolicy, want.AckPolicy))
	}
	if have.MaxDeliver > 0 {
		ch = append(ch, "max_deliver", fmt.Sprintf("%d, want %d", have.MaxDeliver, want.MaxDeliver))
	}
	return ch
}

// EnsureConsumer binds the projection's durable, creating it when missing, and checks that it
// is still fanin's:
//
//   - A durable whose metadata names another database than the Ledger's is refused
//     (ErrForeignDurable) unless o.Adopt; a durable that names none (the original projector's,
//     or one bound before fanin recorded identities) is adopted and labelled.
//   - A durable whose settings let it pass over messages (another filter, ack policy or a
//     MaxDeliver: see unsafeChanges), changed outside fanin, is recreated to deliver again
//     from the Ledger's safe point (or from the start of the stream), and the change is logged
//     as an error: its position is not to be trusted.
//   - Settings that cost no message (ack wait, max ack pending, a backoff, the label) are
//     updated in place, and the change is logged.
//
// A durable created for a missing one delivers from the safe point too. With o.Replay, a
// durable that has acknowledged messages before is recreated to deliver the whole stream; with
// o.Rewind, an existing durable is recreated to deliver from the safe point.
// With o.Managed, nothing of this is done to the durable: see BindOptions.Managed and
// bindManaged.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, c Config, o BindOptions, log *slog.Logger) (Binding, error) {
	stream, err := js.Stream(ctx, c.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) && o.CreateStream != nil {
		if err = o.CreateStream(ctx); err == nil {
			stream, err = js.Stream(ctx, c.Stream)
		}
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Binding{}, fmt.Errorf("stream %s: %w", c.Stream, ErrStreamMissing)
	}
	if err != nil {
		return Binding{}, fmt.Errorf("stream %s: %w", c.Stream, err)
	}
	b := binder{stream: stream, cfg: c, o: o, log: log, created: stream.CachedInfo().Created}
	if o.Ledger != nil {
		if b.dbID, err = o.Ledger.DatabaseID(ctx); err != nil {
			return Binding{}, err
		}
	}
	bind := b.bind
	if o.Managed {
		bind = b.bindManaged
	}
	cons, err := bind(ctx)
	if err != nil {
		return Binding{}, classify(err)
	}
	return Binding{Consumer: cons, StreamCreated: b.created, DatabaseID: b.dbID}, nil
}

// classify marks err permanent when the server refused a request outright (a 400: a setting it
// does not accept), which no retry changes.
func classify(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 400 {
		return fault.Permanent(err)
	}
	return err
}

// binder is one EnsureConsumer call.
type binder struct {
	stream  jetstream.Stream
	cfg     Config
	o       BindOptions
	log     *slog.Logger
	created time.Time // the stream's incarnation
	dbID    string    // the Ledger's database; "" without one
}

func (b *binder) bind(ctx context.Context) (jetstream.Consumer, error) {
	c := b.cfg
	want := c.consumerConfig(b.dbID)
	cons, err := b.stream.Consumer(ctx, c.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return b.recreate(ctx, want, false, "")
	case err != nil:
		return nil, fmt.Errorf("durable %s on %s: %w", c.Durable, c.Stream, err)
	}
	info := cons.CachedInfo()
	have := info.Config

	if theirs := have.Metadata[MetadataDatabase]; b.dbID != "" && theirs != "" && theirs != b.dbID {
		if !b.o.Adopt {
			return nil, fmt.Errorf("durable %s on %s feeds database %s, not this one (%s): refusing to consume; "+
				"if this database is to replace that one, adopt the durable (it is then recreated and the whole stream projected here): %w",
				c.Durable, c.Stream, theirs, b.dbID, ErrForeignDurable)
		}
		b.log.Warn("adopting a durable that fed another database: projecting the whole stream into this one",
			"feeds", theirs, "database", b.dbID)
		return b.recreate(ctx, want, true, "adopted")
	}
	if b.o.Replay && info.AckFloor.Stream > 0 {
		b.log.Warn("database is empty but the durable has acknowledged messages: recreating it to project the whole stream again",
			"ack_floor", info.AckFloor.Stream)
		return b.recreate(ctx, want, true, "replay")
	}
	if b.o.Rewind {
		b.log.Warn("rewinding the durable to this database's safe point: what it acked since is delivered again",
			"ack_floor", info.AckFloor.Stream)
		return b.recreate(ctx, want, false, "rewound")
	}
	if last, missing, err := b.behind(ctx, info.AckFloor.Stream); err != nil {
		return nil, err
	} else if missing > 0 {
		b.log.Error("this database lacks messages its durable acknowledged: it is an older copy (restored from a backup?); "+
			"rewinding the durable to the database's safe point",
			"ack_floor", info.AckFloor.Stream, "last_committed", last, "first_missing", missing)
		return b.recreate(ctx, want, false, "database behind")
	}
	if ch := unsafeChanges(have, want); len(ch) > 0 {
		b.log.Error("durable's settings were changed outside fanin: messages they passed over would never be projected; recreating it from the last safe point",
			ch...)
		return b.recreate(ctx, want, false, "settings changed")
	}

	var changes []any
	upd := have
	if have.AckWait != want.AckWait {
		changes = append(changes, "ack_wait", fmt.Sprintf("%s → %s", have.AckWait, want.AckWait))
		upd.AckWait = want.AckWait
	}
	if have.MaxAckPending < want.MaxAckPending {
		changes = append(changes, "max_ack_pending", fmt.Sprintf("%d → %d", have.MaxAckPending, want.MaxAckPending))
		upd.MaxAckPending = want.MaxAckPending
	}
	if have.MaxDeliver != want.MaxDeliver {
		changes = append(changes, "max_deliver", fmt.Sprintf("%d → %d", have.MaxDeliver, want.MaxDeliver))
		upd.MaxDeliver = want.MaxDeliver
	}
	if have.BackOff != nil {
		changes = append(changes, "backoff", "removed (it conflicts with max_deliver -1; fanin delays its naks itself)")
		upd.BackOff = nil
	}
	if b.dbID != "" && have.Metadata[MetadataDatabase] == "" {
		changes = append(changes, "metadata", fmt.Sprintf("%s = %s (adopted: it feeds this database from now on)", MetadataDatabase, b.dbID))
		upd.Metadata = make(map[string]string, len(have.Metadata)+1)
		for k, v := range have.Metadata {
			upd.Metadata[k] = v
		}
		upd.Metadata[MetadataDatabase] = b.dbID
	}
	if len(changes) == 0 {
		return cons, nil
	}
	cons, err = b.stream.UpdateConsumer(ctx, upd)
	if err != nil {
		return nil, fmt.Errorf("update durable %s on %s: %w", c.Durable, c.Stream, err)
	}
	b.log.Warn("durable existed with other settings: updated them", changes...)
	return cons, nil
}

// behind returns the first message the durable acknowledged that this database lacks (0:
// none, or the Ledger keeps no CommitMarker record): the first message its filter takes after
// the last sequence the database committed, when that is at or below the durable's ack floor.
// The floor alone is not enough: it moves past messages of other subjects.
func (b *binder) behind(ctx context.Context, floor uint64) (last, missing uint64, err error) {
	m, ok := b.o.Ledger.(CommitMarker)
	if !ok {
		return 0, 0, nil
	}
	last, known, err := m.LastCommitted(ctx, b.cfg.Stream, b.created)
	if err != nil || !known || floor <= last {
		return last, 0, err
	}
	msg, err := b.stream.GetMsg(ctx, last+1, jetstream.WithGetMsgSubject(b.cfg.FilterSubject))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return last, 0, nil
	case err != nil:
		return last, 0, fmt.Errorf("stream %s: look for a message after the database's last (%d): %w", b.cfg.Stream, last, err)
	case msg.Sequence > floor:
		return last, 0, nil
	}
	return last, msg.Sequence, nil
}

// recreate deletes the durable, if it exists, and creates it with want: from the start of the
// stream when whole (after preparing the projection for a replay), else from the safe point.
// why says, in the log, why an existing durable was replaced.
func (b *binder) recreate(ctx context.Context, want jetstream.ConsumerConfig, whole bool, why string) (jetstream.Consumer, error) {
	c := b.cfg
	var from uint64
	if l := b.o.Ledger; l != nil {
		if whole {
			if reset, err := l.ResetForReplay(ctx); err != nil {
				return nil, err
			} else if reset {
				b.log.Warn("projection is empty: execution counters set back to 0 and statuses to pending before the replay")
			}
		} else {
			sp, err := l.SafePoint(ctx, c.Stream, c.Durable, b.created)
			if err != nil {
				return nil, err
			}
			from = sp
		}
	}
	if from > 0 {
		want.DeliverPolicy, want.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from+1
	}
	if why != "" {
		if err := b.stream.DeleteConsumer(ctx, c.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete durable %s on %s (%s): %w", c.Durable, c.Stream, why, err)
		}
	}
	cons, err := b.stream.CreateConsumer(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("create durable %s on %s: %w", c.Durable, c.Stream, err)
	}
	msg := "created durable"
	if why != "" {
		msg = "recreated durable (" + why + ")"
	}
	b.log.Info(msg, "filter", want.FilterSubject, "from_stream_seq", max(from+1, 1),
		"max_ack_pending", want.MaxAckPending, "ack_wait", want.AckWait)
	return cons, nil
}
