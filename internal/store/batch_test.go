package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fault"
)

// fakeDB commits a transaction unless it holds a record it refuses (permanently), or it is
// down (transiently); it keeps what it committed.
type fakeDB struct {
	refuse    map[int]bool
	down      bool
	committed []int // projected records
	dead      []int // dead letters
	txs       int
}

func (db *fakeDB) tx(b *Batch) func(idx []int) error {
	return func(idx []int) error {
		if db.down {
			return errors.New("database is down")
		}
		good, dead := b.Sort(idx)
		for _, i := range good {
			if db.refuse[i] {
				return fault.Permanent(errors.New("constraint failed"))
			}
		}
		db.committed = append(db.committed, good...)
		db.dead = append(db.dead, dead...)
		db.txs++
		b.Committed(len(good), 0, 0, len(dead), time.Millisecond)
		return nil
	}
}

func TestBatchBisectsDownToTheRefusedRecords(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n        int
		poison   []int
		refuse   []int
		wantDead []int
	}{
		{name: "clean", n: 8},
		{name: "poison only", n: 8, poison: []int{2, 5}, wantDead: []int{2, 5}},
		{name: "one refused", n: 9, refuse: []int{4}, wantDead: []int{4}},
		{name: "refused and poison", n: 16, poison: []int{0}, refuse: []int{7, 15}, wantDead: []int{0, 7, 15}},
		{name: "all refused", n: 3, refuse: []int{0, 1, 2}, wantDead: []int{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := make([]codec.Record, tc.n)
			for _, i := range tc.poison {
				recs[i].Poison = errors.New("poison")
			}
			db := &fakeDB{refuse: map[int]bool{}}
			for _, i := range tc.refuse {
				db.refuse[i] = true
			}
			b := NewBatch("test", "BEGIN", recs)
			if err := b.Write(db.tx(b)); err != nil {
				t.Fatal(err)
			}
			rep := b.Report()
			var dead []int
			for _, d := range rep.DeadLetters {
				dead = append(dead, d.Index)
			}
			if !slices.Equal(dead, tc.wantDead) {
				t.Fatalf("dead letters %v, want %v", dead, tc.wantDead)
			}
			slices.Sort(db.dead)
			if !slices.Equal(db.dead, tc.wantDead) {
				t.Fatalf("dead letters written %v, want %v", db.dead, tc.wantDead)
			}
			if len(db.committed)+len(db.dead) != tc.n {
				t.Fatalf("%d projected + %d dead letters written, want %d records, each once", len(db.committed), len(db.dead), tc.n)
			}
			if rep.Inserted != len(db.committed) || rep.Transactions != db.txs || rep.System != "test" {
				t.Fatalf("report %+v, want %d inserted in %d transactions", rep, len(db.committed), db.txs)
			}
			if len(tc.refuse) == 0 && rep.Transactions != 1 {
				t.Fatalf("%d transactions for a batch nothing refused, want 1", rep.Transactions)
			}
		})
	}
}

func TestBatchStopsAtATransientError(t *testing.T) {
	db := &fakeDB{down: true}
	b := NewBatch("test", "BEGIN", make([]codec.Record, 4))
	err := b.Write(db.tx(b))
	if err == nil || fault.IsPermanent(err) {
		t.Fatalf("err %v, want the transient error", err)
	}
	if rep := b.Report(); rep.Transactions != 0 || len(rep.DeadLetters) != 0 {
		t.Fatalf("report %+v after a failed write, want nothing", rep)
	}
}
