package pgsink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"fanin/internal/codec"
)

// The durables' ledger (batch.Ledger), as sink keeps it for SQLite: the database's identity and
// a safe point per durable.

// emptyProjection is true when execution_results and dead_letters hold no row.
const emptyProjection = `NOT EXISTS (SELECT 1 FROM execution_results) AND NOT EXISTS (SELECT 1 FROM dead_letters)`

// DatabaseID returns the identity this database was given when it was first migrated.
func (s *Store) DatabaseID(ctx context.Context) (string, error) {
	if !s.enter() {
		return "", ErrClosed
	}
	defer s.leave()
	var id string
	if err := s.pool.QueryRow(ctx, `SELECT value FROM fanin_meta WHERE key = 'database_id'`).Scan(&id); err != nil {
		return "", fmt.Errorf("read database id: %w", redacted(err, s.cfg.URL))
	}
	return id, nil
}

// Empty reports whether the database holds no projected row and no dead letter.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	if !s.enter() {
		return false, ErrClosed
	}
	defer s.leave()
	var empty bool
	if err := s.pool.QueryRow(ctx, `SELECT `+emptyProjection).Scan(&empty); err != nil {
		return false, fmt.Errorf("check for an empty database: %w", redacted(err, s.cfg.URL))
	}
	return empty, nil
}

// SafePoint returns the stream sequence up to which every message of stream reached this
// database through durable, for the incarnation created at streamCreated; 0 when unknown.
func (s *Store) SafePoint(ctx context.Context, stream, durable string, streamCreated time.Time) (uint64, error) {
	if !s.enter() {
		return 0, ErrClosed
	}
	defer s.leave()
	var (
		floor   int64
		created string
		empty   bool
	)
	err := s.pool.QueryRow(ctx, `SELECT ack_floor, stream_created, `+emptyProjection+`
		FROM durable_positions WHERE stream = $1 AND durable = $2`, stream, durable).Scan(&floor, &created, &empty)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read safe point of %s/%s: %w", stream, durable, redacted(err, s.cfg.URL))
	case empty || created != codec.FormatTime(streamCreated) || floor < 0:
		return 0, nil
	}
	return uint64(floor), nil
}

// SaveSafePoint records that every message of stream up to seq is in this database.
func (s *Store) SaveSafePoint(ctx context.Context, stream, durable string, streamCreated time.Time, seq uint64) error {
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	_, err := s.pool.Exec(ctx, `INSERT INTO durable_positions (stream, durable, stream_created, ack_floor, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (stream, durable) DO UPDATE SET
			stream_created = excluded.stream_created, ack_floor = excluded.ack_floor, updated_at = excluded.updated_at`,
		stream, durable, codec.FormatTime(streamCreated), int64(seq), codec.FormatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("save safe point of %s/%s: %w", stream, durable, redacted(err, s.cfg.URL))
	}
	return nil
}

// ResetForReplay, when execution_results and dead_letters are empty, sets every execution's
// counters back to 0 and its status to pending (expired stays expired) and forgets the safe
// points, reporting whether it did. The check and the reset hold the projection tables in
// SHARE mode, so no replica's batch lands in between.
func (s *Store) ResetForReplay(ctx context.Context) (bool, error) {
	if !s.enter() {
		return false, ErrClosed
	}
	defer s.leave()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("reset for replay: begin: %w", redacted(err, s.cfg.URL))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `LOCK TABLE execution_results, dead_letters IN SHARE MODE`); err != nil {
		return false, fmt.Errorf("reset for replay: lock: %w", err)
	}
	var empty bool
	if err := tx.QueryRow(ctx, `SELECT `+emptyProjection).Scan(&empty); err != nil {
		return false, fmt.Errorf("reset for replay: %w", err)
	}
	if !empty {
		return false, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE executions SET success_count = 0, failure_count = 0,
		status = CASE WHEN status = 'expired' THEN 'expired' ELSE 'pending' END
		WHERE success_count <> 0 OR failure_count <> 0 OR status NOT IN ('pending', 'expired')`); err != nil {
		return false, fmt.Errorf("reset for replay: counters: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM durable_positions`); err != nil {
		return false, fmt.Errorf("reset for replay: safe points: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("reset for replay: commit: %w", err)
	}
	return true, nil
}
