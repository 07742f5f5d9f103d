package sink

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// deadLetterKeys lists the dead letters left, as "STREAM/created/seq", sorted.
func deadLetterKeys(t *testing.T, s *Sink) []string {
	t.Helper()
	dls, err := s.DeadLetters(context.Background(), store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, d := range dls {
		keys = append(keys, fmt.Sprintf("%s/%s/%d", d.Stream, d.StreamCreated, d.Seq))
	}
	slices.Sort(keys)
	return keys
}

// seedDeadLetters records 5 RESULTS poison messages of each of two incarnations, published at
// t0+seq seconds, and 3 EVENTS ones (cut short: another reason); the first incarnation's payloads say "old", the others'
// "new".
func seedDeadLetters(t *testing.T, s *Sink) (first, second time.Time) {
	t.Helper()
	first, second = t0.Add(-time.Hour), t0.Add(time.Hour)
	var recs []codec.Record
	for seq := uint64(1); seq <= 5; seq++ {
		recs = append(recs, poisonOf(seq, first, "old"), poisonOf(seq, second, "new"))
	}
	for seq := uint64(1); seq <= 3; seq++ {
		recs = append(recs, rawRecord(codec.KindStarted, seq, "events.started.e.pc", []byte(`{"result_id":`), t0.Add(time.Duration(seq)*time.Second)))
	}
	mustPoison(t, s, recs...)
	return first, second
}

func TestPurgeDeletesOnlyWhatTheFiltersSelect(t *testing.T) {
	s := newTestSink(t)
	first, second := seedDeadLetters(t, s)
	ctx := context.Background()

	// The first incarnation's RESULTS/1 and /2 (published before t0+3s), two per transaction.
	f := store.DeadLetterFilter{Stream: "RESULTS", StreamCreated: codec.FormatTime(first), Until: t0.Add(3 * time.Second)}
	n, err := s.PurgeDeadLetters(ctx, f, 2)
	if err != nil || n != 2 {
		t.Fatalf("PurgeDeadLetters(%+v) = %d, %v; want 2", f, n, err)
	}
	var want []string
	for seq := 1; seq <= 5; seq++ {
		if seq > 2 {
			want = append(want, fmt.Sprintf("RESULTS/%s/%d", codec.FormatTime(first), seq))
		}
		want = append(want, fmt.Sprintf("RESULTS/%s/%d", codec.FormatTime(second), seq))
	}
	for seq := 1; seq <= 3; seq++ {
		want = append(want, fmt.Sprintf("EVENTS//%d", seq))
	}
	slices.Sort(want)
	if got := deadLetterKeys(t, s); !slices.Equal(got, want) {
		t.Fatalf("left %q, want %q", got, want)
	}

	// By reason (the decoder's, for the EVENTS ones too) and since: RESULTS and EVENTS from t0+4s on.
	dls, err := s.DeadLetters(ctx, store.DeadLetterFilter{Stream: "EVENTS", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	f = store.DeadLetterFilter{Reason: dls[0].Reason, Since: t0.Add(3 * time.Second)}
	n, err = s.PurgeDeadLetters(ctx, f, 1)
	if err != nil || n != 1 {
		t.Fatalf("PurgeDeadLetters(%+v) = %d, %v; want 1 (EVENTS/3)", f, n, err)
	}
	want = slices.DeleteFunc(want, func(k string) bool { return k == "EVENTS//3" })
	if got := deadLetterKeys(t, s); !slices.Equal(got, want) {
		t.Fatalf("left %q, want %q", got, want)
	}

	// Everything, in chunks bigger than what is left.
	n, err = s.PurgeDeadLetters(ctx, store.DeadLetterFilter{}, 0)
	if err != nil || n != len(want) {
		t.Fatalf("purge all = %d, %v; want %d", n, err, len(want))
	}
	if got := deadLetterKeys(t, s); len(got) != 0 {
		t.Fatalf("left %q after purging everything", got)
	}
	if _, err := s.PurgeDeadLetters(ctx, store.DeadLetterFilter{Limit: 3}, 0); err == nil {
		t.Fatal("a purge with a Limit was accepted")
	}
}

// TestPurgeWaitsOutAnotherWritersLock: another process holds the write lock past the busy
// timeout; the purge tries the chunk again and finishes once it is released.
func TestPurgeWaitsOutAnotherWritersLock(t *testing.T) {
	cfg := testConfig(t)
	cfg.BusyTimeout = 20 * time.Millisecond
	s := openTestSink(t, cfg)
	seedDeadLetters(t, s)

	other, err := sql.Open("sqlite3", "file:"+cfg.Path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond) // several busy timeouts
		tx.Rollback()
		close(released)
	}()
	n, err := s.PurgeDeadLetters(context.Background(), store.DeadLetterFilter{Stream: "EVENTS"}, 0)
	<-released
	if err != nil || n != 3 {
		t.Fatalf("purge under another writer's lock = %d, %v; want 3", n, err)
	}
}
