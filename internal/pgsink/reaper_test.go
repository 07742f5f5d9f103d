package pgsink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fanin/internal/codec"
)

// reap is what the reaper (not fanin) does, in one transaction of its own: close one stale
// in-flight row (exit_code -1, finished_at, reaped = 1) and count it as a failure.
func reap(ctx context.Context, s *Store, resultID string) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx)
	var execID *string
	err = tx.QueryRow(ctx, `UPDATE execution_results SET exit_code = -1, finished_at = '2026-05-20T13:00:00.000000Z',
		reaped = 1 WHERE result_id = $1 AND finished_at IS NULL RETURNING exec_id`, resultID).Scan(&execID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE executions SET failure_count = failure_count + 1,
		status = CASE WHEN status = 'expired' THEN status
		              WHEN success_count + failure_count + 1 >= target_count THEN 'completed'
		              ELSE 'running' END
		WHERE exec_id = $1`, execID); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}

// TestAReaperRacingTheWritersLeavesEveryFinishedRunCountedOnce runs a reaper, which updates
// rows without fanin's help, against four writers delivering started events and results (some
// without exec_id) in every order: whoever finishes a run — its result, or the reaper — counts
// it, exactly once, so the counters equal the finished rows.
func TestAReaperRacingTheWritersLeavesEveryFinishedRunCountedOnce(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	const pcs = 300
	addExecution(t, s, "exec-1", pcs)
	var started, results []codec.Record
	for i := range pcs {
		id := fmt.Sprintf("r-%03d", i)
		exec := "exec-1"
		if i%5 == 0 {
			exec = "" // the started event fills it in
		}
		started = append(started, record(codec.KindStarted, uint64(i+1), startedPayload(id, "exec-1", "PC"), t0))
		results = append(results, record(codec.KindResult, uint64(i+1), resultPayload(id, exec, "PC", i%3, "x"), t0.Add(time.Second)))
	}
	var wg sync.WaitGroup
	var done atomic.Bool
	var reaped atomic.Int64
	wg.Add(1)
	go func() { // the reaper, closing rows as it finds them in flight
		defer wg.Done()
		for i := 0; !done.Load(); i = (i + 7) % pcs {
			ok, err := reap(ctx, s, fmt.Sprintf("r-%03d", i))
			if err != nil {
				t.Errorf("reaper: %v", err)
				return
			}
			if ok {
				reaped.Add(1)
			}
		}
	}()
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			recs := started
			if w%2 == 1 {
				recs = results
			}
			size := 5 + 11*w
			for i := 0; i < len(recs); i += size {
				j := (i + w*37) % len(recs) // each writer starts elsewhere
				if err := writeRetrying(ctx, s, recs[j:min(j+size, len(recs))]); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	writers.Wait()
	done.Store(true)
	wg.Wait()
	var finished, counted int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE finished_at IS NOT NULL AND exec_id = 'exec-1'),
		(SELECT success_count + failure_count FROM executions WHERE exec_id = 'exec-1') FROM execution_results`).Scan(&finished, &counted); err != nil {
		t.Fatal(err)
	}
	if finished != counted {
		t.Fatalf("%d finished runs but %d counted (%d reaped)", finished, counted, reaped.Load())
	}
	t.Logf("%d finished runs, %d closed by the reaper", finished, reaped.Load())
}
