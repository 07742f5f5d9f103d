package sink

import (
	"context"
	"fmt"
	"time"

	"fanin/internal/codec"
)

// insertInFlight is the original per-message projector's insert.
const insertInFlight = `INSERT INTO execution_results (result_id, request_id, exec_id, pc_id,
	started_at, version, job_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT(result_id) DO NOTHING`

// InsertInFlight inserts the in-flight execution_results row of one started event, published at
// recordedAt, in an autocommit statement of its own, and leaves a row already there alone: the
// original per-message projector's write, kept as the baseline the bench's per-message mode
// measures fanin against. It is not fanin's projection — it merges nothing into an existing row
// and does not move the executions row — so the ingester never calls it: it calls Write.
//
// The statement is prepared at the first call and kept until Close, as that projector kept it.
func (s *Sink) InsertInFlight(ctx context.Context, e codec.Started, recordedAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.inFlight == nil {
		stmt, err := s.db.PrepareContext(ctx, insertInFlight)
		if err != nil {
			return fmt.Errorf("insert in-flight row: prepare: %w", err)
		}
		s.inFlight = stmt
	}
	if _, err := s.inFlight.ExecContext(ctx, e.ResultID, e.RequestID, e.ExecID, e.PCID,
		codec.FormatTime(e.StartedAt), e.Version, e.ManifestID, codec.FormatTime(recordedAt)); err != nil {
		return fmt.Errorf("insert in-flight row %s: %w", e.ResultID, err)
	}
	return nil
}
