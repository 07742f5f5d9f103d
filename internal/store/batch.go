package store

import (
	"fmt"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fault"
)

// Batch is one batch's Write as every store does it, over the transactions it takes: which
// records are dead letters and why, and what the committed transactions did. A store's Write
// makes one with NewBatch, calls Write with its own transaction, and returns Report.
type Batch struct {
	// Rejected holds, per record, why it is a dead letter: its poison, or the database refusing
	// its row. nil: the record is projected.
	Rejected []error
	rep      Report
	dead     int
}

// NewBatch starts the write of recs into the database system names (db.system.name), in
// transactions begun by operation (db.operation.name): poison records are dead letters from
// the start.
func NewBatch(system, operation string, recs []codec.Record) *Batch {
	b := &Batch{Rejected: make([]error, len(recs)), rep: Report{System: system, Operation: operation}}
	for i := range recs {
		if recs[i].Poison != nil {
			b.Rejected[i] = recs[i].Poison
		}
	}
	return b
}

// Write writes every record in one transaction, tx (given the records' indexes, in batch
// order), unless the database refuses some record permanently: then it splits the batch and
// writes the halves, each in its own transaction, until the offending records stand alone;
// those are marked Rejected, with the database's error as the reason, and written again, as
// dead letters. A transient error ends Write: nothing after it is tried.
func (b *Batch) Write(tx func(idx []int) error) error {
	idx := make([]int, len(b.Rejected))
	for i := range idx {
		idx[i] = i
	}
	return b.split(idx, tx)
}

func (b *Batch) split(idx []int, tx func(idx []int) error) error {
	err := tx(idx)
	if err == nil {
		return nil
	}
	if !fault.IsPermanent(err) || len(idx) == 0 {
		return err
	}
	if len(idx) == 1 {
		i := idx[0]
		if b.Rejected[i] != nil {
			return fmt.Errorf("record its dead letter: %w", err) // the dead letter itself is refused
		}
		b.Rejected[i] = fmt.Errorf("database rejected the row: %w", err)
		return b.split(idx, tx)
	}
	half := len(idx) / 2
	if err := b.split(idx[:half], tx); err != nil {
		return err
	}
	return b.split(idx[half:], tx)
}

// Sort returns the indexes of idx whose records are projected (good) and those that are dead
// letters, each in the order of idx.
func (b *Batch) Sort(idx []int) (good, dead []int) {
	for _, i := range idx {
		if b.Rejected[i] != nil {
			dead = append(dead, i)
		} else {
			good = append(good, i)
		}
	}
	return good, dead
}

// Committed adds what one committed transaction did: rows inserted and updated, records that
// changed nothing, dead letters written, and the time its commit took.
func (b *Batch) Committed(inserted, updated, unchanged, dead int, commit time.Duration) {
	b.rep.Inserted += inserted
	b.rep.Updated += updated
	b.rep.Unchanged += unchanged
	b.rep.Transactions++
	b.rep.Commit += commit
	b.dead += dead
}

// Report is what the committed transactions did, with the dead letters in batch order.
func (b *Batch) Report() Report {
	rep := b.rep
	if b.dead > 0 {
		rep.DeadLetters = make([]DeadLetter, 0, b.dead)
		for i, err := range b.Rejected {
			if err != nil {
				rep.DeadLetters = append(rep.DeadLetters, DeadLetter{Index: i, Err: err})
			}
		}
	}
	return rep
}
