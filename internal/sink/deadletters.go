package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"fanin/internal/codec"
)

// DeadLetter is one row of dead_letters: a message fanin could not project.
//
// A message is named by Stream, StreamCreated and Seq together: a stream deleted and created
// again starts its sequence numbers at 1 again, so (Stream, Seq) alone can name two messages.
type DeadLetter struct {
	Stream string
	// StreamCreated is the creation time of the stream (its incarnation) in codec.TimeLayout;
	// "" for dead letters recorded before fanin kept it, or when the pull loop did not know it.
	StreamCreated string
	Seq           uint64
	Subject       string
	Reason        string
	Payload       []byte
	// Header is the message's header, byte for byte: key case kept, each key's values in the
	// order the message carried them (non-UTF-8 bytes included); nil when it had none.
	Header map[string][]string
	// RawHeader is Header as dead_letters.headers stores it, the NATS wire header block (see
	// EncodeHeader); nil when the message had none.
	RawHeader  []byte
	RecordedAt string // the JetStream publish time, in codec.TimeLayout
}

// DeadLetterFilter selects dead letters; zero fields match everything.
type DeadLetterFilter struct {
	Stream string
	// StreamCreated selects one incarnation of the stream, in codec.TimeLayout.
	StreamCreated string
	// Reason matches dead letters whose reason contains it.
	Reason string
	// Since and Until bound recorded_at: Since ≤ recorded_at < Until.
	Since, Until time.Time
	// Limit caps the result (0: no limit).
	Limit int
}

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

// where returns the WHERE clause (without the keyword; "1" when f selects everything) and its
// arguments. Limit is not part of it.
func (f DeadLetterFilter) where() (string, []any) {
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
func (s *Sink) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	where, args := f.where()
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
	var out []DeadLetter
	for rows.Next() {
		var (
			d   DeadLetter
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
			if d.Header, err = DecodeHeader(d.RawHeader); err != nil {
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
func (s *Sink) DeleteDeadLetter(ctx context.Context, d DeadLetter) (bool, error) {
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

// The NATS wire header block: a version line, one "Key: value" line per value, an empty line.
const (
	headerLine = "NATS/1.0"
	crlf       = "\r\n"
)

// EncodeHeader returns h as a NATS wire header block, the form dead_letters.headers keeps:
// "NATS/1.0\r\n", then "Key: value\r\n" for each value (keys in byte order, their case kept;
// each key's values in order), then "\r\n". A nil or empty h is nil (no headers: SQL NULL).
//
// It is exact — DecodeHeader returns h again — for every header a NATS message can carry: a
// key that is not empty and holds no ':' or LF; values that hold no LF and do not begin with a
// space or tab. Any other byte is kept, CR and non-UTF-8 included. A header no message could carry is stored as near as the form allows (a
// newline becomes a space, as nats.go does when it publishes; a key without values is
// dropped), never refused: the dead letter is recorded all the same.
func EncodeHeader(h map[string][]string) []byte {
	keys := make([]string, 0, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys) // a map has no order: sorted, the same header is the same bytes
	var b bytes.Buffer
	b.WriteString(headerLine + crlf)
	for _, k := range keys {
		for _, v := range h[k] {
			b.WriteString(newlineToSpace.Replace(k))
			b.WriteString(": ")
			b.WriteString(newlineToSpace.Replace(v))
			b.WriteString(crlf)
		}
	}
	b.WriteString(crlf)
	return b.Bytes()
}

var newlineToSpace = strings.NewReplacer("\n", " ")

// ErrBadHeader is returned (wrapped) by DecodeHeader for bytes that are not a header block.
var ErrBadHeader = errors.New("not a NATS header block")

// DecodeHeader parses a header block EncodeHeader wrote (or any NATS wire header block) the
// way nats.go reads one from the wire: lines end in LF (one CR before it is dropped), a key
// ends at the first ':', blanks after the ':' are skipped, lines with an empty key are
// skipped, and the block ends at the first empty line. A nil or empty b is a nil header.
func DecodeHeader(b []byte) (map[string][]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	s := string(b)
	line, s, ok := nextHeaderLine(s)
	if !ok || !strings.HasPrefix(line, headerLine) {
		return nil, fmt.Errorf("%w: no %s line", ErrBadHeader, headerLine)
	}
	h := map[string][]string{}
	for {
		line, s, ok = nextHeaderLine(s)
		if !ok {
			return nil, fmt.Errorf("%w: no empty line at its end", ErrBadHeader)
		}
		if line == "" {
			return h, nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %q has no ':'", ErrBadHeader, line)
		}
		if k == "" {
			continue
		}
		h[k] = append(h[k], strings.TrimLeft(v, " \t"))
	}
}

// nextHeaderLine splits s after its first LF, dropping the LF and one CR before it.
func nextHeaderLine(s string) (line, rest string, ok bool) {
	line, rest, ok = strings.Cut(s, "\n")
	return strings.TrimSuffix(line, "\r"), rest, ok
}
