package pgsink

import (
	"context"
	"sync"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fault"
)

func TestMigrateIsIdempotentAndSafeFromManyReplicasAtOnce(t *testing.T) {
	url := srv.NewDB(t)
	var wg sync.WaitGroup
	applied := make([][]int, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := openStoreNoMigrate(t, url)
			var err error
			if applied[i], err = s.Migrate(context.Background()); err != nil {
				t.Errorf("replica %d: Migrate: %v", i, err)
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, a := range applied {
		n += len(a)
	}
	if n != 1 {
		t.Fatalf("migrations applied %v: want version 1 applied once in all", applied)
	}
}

func TestLedgerKeepsIdentitySafePointsAndResetsForReplay(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	id, err := s.DatabaseID(ctx)
	if err != nil || len(id) != 32 {
		t.Fatalf("DatabaseID = %q, %v: want 32 hex digits", id, err)
	}
	created := t0.Add(-time.Hour)
	if sp, err := s.SafePoint(ctx, "RESULTS", "d", created); err != nil || sp != 0 {
		t.Fatalf("SafePoint before any = %d, %v", sp, err)
	}
	mustWrite(t, s, record(codec.KindStarted, 1, startedPayload("r1", "exec-1", "p"), t0))
	if err := s.SaveSafePoint(ctx, "RESULTS", "d", created, 42); err != nil {
		t.Fatal(err)
	}
	if sp, _ := s.SafePoint(ctx, "RESULTS", "d", created); sp != 42 {
		t.Fatalf("SafePoint = %d, want 42", sp)
	}
	if sp, _ := s.SafePoint(ctx, "RESULTS", "d", created.Add(time.Second)); sp != 0 {
		t.Fatalf("SafePoint of another incarnation = %d, want 0", sp)
	}
	if did, err := s.ResetForReplay(ctx); err != nil || did {
		t.Fatalf("ResetForReplay of a projection that is not empty = %v, %v", did, err)
	}
	addExecution(t, s, "exec-1", 1)
	mustWrite(t, s, record(codec.KindResult, 1, resultPayload("r1", "exec-1", "p", 0, ""), t0))
	if _, err := s.pool.Exec(ctx, `DELETE FROM execution_results`); err != nil {
		t.Fatal(err)
	}
	if empty, _ := s.Empty(ctx); !empty {
		t.Fatal("Empty = false after the projection was wiped")
	}
	if did, err := s.ResetForReplay(ctx); err != nil || !did {
		t.Fatalf("ResetForReplay = %v, %v", did, err)
	}
	if sum, _ := s.Summary(ctx, "exec-1"); sum.Succeeded != 0 || sum.Status != "pending" {
		t.Fatalf("after the reset: %+v", sum)
	}
	if sp, _ := s.SafePoint(ctx, "RESULTS", "d", created); sp != 0 {
		t.Fatalf("SafePoint after the reset = %d", sp)
	}
}

// TestRestartMidIngestLosesNothing restarts the server between batches and during a stream of
// them: a Write that meets the restart fails transiently (the batch would be naked), the next
// one succeeds on new connections, and what every write committed is there once.
func TestRestartMidIngestLosesNothing(t *testing.T) {
	if !srv.Throwaway() {
		t.Skip("needs a throwaway cluster to restart")
	}
	s, _ := newStore(t)
	ctx := context.Background()
	const pcs = 300
	addExecution(t, s, "exec-1", pcs)
	var recs []codec.Record
	for i := range pcs {
		id := string(rune('A'+i/26/26%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i%26))
		recs = append(recs, record(codec.KindResult, uint64(i+1), resultPayload(id, "exec-1", "PC-"+id, 0, "x"), t0))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Restart(t)
	}()
	transient := 0
	for i := 0; i < len(recs); {
		b := recs[i:min(i+10, len(recs))]
		_, err := s.Write(ctx, b)
		if err != nil {
			if fault.IsPermanent(err) {
				t.Fatalf("write during a restart: permanent %v", err)
			}
			transient++
			time.Sleep(50 * time.Millisecond) // the loop would nak and retry after a delay
			continue
		}
		i += len(b)
	}
	<-done
	// Once more after the restart, on connections the restart closed.
	srv.Restart(t)
	for {
		if _, err := s.Write(ctx, recs); err == nil {
			break
		} else if fault.IsPermanent(err) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sum, err := s.Summary(ctx, "exec-1")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != pcs || sum.Results.Rows != pcs || sum.Status != "completed" {
		t.Fatalf("summary %+v: want every run once", sum)
	}
	t.Logf("%d writes failed transiently during the restarts", transient)
}
