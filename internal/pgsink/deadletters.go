package pgsink

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"fanin/internal/codec"
	"fanin/internal/fault"
	"fanin/internal/store"
)

// deadLetterWhere is the WHERE clause of the dead letters f selects (not its Limit), with its
// arguments $1, $2, …
func deadLetterWhere(f store.DeadLetterFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Stream != "" {
		where = append(where, "stream = "+arg(f.Stream))
	}
	if f.StreamCreated != "" {
		where = append(where, "stream_created = "+arg(f.StreamCreated))
	}
	if f.Reason != "" {
		where = append(where, "strpos(reason, "+arg(f.Reason)+") > 0")
	}
	if !f.Since.IsZero() {
		where = append(where, "recorded_at >= "+arg(codec.FormatTime(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "recorded_at < "+arg(codec.FormatTime(f.Until)))
	}
	if len(where) == 0 {
		return "true", nil
	}
	return strings.Join(where, " AND "), args // clauses are constants; values are bound
}

// DeadLetters lists the dead letters f selects, oldest first, as sink.Sink.DeadLetters does.
func (s *Store) DeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]store.DeadLetterRow, error) {
	if !s.enter() {
		return nil, ErrClosed
	}
	defer s.leave()
	where, args := deadLetterWhere(f)
	q := `SELECT stream, stream_created, stream_seq, subject, reason, payload, headers, recorded_at FROM dead_letters`
	q += " WHERE " + where + " ORDER BY recorded_at, stream, stream_created, stream_seq"
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += " LIMIT $" + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", redacted(err, s.cfg.URL))
	}
	var (
		out []store.DeadLetterRow
		d   store.DeadLetterRow
		seq int64
	)
	_, err = pgx.ForEachRow(rows, []any{&d.Stream, &d.StreamCreated, &seq, &d.Subject, &d.Reason, &d.Payload,
		&d.RawHeader, &d.RecordedAt}, func() error {
		dl := d
		dl.Seq = uint64(seq)
		dl.Payload = append([]byte{}, d.Payload...)
		if d.RawHeader != nil {
			dl.RawHeader = append([]byte{}, d.RawHeader...)
			h, err := store.DecodeHeader(dl.RawHeader)
			if err != nil {
				return fmt.Errorf("dead letter %s/%d: headers: %w", dl.Stream, dl.Seq, err)
			}
			dl.Header = h
		}
		out = append(out, dl)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// DeleteDeadLetter removes the dead letter d names (stream, incarnation, sequence) and no
// other, reporting whether it was there.
func (s *Store) DeleteDeadLetter(ctx context.Context, d store.DeadLetterRow) (bool, error) {
	if !s.enter() {
		return false, ErrClosed
	}
	defer s.leave()
	tag, err := s.pool.Exec(ctx, `DELETE FROM dead_letters WHERE stream = $1 AND stream_created = $2 AND stream_seq = $3`,
		d.Stream, d.StreamCreated, int64(d.Seq))
	if err != nil {
		return false, fmt.Errorf("delete dead letter %s/%d: %w", d.Stream, d.Seq, redacted(err, s.cfg.URL))
	}
	return tag.RowsAffected() > 0, nil
}

// PurgeDeadLetters deletes every dead letter f selects (f.Limit must be 0), chunk rows (0:
// store.DefaultPurgeChunk) per transaction so that no transaction holds many row locks for
// long while ingest writes, and returns how many it deleted — as sink.Sink.PurgeDeadLetters
// does for SQLite.
func (s *Store) PurgeDeadLetters(ctx context.Context, f store.DeadLetterFilter, chunk int) (int, error) {
	if f.Limit != 0 {
		return 0, fault.Fieldf("Limit", "must be 0 for a purge, not %d", f.Limit)
	}
	if chunk <= 0 {
		chunk = store.DefaultPurgeChunk
	}
	if !s.enter() {
		return 0, ErrClosed
	}
	defer s.leave()
	where, args := deadLetterWhere(f)
	args = append(args, chunk)
	// SKIP LOCKED: a row another purge is deleting is its to delete.
	q := `DELETE FROM dead_letters WHERE ctid = ANY(ARRAY(SELECT ctid FROM dead_letters WHERE ` + where +
		` LIMIT $` + strconv.Itoa(len(args)) + ` FOR UPDATE SKIP LOCKED))`
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("purge dead letters (%d deleted): %w", total, classify(redacted(err, s.cfg.URL)))
		}
		n := int(tag.RowsAffected())
		total += n
		if n == 0 {
			return total, nil
		}
	}
}
