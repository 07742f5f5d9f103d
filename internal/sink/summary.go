package sink

import (
	"context"
	"fmt"
)

// Summary is where one execution stands, with the dead letters beside it: what `ingest demo`
// prints once the broadcast is ingested.
type Summary struct {
	Status                    string              // pending, running, completed or expired
	Target, Succeeded, Failed int                 // target_count, success_count, failure_count
	Results                   ResultCounts        // the execution's execution_results rows
	DeadLetters               []StreamDeadLetters // every stream's (of any execution), by stream name
}

// StreamDeadLetters counts the dead letters of one stream.
type StreamDeadLetters struct {
	Stream string
	Count  int
	Reason string // one of their reasons, the first in text order
}

// ResultCounts counts execution_results rows.
type ResultCounts struct {
	Rows      int
	InFlight  int // rows not finished yet: no finished_at
	Versioned int // rows with their started event's version
}

// Summary reads where the execution execID stands; an execution that does not exist is an error
// wrapping sql.ErrNoRows.
func (s *Sink) Summary(ctx context.Context, execID string) (Summary, error) {
	var sum Summary
	if err := s.db.QueryRowContext(ctx, `SELECT status, target_count, success_count, failure_count
		FROM executions WHERE exec_id = ?`, execID).Scan(&sum.Status, &sum.Target, &sum.Succeeded, &sum.Failed); err != nil {
		return Summary{}, fmt.Errorf("read execution %s: %w", execID, err)
	}
	var err error
	if sum.Results, err = s.CountResults(ctx, execID); err != nil {
		return Summary{}, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT stream, count(*), min(reason) FROM dead_letters
		GROUP BY stream ORDER BY stream`)
	if err != nil {
		return Summary{}, fmt.Errorf("count dead letters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d StreamDeadLetters
		if err := rows.Scan(&d.Stream, &d.Count, &d.Reason); err != nil {
			return Summary{}, fmt.Errorf("count dead letters: %w", err)
		}
		sum.DeadLetters = append(sum.DeadLetters, d)
	}
	if err := rows.Err(); err != nil {
		return Summary{}, fmt.Errorf("count dead letters: %w", err)
	}
	return sum, nil
}

// CountResults counts the execution_results rows of the execution execID, or every row when
// execID is "".
func (s *Sink) CountResults(ctx context.Context, execID string) (ResultCounts, error) {
	q := `SELECT count(*), count(*) FILTER (WHERE finished_at IS NULL), count(version) FROM execution_results`
	var args []any
	if execID != "" {
		q += ` WHERE exec_id = ?`
		args = append(args, execID)
	}
	var c ResultCounts
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&c.Rows, &c.InFlight, &c.Versioned); err != nil {
		return ResultCounts{}, fmt.Errorf("count results: %w", err)
	}
	return c, nil
}

// CountStdoutLength counts the execution_results rows whose stdout is n characters long (SQLite's
// length(), which counts bytes only for ASCII text).
func (s *Sink) CountStdoutLength(ctx context.Context, n int) (int, error) {
	var count int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM execution_results WHERE length(stdout) = ?`,
		n).Scan(&count); err != nil {
		return 0, fmt.Errorf("count results with a %d-character stdout: %w", n, err)
	}
	return count, nil
}
