package sink

import (
	"context"
	"fmt"

	"fanin/internal/store"
)

// Summary reads where the execution execID stands; an execution that does not exist is an error
// wrapping sql.ErrNoRows.
func (s *Sink) Summary(ctx context.Context, execID string) (store.Summary, error) {
	var sum store.Summary
	if err := s.db.QueryRowContext(ctx, `SELECT status, target_count, success_count, failure_count
		FROM executions WHERE exec_id = ?`, execID).Scan(&sum.Status, &sum.Target, &sum.Succeeded, &sum.Failed); err != nil {
		return store.Summary{}, fmt.Errorf("read execution %s: %w", execID, err)
	}
	var err error
	if sum.Results, err = s.CountResults(ctx, execID); err != nil {
		return store.Summary{}, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT stream, count(*), min(reason) FROM dead_letters
		GROUP BY stream ORDER BY stream`)
	if err != nil {
		return store.Summary{}, fmt.Errorf("count dead letters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d store.StreamDeadLetters
		if err := rows.Scan(&d.Stream, &d.Count, &d.Reason); err != nil {
			return store.Summary{}, fmt.Errorf("count dead letters: %w", err)
		}
		sum.DeadLetters = append(sum.DeadLetters, d)
	}
	if err := rows.Err(); err != nil {
		return store.Summary{}, fmt.Errorf("count dead letters: %w", err)
	}
	return sum, nil
}

// CountResults counts the execution_results rows of the execution execID, or every row when
// execID is "".
func (s *Sink) CountResults(ctx context.Context, execID string) (store.ResultCounts, error) {
	q := `SELECT count(*), count(*) FILTER (WHERE finished_at IS NULL), count(version) FROM execution_results`
	var args []any
	if execID != "" {
		q += ` WHERE exec_id = ?`
		args = append(args, execID)
	}
	var c store.ResultCounts
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&c.Rows, &c.InFlight, &c.Versioned); err != nil {
		return store.ResultCounts{}, fmt.Errorf("count results: %w", err)
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
