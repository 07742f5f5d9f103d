package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"fanin/internal/codec"
)

// DeadLetter is one row of dead_letters: a message fanin could not project.
type DeadLetter struct {
	Stream     string
	Seq        uint64
	Subject    string
	Reason     string
	Payload    []byte
	Header     map[string][]string
	RecordedAt string // the JetStream publish time, in codec.TimeLayout
}

// DeadLetterFilter selects dead letters; zero fields match everything.
type DeadLetterFilter struct {
	Stream string
	// Reason matches dead letters whose reason contains it.
	Reason string
	// Since and Until bound recorded_at: Since ≤ recorded_at < Until.
	Since, Until time.Time
	// Limit caps the result (0: no limit).
	Limit int
}

// DeadLetters lists the dead letters f selects, oldest first.
func (s *Sink) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	var (
		where []string
		args  []any
	)
	if f.Stream != "" {
		where, args = append(where, "stream = ?"), append(args, f.Stream)
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
	q := "SELECT stream, stream_seq, subject, reason, payload, headers, recorded_at FROM dead_letters"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ") // clauses are constants; values are bound
	}
	q += " ORDER BY recorded_at, stream, stream_seq"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var (
			d       DeadLetter
			seq     int64
			headers *string
		)
		if err := rows.Scan(&d.Stream, &seq, &d.Subject, &d.Reason, &d.Payload, &headers, &d.RecordedAt); err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		d.Seq = uint64(seq)
		if d.Payload == nil {
			d.Payload = []byte{}
		}
		if headers != nil {
			if err := json.Unmarshal([]byte(*headers), &d.Header); err != nil {
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

// DeleteDeadLetter removes one dead letter; it reports whether it was there.
func (s *Sink) DeleteDeadLetter(ctx context.Context, stream string, seq uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	res, err := s.db.ExecContext(ctx, "DELETE FROM dead_letters WHERE stream = ? AND stream_seq = ?", stream, int64(seq))
	if err != nil {
		return false, fmt.Errorf("delete dead letter %s/%d: %w", stream, seq, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
