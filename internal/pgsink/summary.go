package pgsink

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// AddExecution creates the executions row of e, as the backend does before it broadcasts (the
// demo and tests call it; the ingester never does).
func (s *Store) AddExecution(ctx context.Context, e store.Execution) error {
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	_, err := s.pool.Exec(ctx, `INSERT INTO executions (exec_id, job_id, version, initiated_by,
		initiated_at, target_count) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.ExecID, e.JobID, e.Version, e.InitiatedBy, codec.FormatTime(e.InitiatedAt), e.TargetCount)
	if err != nil {
		return fmt.Errorf("add execution %s: %w", e.ExecID, classify(redacted(err, s.cfg.URL)))
	}
	return nil
}

// Summary reads where the execution execID stands, with every stream's dead letters.
func (s *Store) Summary(ctx context.Context, execID string) (store.Summary, error) {
	if !s.enter() {
		return store.Summary{}, ErrClosed
	}
	defer s.leave()
	var sum store.Summary
	if err := s.pool.QueryRow(ctx, `SELECT status, target_count, success_count, failure_count
		FROM executions WHERE exec_id = $1`, execID).Scan(&sum.Status, &sum.Target, &sum.Succeeded, &sum.Failed); err != nil {
		return store.Summary{}, fmt.Errorf("read execution %s: %w", execID, err)
	}
	var err error
	if sum.Results, err = s.countResults(ctx, execID); err != nil {
		return store.Summary{}, err
	}
	rows, err := s.pool.Query(ctx, `SELECT stream, count(*)::int, min(reason) FROM dead_letters
		GROUP BY stream ORDER BY stream`)
	if err != nil {
		return store.Summary{}, fmt.Errorf("count dead letters: %w", err)
	}
	var d store.StreamDeadLetters
	if _, err := pgx.ForEachRow(rows, []any{&d.Stream, &d.Count, &d.Reason}, func() error {
		sum.DeadLetters = append(sum.DeadLetters, d)
		return nil
	}); err != nil {
		return store.Summary{}, fmt.Errorf("count dead letters: %w", err)
	}
	return sum, nil
}

// CountResults counts the execution_results rows of execID, or every row when execID is "".
func (s *Store) CountResults(ctx context.Context, execID string) (store.ResultCounts, error) {
	if !s.enter() {
		return store.ResultCounts{}, ErrClosed
	}
	defer s.leave()
	return s.countResults(ctx, execID)
}

func (s *Store) countResults(ctx context.Context, execID string) (store.ResultCounts, error) {
	q := `SELECT count(*)::int, (count(*) FILTER (WHERE finished_at IS NULL))::int, count(version)::int FROM execution_results`
	var args []any
	if execID != "" {
		q += ` WHERE exec_id = $1`
		args = append(args, execID)
	}
	var c store.ResultCounts
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&c.Rows, &c.InFlight, &c.Versioned); err != nil {
		return store.ResultCounts{}, fmt.Errorf("count results: %w", err)
	}
	return c, nil
}

// DeleteBroadcast removes one broadcast's rows — its executions row, its execution_results
// (by exec_id or request_id) and the dead letters on its subjects — so that `ingest demo` can
// run again on the same database. The ingester never calls it.
func (s *Store) DeleteBroadcast(ctx context.Context, execID, requestID string) error {
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM execution_results WHERE exec_id = $1 OR request_id = $2`, execID, requestID)
	b.Queue(`DELETE FROM executions WHERE exec_id = $1`, execID)
	b.Queue(`DELETE FROM dead_letters WHERE subject = $1 OR starts_with(subject, $2)`,
		"results."+requestID, "events.started."+execID+".")
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("delete broadcast %s: %w", execID, redacted(err, s.cfg.URL))
	}
	return nil
}
