package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// EventsStream returns the original system's EVENTS stream settings under the given name.
func EventsStream(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:      name,
		Subjects:  []string{"events.>"},
		Retention: jetstream.LimitsPolicy,
		Storage:   jetstream.FileStorage,
		MaxAge:    7 * 24 * time.Hour,
		MaxBytes:  256 << 20,
		Discard:   jetstream.DiscardOld,
	}
}

// ResultsStream returns the original system's RESULTS stream settings under the given name.
func ResultsStream(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:      name,
		Subjects:  []string{"results.>"},
		Retention: jetstream.LimitsPolicy,
		Storage:   jetstream.FileStorage,
		MaxAge:    30 * 24 * time.Hour,
		MaxBytes:  2 << 30,
		Discard:   jetstream.DiscardOld,
	}
}

// CreateStreams creates each stream that does not exist yet. An existing stream is left as it
// is, whatever its settings: they are the operator's.
func CreateStreams(ctx context.Context, js jetstream.JetStream, log *slog.Logger, cfgs ...jetstream.StreamConfig) error {
	for _, cfg := range cfgs {
		_, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			continue
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		if _, err := js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
		log.Info("created stream", "stream", cfg.Name, "subjects", cfg.Subjects, "max_age", cfg.MaxAge, "max_bytes", cfg.MaxBytes)
	}
	return nil
}
