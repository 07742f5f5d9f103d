package sink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"fanin/internal/codec"
)

// What the pull loop keeps in the database about its durables (migration 0002): which database
// this is, and a safe point per durable. Together they let a durable be checked and recovered
// without trusting its server-side position blindly.

// DatabaseID returns the identity this database was given when it was first migrated. Copies
// of the file (a backup restored, a litestream replica) share it; a new file has its own.
func (s *Sink) DatabaseID(ctx context.Context) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM fanin_meta WHERE key = 'database_id'`).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("read database id: %w", err)
	}
	return id, nil
}

// SafePoint returns the stream sequence up to which every message of stream reached this
// database through durable, as SaveSafePoint last recorded it for the stream's incarnation
// created at streamCreated; 0 when nothing is known — another incarnation, no record, or an
// empty projection (a record that outlived the rows it vouched for).
func (s *Sink) SafePoint(ctx context.Context, stream, durable string, streamCreated time.Time) (uint64, error) {
	var (
		floor   int64
		created string
		empty   bool
	)
	err := s.db.QueryRowContext(ctx, `SELECT ack_floor, stream_created, `+emptyProjection+`
		FROM durable_positions WHERE stream = ? AND durable = ?`, stream, durable).Scan(&floor, &created, &empty)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read safe point of %s/%s: %w", stream, durable, err)
	case empty || created != codec.FormatTime(streamCreated) || floor < 0:
		return 0, nil
	}
	return uint64(floor), nil
}

// SaveSafePoint records that every message of stream (the incarnation created at
// streamCreated) up to seq is in this database: the durable's ack floor, read while it had
// fanin's settings.
func (s *Sink) SaveSafePoint(ctx context.Context, stream, durable string, streamCreated time.Time, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO durable_positions (stream, durable, stream_created, ack_floor, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (stream, durable) DO UPDATE SET
			stream_created = excluded.stream_created, ack_floor = excluded.ack_floor, updated_at = excluded.updated_at`,
		stream, durable, codec.FormatTime(streamCreated), int64(seq), codec.FormatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("save safe point of %s/%s: %w", stream, durable, err)
	}
	return nil
}

// raiseMark is the stream mark (migration 0004) a transaction leaves: never lowered.
const raiseMark = `INSERT INTO stream_marks (stream, stream_created, last_seq) VALUES (?, ?, ?)
	ON CONFLICT (stream, stream_created) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)`

// writeMarks raises, in tx, the mark of each stream incarnation recs[idx...] came from to the
// highest sequence among them: the database holds every message up to it that its durable may
// ack once tx commits (batch.CommitMarker).
func writeMarks(ctx context.Context, tx *txn, recs []codec.Record, idx []int) error {
	type incarnation struct {
		stream  string
		created time.Time
	}
	var marks map[incarnation]uint64 // a batch comes from one stream: one entry, most often
	for _, i := range idx {
		r := &recs[i]
		if r.Stream == "" || r.Seq == 0 {
			continue // not from JetStream (a test's or a tool's record)
		}
		if marks == nil {
			marks = make(map[incarnation]uint64, 1)
		}
		k := incarnation{r.Stream, r.StreamCreated}
		marks[k] = max(marks[k], r.Seq)
	}
	for k, seq := range marks {
		if _, err := tx.ExecContext(ctx, raiseMark, k.stream, codec.FormatTime(k.created), int64(seq)); err != nil {
			return fmt.Errorf("mark %s at %d: %w", k.stream, seq, err)
		}
	}
	return nil
}

// LastCommitted returns the highest sequence of stream's incarnation created at streamCreated
// that a committed transaction held (batch.CommitMarker); known is false when the database has
// none: another incarnation, an empty projection, or only rows written before it kept marks.
func (s *Sink) LastCommitted(ctx context.Context, stream string, streamCreated time.Time) (seq uint64, known bool, err error) {
	var (
		last  int64
		empty bool
	)
	err = s.db.QueryRowContext(ctx, `SELECT last_seq, `+emptyProjection+`
		FROM stream_marks WHERE stream = ? AND stream_created = ?`, stream, codec.FormatTime(streamCreated)).Scan(&last, &empty)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read the last committed sequence of %s: %w", stream, err)
	case empty || last < 0:
		return 0, false, nil
	}
	return uint64(last), true, nil
}

// ResetForReplay prepares an empty projection for the streams to be projected again from the
// start (domain.md, "Replay"): when execution_results and dead_letters hold nothing, it sets
// every execution's counters back to 0 and its status back to pending (an expired execution
// stays expired), so the replay counts each run exactly once, and forgets the safe points. It
// reports whether it did; a projection that is not empty is left alone, so calling it again —
// from the other projection, another replica, or after a crash — never undoes a replay's work.
func (s *Sink) ResetForReplay(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the check and the reset are one step
	if err != nil {
		return false, fmt.Errorf("reset for replay: begin: %w", err)
	}
	defer tx.Rollback()
	var empty bool
	if err := tx.QueryRowContext(ctx, `SELECT `+emptyProjection).Scan(&empty); err != nil {
		return false, fmt.Errorf("reset for replay: %w", err)
	}
	if !empty {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE executions SET success_count = 0, failure_count = 0,
		status = CASE WHEN status = 'expired' THEN 'expired' ELSE 'pending' END
		WHERE success_count <> 0 OR failure_count <> 0 OR status NOT IN ('pending', 'expired')`); err != nil {
		return false, fmt.Errorf("reset for replay: counters: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM durable_positions`); err != nil {
		return false, fmt.Errorf("reset for replay: safe points: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM stream_marks`); err != nil {
		return false, fmt.Errorf("reset for replay: stream marks: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("reset for replay: commit: %w", err)
	}
	return true, nil
}

// emptyProjection is an SQL expression that is true when execution_results and dead_letters
// hold no row.
const emptyProjection = `NOT EXISTS (SELECT 1 FROM execution_results) AND NOT EXISTS (SELECT 1 FROM dead_letters)`
