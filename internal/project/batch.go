package project

import "fanin/internal/codec"

// Entry tracks one result_id through a batch.
type Entry struct {
	Cur       Row
	Existed   bool // a row was in the table before this transaction
	Dirty     bool // Cur differs from the table's row: it must be written
	Unchanged int  // records that changed nothing
}

// Delta is what one batch owes one execution.
type Delta struct {
	Started          bool // a started event was seen: pending → running
	Success, Failure int
}

// Deltas are the executions' deltas of a batch, by exec_id ("" collects what no execution is
// owed).
type Deltas map[string]*Delta

// For returns execID's delta, adding it when missing.
func (m Deltas) For(execID string) *Delta {
	d := m[execID]
	if d == nil {
		d = &Delta{}
		m[execID] = d
	}
	return d
}

// Add adds every delta of o to m.
func (m Deltas) Add(o Deltas) {
	for id, d := range o {
		e := m.For(id)
		e.Started = e.Started || d.Started
		e.Success += d.Success
		e.Failure += d.Failure
	}
}

// Merge applies recs[idx...], in batch order, to the rows in entries (adding the rows it
// creates): the same as applying them one by one, but each row is then written once and each
// execution's counters bumped once. It returns what the executions are owed.
func Merge(recs []codec.Record, idx []int, entries map[string]*Entry) Deltas {
	execs := Deltas{}
	slab := make([]Entry, 0, len(idx)) // the entries merge creates, in one allocation
	for _, i := range idx {
		r := &recs[i]
		id := ResultID(r)
		e := entries[id]
		var cur *Row
		if e != nil {
			cur = &e.Cur
		}
		var (
			next    Row
			changed bool
			bump    *Outcome
		)
		if r.Kind == codec.KindStarted {
			next, changed, bump = ApplyStarted(cur, r.Started, r.RecordedAtText())
			execs.For(r.Started.ExecID).Started = true
		} else {
			next, changed, bump = ApplyResult(cur, r.Result, r.RecordedAtText())
		}
		if !changed {
			e.Unchanged++ // a record that changes nothing found a row
			continue
		}
		if e == nil {
			slab = append(slab, Entry{}) // within its capacity: earlier entries do not move
			e = &slab[len(slab)-1]
			entries[id] = e
		}
		e.Cur, e.Dirty = next, true
		if bump != nil {
			d := execs.For(bump.ExecID)
			if bump.Success {
				d.Success++
			} else {
				d.Failure++
			}
		}
	}
	return execs
}

// ResultID is the result_id of the row r projects into.
func ResultID(r *codec.Record) string {
	if r.Kind == codec.KindStarted {
		return r.Started.ResultID
	}
	return r.Result.ResultID
}

// ResultIDs are the result_ids of recs[idx...], in that order.
func ResultIDs(recs []codec.Record, idx []int) []string {
	ids := make([]string, len(idx))
	for k, i := range idx {
		ids[k] = ResultID(&recs[i])
	}
	return ids
}

// StartedOnly reports whether recs[idx...] are all started events, and there is at least one.
func StartedOnly(recs []codec.Record, idx []int) bool {
	for _, i := range idx {
		if recs[i].Kind != codec.KindStarted {
			return false
		}
	}
	return len(idx) > 0
}

// Unchanged counts the records of entries that changed nothing.
func Unchanged(entries map[string]*Entry) int {
	n := 0
	for _, e := range entries {
		n += e.Unchanged
	}
	return n
}
