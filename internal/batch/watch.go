package batch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultWatchInterval is how often a loop reads its durable's info (see WithWatchInterval).
const DefaultWatchInterval = 5 * time.Second

// WithWatchInterval sets how often the loop reads its durable's info: to check that the durable
// is still fanin's, to record its safe point, and for the backlog gauges (default
// DefaultWatchInterval; zero or less: never).
func WithWatchInterval(d time.Duration) Option { return func(l *Loop) { l.watchEvery = d } }

// watch reads the durable's info every watchEvery until ctx ends, and acts on what it finds:
//
//   - settings changed outside fanin under which the durable passes over messages: logged as
//     an error, the loop goes unready, and the durable is bound again, which recreates it from
//     the safe point (EnsureConsumer), so nothing the wrong settings skipped is lost;
//     (with WithManaged, the durable is not recreated: the loop goes unready and stop is
//     called with ErrUnsuitableDurable, which says how to recreate it);
//   - the durable now feeding another database: stop is called with ErrForeignDurable;
//   - fanin's own settings: its ack floor is saved as the safe point, and the backlog gauges
//     are updated;
//   - the durable (or its stream) deleted: it is bound again (created, from the safe point;
//     with WithManaged, waited for until it is created again);
//   - no answer for two reads in a row (a frozen or unreachable server): the loop goes unready
//     until one comes.
func (l *Loop) watch(ctx context.Context, stop context.CancelCauseFunc) {
	t := time.NewTicker(l.watchEvery)
	defer t.Stop()
	var (
		failures int
		saved    uint64
	)
	for {
		rctx, cancel := context.WithTimeout(ctx, min(l.watchEvery, 5*time.Second))
		c, err := l.js.Consumer(rctx, l.cfg.Stream, l.cfg.Durable)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
			// Deleted (with its stream, perhaps). The fetch stage notices too, but only when a
			// fetch fails with the consumer's own error; binding twice costs a lookup.
			l.log.Warn("durable vanished: binding it again", "err", err)
			if _, err := l.rebind(ctx); err != nil && ctx.Err() == nil {
				stop(err)
				return
			}
		case err != nil:
			if failures++; failures == 2 {
				p := fmt.Errorf("cannot read the durable's info: %w", err)
				l.unhealthy.Store(&p)
				l.log.Warn("the server does not answer for the durable: not ready until it does", "err", err)
			}
		default:
			if failures >= 2 {
				l.log.Info("the server answers for the durable again")
			}
			failures = 0
			l.unhealthy.Store(nil)
			info := c.CachedInfo()
			l.obs.gauges.backlog(info)
			if err := l.check(ctx, info, &saved); err != nil {
				stop(err)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check acts on a durable's info, as watch describes; saved is the safe point last saved.
func (l *Loop) check(ctx context.Context, info *jetstream.ConsumerInfo, saved *uint64) error {
	b := l.binding.Load()
	have := info.Config
	if theirs := have.Metadata[MetadataDatabase]; b.DatabaseID != "" && theirs != "" && theirs != b.DatabaseID {
		l.log.Error("the durable now feeds another database: this instance stops consuming", "feeds", theirs, "database", b.DatabaseID)
		return fmt.Errorf("durable %s on %s now feeds database %s, not this one (%s): %w",
			l.cfg.Durable, l.cfg.Stream, theirs, b.DatabaseID, ErrForeignDurable)
	}
	if ch := unsafeChanges(have, l.cfg.consumerConfig(b.DatabaseID)); len(ch) > 0 {
		if l.bind.Managed {
			return l.unsuitableWhileRunning(ctx, b, ch, *saved)
		}
		l.log.Error("durable's settings were changed while it ran: not ready while it is recreated from the last safe point", ch...)
		if _, err := l.rebind(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		return nil
	}
	if floor := info.AckFloor.Stream; l.bind.Ledger != nil && floor != *saved {
		if err := l.bind.Ledger.SaveSafePoint(ctx, l.cfg.Stream, l.cfg.Durable, b.StreamCreated, floor); err != nil {
			l.log.Debug("cannot save the durable's safe point", "err", err)
			return nil
		}
		*saved = floor
	}
	return nil
}
