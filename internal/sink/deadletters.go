package sink

import (
	"context"
	"fmt"
	"strings"
	"time"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// streamCreatedText is the dead_letters.stream_created of a record: "" when the stream's
// creation time is unknown.
func streamCreatedText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return codec.FormatTime(t)
}

const selectDeadLetters = `SELECT stream, stream_created, stream_seq, subject, reason, payload, headers,
	recorded_at FROM dead_letters`

// deadLetterWhere returns SQLite's WHERE clause for f (without the keyword; "1" when f selects
// everything) and its arguments. Limit is not part of it.
func deadLetterWhere(f store.DeadLetterFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if f.Stream != "" {
		where, args = append(where, "stream = ?"), append(args, f.Stream)
	}
	if f.StreamCreated != "" {
		where, args = append(where, "stream_created = ?"), append(args, f.StreamCreated)
	}
	if f.Reason != "" {
		where, args = append(where, "instr(reason, ?) > 0"), append(args, f.Reason)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "recorded_at >= ?"), append(args, codec.FormatTime(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "recorded_at < ?"), append(args, codec.FormatTime(f.Until))
	}
	if len(where) == 0 {
		return "1", nil
	}
	return strings.Join(where, " AND "), args // clauses are constants; values are bound
}

// DeadLetters lists the dead letters f selects, oldest first.
func (s *Sink) DeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]store.DeadLetterRow, error) {
	where, args := deadLetterWhere(f)
	q := selectDeadLetters + " WHERE " + where + " ORDER BY recorded_at, stream, stream_created, stream_seq"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []store.DeadLetterRow
	for rows.Next() {
		var (
			d   store.DeadLetterRow
			seq int64
		)
		if err := rows.Scan(&d.Stream, &d.StreamCreated, &seq, &d.Subject, &d.Reason, &d.Payload,
			&d.RawHeader, &d.RecordedAt); err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		d.Seq = uint64(seq)
		if d.Payload == nil {
			d.Payload = []byte{}
		}
		if d.RawHeader != nil {
			if d.Header, err = store.DecodeHeader(d.RawHeader); err != nil {
				return nil, fmt.Errorf("dead letter %s/%d: headers: %w", d.Stream, d.Seq, err)
			}
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

const deleteDeadLetter = `DELETE FROM dead_letters WHERE stream = ? AND stream_created = ? AND stream_seq = ?`

// DeleteDeadLetter removes the dead letter d names (d.Stream, d.StreamCreated, d.Seq) and no
// other: not the message of the same sequence in another incarnation of the stream. It reports
// whether it was there.
func (s *Sink) DeleteDeadLetter(ctx context.Context, d store.DeadLetterRow) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	res, err := s.db.ExecContext(ctx, deleteDeadLetter, d.Stream, d.StreamCreated, int64(d.Seq))
	if err != nil {
		return false, fmt.Errorf("delete dead letter %s/%d: %w", d.Stream, d.Seq, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
