package sink

import (
	"context"
	"fmt"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// AddExecution creates the executions row of e, as the backend does before it broadcasts. The
// ingester never calls it (fanin only moves an execution's status and counters: see
// docs/contract.md); the demo and tests do. An execution already there is an error.
func (s *Sink) AddExecution(ctx context.Context, e store.Execution) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO executions (exec_id, job_id, version, initiated_by,
		initiated_at, target_count) VALUES (?, ?, ?, ?, ?, ?)`,
		e.ExecID, e.JobID, e.Version, e.InitiatedBy, codec.FormatTime(e.InitiatedAt), e.TargetCount)
	if err != nil {
		return fmt.Errorf("add execution %s: %w", e.ExecID, classify(err))
	}
	return nil
}
