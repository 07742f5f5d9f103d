package batch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/fault"
)

// ErrDurableMissing is returned (wrapped) by EnsureConsumer when BindOptions.Managed is set
// and the durable does not exist: fanin does not create it, the loop waits for it (unready),
// and the error says what to create.
var ErrDurableMissing = errors.New("durable missing")

// ErrUnsuitableDurable is returned (wrapped) by EnsureConsumer, and by Run, when
// BindOptions.Managed is set and the durable cannot feed this database without losing
// messages: settings under which it passes over them (see unsafeChanges), a push consumer, or
// acknowledged messages an empty database lacks. fanin would recreate it; managed elsewhere,
// it is the operator's to fix, and the error says how.
var ErrUnsuitableDurable = fault.Permanent(errors.New("durable unsuitable"))

// bindManaged binds a durable managed elsewhere (BindOptions.Managed): it checks what bind
// checks, but never creates, updates or deletes the durable.
//
//   - Missing: ErrDurableMissing, saying what to create.
//   - Labelled for another database: ErrForeignDurable (Adopt changes nothing).
//   - Settings under which it passes over messages (unsafeChanges), a push consumer, or — with Replay — an
//     empty database while the durable has acknowledged messages: ErrUnsuitableDurable,
//     saying what to recreate it with.
//   - Settings that cost no message but differ from fanin's (ack wait, max ack pending): a
//     warning; an unlabelled durable stays unlabelled.
//
// With Replay, a durable that has acknowledged nothing yet binds after the Ledger has prepared
// the projection for a replay: the operator recreated it to deliver the whole stream.
func (b *binder) bindManaged(ctx context.Context) (jetstream.Consumer, error) {
	c := b.cfg
	want := c.consumerConfig(b.dbID)
	cons, err := b.stream.Consumer(ctx, c.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		from, err := b.safeStart(ctx)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("durable %s on %s does not exist, and it is managed elsewhere: create it with %s: %w",
			c.Durable, c.Stream, addCommand(c.Stream, want, from), ErrDurableMissing)
	case errors.Is(err, jetstream.ErrNotPullConsumer):
		from, err := b.safeStart(ctx)
		if err != nil {
			return nil, err
		}
		return nil, unsuitableError(c, want, from, "", []any{"deliver_subject", "set (a push consumer), want none (a pull consumer)"})
	case err != nil:
		return nil, fmt.Errorf("durable %s on %s: %w", c.Durable, c.Stream, err)
	}
	info := cons.CachedInfo()
	have := info.Config

	if theirs := have.Metadata[MetadataDatabase]; b.dbID != "" && theirs != "" && theirs != b.dbID {
		return nil, fmt.Errorf("durable %s on %s feeds database %s, not this one (%s): refusing to consume; "+
			"if this database is to replace that one, recreate the durable (it is managed elsewhere) to deliver the whole stream: %s: %w",
			c.Durable, c.Stream, theirs, b.dbID, recreateCommands(c.Stream, want, 1), ErrForeignDurable)
	}
	if ch := unsafeChanges(have, want); len(ch) > 0 {
		from, err := b.safeStart(ctx)
		if err != nil {
			return nil, err
		}
		return nil, unsuitableError(c, want, from, "", ch)
	}
	if b.o.Replay {
		if floor := info.AckFloor.Stream; floor > 0 {
			return nil, fmt.Errorf("durable %s on %s has acknowledged stream messages up to %d, but this database is empty: "+
				"they would never be projected into it. The durable is managed elsewhere, so fanin does not recreate it to replay the stream: "+
				"recreate it to deliver the whole stream, then start fanin again: %s: %w",
				c.Durable, c.Stream, floor, recreateCommands(c.Stream, want, 1), ErrUnsuitableDurable)
		}
		if l := b.o.Ledger; l != nil {
			if reset, err := l.ResetForReplay(ctx); err != nil {
				return nil, err
			} else if reset {
				b.log.Warn("projection is empty: execution counters set back to 0 and statuses to pending before the replay")
			}
		}
	}

	if last, missing, err := b.behind(ctx, info.AckFloor.Stream); err != nil {
		return nil, err
	} else if missing > 0 {
		from, err := b.safeStart(ctx)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("durable %s on %s has acknowledged stream messages up to %d, but this database holds them only up to %d "+
			"(it lacks %d): it is an older copy, restored from a backup? The durable is managed elsewhere, so fanin does not rewind it: "+
			"recreate it to deliver from the database's safe point, then start fanin again: %s: %w",
			c.Durable, c.Stream, info.AckFloor.Stream, last, missing, recreateCommands(c.Stream, want, from), ErrUnsuitableDurable)
	}

	var differ []any
	if have.AckWait != want.AckWait {
		differ = append(differ, "ack_wait", fmt.Sprintf("%s, fanin would use %s", have.AckWait, want.AckWait))
	}
	if have.MaxAckPending >= 0 && have.MaxAckPending < want.MaxAckPending {
		differ = append(differ, "max_ack_pending", fmt.Sprintf("%d, fanin would use %d (a fetch or group may be capped)", have.MaxAckPending, want.MaxAckPending))
	}
	if len(differ) > 0 {
		b.log.Warn("durable is managed elsewhere and some of its settings differ from fanin's: left as they are", differ...)
	}
	if b.dbID != "" && have.Metadata[MetadataDatabase] == "" {
		b.log.Info("durable is managed elsewhere and names no database: fanin leaves its metadata alone; "+
			"add the label to it for fanin to check that it feeds this database", "metadata", MetadataDatabase+"="+b.dbID)
	}
	return cons, nil
}

// unsuitableError is ErrUnsuitableDurable for the changes ch (key, value pairs, as
// unsafeChanges returns them), saying how to recreate the durable to deliver from stream
// sequence from. when, if set, says when the settings were found ("while it ran").
func unsuitableError(c Config, want jetstream.ConsumerConfig, from uint64, when string, ch []any) error {
	var what []string
	for i := 0; i+1 < len(ch); i += 2 {
		what = append(what, fmt.Sprintf("%v %v", ch[i], ch[i+1]))
	}
	if when != "" {
		when = " " + when
	}
	return fmt.Errorf("durable %s on %s%s cannot feed this database without losing messages (%s), and it is managed elsewhere, so fanin does not recreate it: "+
		"putting the settings back is not enough (what they passed over stays passed over): delete it and create it again to deliver %s: %s: %w",
		c.Durable, c.Stream, when, strings.Join(what, "; "), deliverFrom(from), recreateCommands(c.Stream, want, from), ErrUnsuitableDurable)
}

// unsuitableWhileRunning is what the watch does when the settings of a managed durable
// changed while the loop ran, ch saying how (see unsafeChanges): the loop goes unready, the
// change is logged as an error, and the error to stop with (ErrUnsuitableDurable) says how to
// recreate the durable from the safe point. saved is the safe point this watch last saved.
func (l *Loop) unsuitableWhileRunning(ctx context.Context, b *Binding, ch []any, saved uint64) error {
	l.bound.Store(false)
	l.log.Error("durable's settings were changed while it ran, and it is managed elsewhere: not ready, stopping (fanin does not recreate it)", ch...)
	if led := l.bind.Ledger; led != nil {
		if sp, err := led.SafePoint(ctx, l.cfg.Stream, l.cfg.Durable, b.StreamCreated); err == nil {
			saved = sp
		}
	}
	return unsuitableError(l.cfg, l.cfg.consumerConfig(b.DatabaseID), saved+1, "while it ran", ch)
}

// deliverFrom says, in words, where a durable delivering from stream sequence from starts.
func deliverFrom(from uint64) string {
	if from <= 1 {
		return "the whole stream"
	}
	return fmt.Sprintf("from stream sequence %d (the messages before it are in this database)", from)
}

// safeStart returns the first stream sequence a durable created now must deliver for nothing
// to be lost: the one after the Ledger's safe point, or 1.
func (b *binder) safeStart(ctx context.Context) (uint64, error) {
	if b.o.Ledger == nil {
		return 1, nil
	}
	sp, err := b.o.Ledger.SafePoint(ctx, b.cfg.Stream, b.cfg.Durable, b.created)
	if err != nil {
		return 0, err
	}
	return sp + 1, nil
}

// recreateCommands is the nats CLI lines that delete the durable and create it as fanin would,
// delivering from stream sequence from.
func recreateCommands(stream string, want jetstream.ConsumerConfig, from uint64) string {
	return fmt.Sprintf("nats consumer rm -f %s %s; %s", shellQuote(stream), shellQuote(want.Durable), addCommand(stream, want, from))
}

// addCommand is the nats CLI line that creates want, fanin's configuration of the durable,
// delivering from stream sequence from (1 or less: the whole stream).
func addCommand(stream string, want jetstream.ConsumerConfig, from uint64) string {
	deliver := "all"
	if from > 1 {
		deliver = strconv.FormatUint(from, 10)
	}
	cmd := fmt.Sprintf("nats consumer add %s %s --pull --deliver %s --ack explicit --filter %s --max-deliver=-1 --max-pending %d --wait %s --replay instant",
		shellQuote(stream), shellQuote(want.Durable), deliver, shellQuote(want.FilterSubject), want.MaxAckPending, want.AckWait)
	if id := want.Metadata[MetadataDatabase]; id != "" {
		cmd += " --metadata " + shellQuote(MetadataDatabase+"="+id)
	}
	return cmd + " --defaults"
}

// shellQuote quotes s for a POSIX shell when it holds anything but letters, digits and -_.=:
func shellQuote(s string) string {
	plain := s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_.=:", r))
	})
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
