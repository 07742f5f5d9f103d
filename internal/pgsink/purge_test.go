package pgsink

import (
	"context"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// TestPurgeDeletesOnlyWhatTheFiltersSelect purges in chunks smaller than what it deletes:
// every selected dead letter goes, every other one stays.
func TestPurgeDeletesOnlyWhatTheFiltersSelect(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	var recs []codec.Record
	for i := range 25 {
		at := t0.Add(time.Duration(i) * time.Hour) // seq 1–12 before t0+12h, 13–25 from it
		kind := codec.KindStarted
		if i%2 == 1 {
			kind = codec.KindResult
		}
		recs = append(recs, record(kind, uint64(i+1), []byte("not json"), at))
	}
	if rep := mustWrite(t, s, recs...); len(rep.DeadLetters) != len(recs) {
		t.Fatalf("%d dead letters, want %d", len(rep.DeadLetters), len(recs))
	}
	f := store.DeadLetterFilter{Stream: "EVENTS", Until: t0.Add(12 * time.Hour)}
	n, err := s.PurgeDeadLetters(ctx, f, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 { // EVENTS seqs 1, 3, 5, 7, 9, 11
		t.Fatalf("purged %d, want 6", n)
	}
	left, err := s.DeadLetters(ctx, store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != len(recs)-6 {
		t.Fatalf("%d dead letters left, want %d", len(left), len(recs)-6)
	}
	for _, d := range left {
		if d.Stream == "EVENTS" && d.Seq < 12 {
			t.Fatalf("dead letter %s/%d survived the purge", d.Stream, d.Seq)
		}
	}
	if _, err := s.PurgeDeadLetters(ctx, store.DeadLetterFilter{Limit: 1}, 0); err == nil {
		t.Fatal("a purge with a limit was accepted")
	}
	if n, err := s.PurgeDeadLetters(ctx, store.DeadLetterFilter{}, 0); err != nil || n != len(recs)-6 {
		t.Fatalf("purge all: %d, %v; want %d", n, err, len(recs)-6)
	}
}
