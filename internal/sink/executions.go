package sink

import (
	"context"
	"fmt"
	"time"

	"fanin/internal/codec"
)

// Execution is an executions row as the backend creates it before it broadcasts: pending, with
// its counters at 0.
type Execution struct {
	ExecID      string
	JobID       string    // the manifest
	Version     string    // the manifest's version
	InitiatedBy string    // who sent the command
	InitiatedAt time.Time // stored in codec.TimeLayout
	TargetCount int       // how many PCs it was sent to
}

// AddExecution creates the executions row of e, as the backend does before it broadcasts. The
// ingester never calls it (fanin only moves an execution's status and counters: see
// docs/contract.md); the demo and tests do. An execution already there is an error.
func (s *Sink) AddExecution(ctx context.Context, e Execution) error {
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
