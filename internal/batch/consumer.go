package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/codec"
)

// ErrStreamMissing is returned (wrapped) by EnsureConsumer when the stream does not exist yet.
var ErrStreamMissing = errors.New("stream missing")

// ErrIncompatibleDurable is returned (wrapped) by EnsureConsumer when the durable exists with a
// setting that cannot be updated in place.
var ErrIncompatibleDurable = errors.New("incompatible durable")

// consumerConfig is the durable's configuration as fanin needs it.
func (c Config) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
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
}

// EnsureConsumer binds the projection's durable, creating it when missing. When it exists with
// other settings, the ones fanin depends on (filter, ack wait, max ack pending, max deliver)
// are updated and the change is logged; an ack policy other than explicit cannot be updated and
// is an error.
//
// With replay set, a durable that has acknowledged messages before is deleted and created
// again, so the whole stream is delivered anew: the caller sets it when the database is empty
// (wiped or new), which is safe because every write is idempotent.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, c Config, replay bool, log *slog.Logger) (jetstream.Consumer, error) {
	stream, err := js.Stream(ctx, c.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s: %w", c.Stream, ErrStreamMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", c.Stream, err)
	}
	want := c.consumerConfig()

	cons, err := stream.Consumer(ctx, c.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return createConsumer(ctx, stream, want, log)
	case err != nil:
		return nil, fmt.Errorf("durable %s on %s: %w", c.Durable, c.Stream, err)
	}
	info := cons.CachedInfo()

	if replay && info.AckFloor.Stream > 0 {
		log.Warn("database is empty but the durable has acknowledged messages: recreating it to project the whole stream again",
			"stream", c.Stream, "durable", c.Durable, "ack_floor", info.AckFloor.Stream)
		if err := stream.DeleteConsumer(ctx, c.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete durable %s for replay: %w", c.Durable, err)
		}
		return createConsumer(ctx, stream, want, log)
	}

	have := info.Config
	if have.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, fmt.Errorf("durable %s on %s has ack policy %s; fanin needs explicit acks: delete the durable or choose another with --%s-durable: %w",
			c.Durable, c.Stream, have.AckPolicy, flagPrefix(c.Kind), ErrIncompatibleDurable)
	}
	var changes []any
	upd := have
	if have.FilterSubject != want.FilterSubject || len(have.FilterSubjects) > 0 {
		changes = append(changes, "filter_subject", fmt.Sprintf("%q → %q", have.FilterSubject, want.FilterSubject))
		upd.FilterSubject, upd.FilterSubjects = want.FilterSubject, nil
	}
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
	if len(changes) == 0 {
		return cons, nil
	}
	cons, err = stream.UpdateConsumer(ctx, upd)
	if err != nil {
		return nil, fmt.Errorf("update durable %s on %s: %w", c.Durable, c.Stream, err)
	}
	log.Warn("durable existed with other settings: updated them", append([]any{"stream", c.Stream, "durable", c.Durable}, changes...)...)
	return cons, nil
}

func createConsumer(ctx context.Context, stream jetstream.Stream, want jetstream.ConsumerConfig, log *slog.Logger) (jetstream.Consumer, error) {
	cons, err := stream.CreateConsumer(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("create durable %s on %s: %w", want.Durable, stream.CachedInfo().Config.Name, err)
	}
	log.Info("created durable", "stream", stream.CachedInfo().Config.Name, "durable", want.Durable,
		"filter", want.FilterSubject, "max_ack_pending", want.MaxAckPending, "ack_wait", want.AckWait)
	return cons, nil
}

// flagPrefix names the command-line flags of a projection: --events-… or --results-….
func flagPrefix(k codec.Kind) string {
	if k == codec.KindStarted {
		return "events"
	}
	return "results"
}
