package project

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"fanin/internal/codec"
)

var t0 = time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)

func started(id, exec string, at time.Duration) codec.Record {
	return codec.Record{Kind: codec.KindStarted, Published: t0.Add(at), Started: &codec.Started{
		ResultID: id, RequestID: "req", ExecID: exec, PCID: "PC-" + id, StartedAt: t0, Version: "1.0"}}
}

func result(id, exec string, exit int32, at time.Duration) codec.Record {
	return codec.Record{Kind: codec.KindResult, Published: t0.Add(at), Result: &codec.Result{
		ResultID: id, RequestID: "req", ExecID: exec, PCID: "PC-" + id, ExitCode: exit,
		Stdout: "out " + id, StartedAt: t0, FinishedAt: t0.Add(time.Second)}}
}

func all(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// TestMergeOfAnyOrderGivesTheSameRowsAndCounts is the rule stores rely on: a batch merged in
// any order, with any duplicates, leaves the same rows and owes the same counters.
func TestMergeOfAnyOrderGivesTheSameRowsAndCounts(t *testing.T) {
	recs := []codec.Record{
		started("a", "e1", 0), result("a", "e1", 0, time.Second), result("a", "e1", 0, 2*time.Second),
		started("b", "e1", 0), result("b", "e1", 1, time.Second),
		result("c", "", 0, time.Second), started("c", "e2", 3*time.Second), // exec_id filled late
		started("d", "e2", 0), started("d", "e2", time.Second),
		result("e", "", 5, time.Second), // ad hoc: owed to no execution
	}
	want := map[string]Row{}
	wantDeltas := Deltas{"e1": {Started: true, Success: 1, Failure: 1}, "e2": {Started: true, Success: 1}}
	rng := rand.New(rand.NewPCG(1, 2))
	for run := 0; run < 200; run++ {
		order := all(len(recs))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		entries := map[string]*Entry{}
		deltas := Merge(recs, order, entries)
		rows := map[string]Row{}
		for id, e := range entries {
			if !e.Dirty || e.Existed {
				t.Fatalf("order %v: entry %s dirty=%v existed=%v, want a new dirty row", order, id, e.Dirty, e.Existed)
			}
			r := e.Cur
			r.TextSet = false // whether this merge set the text depends on the order; the text does not
			rows[id] = r
		}
		delete(deltas, "")
		if run == 0 {
			want = rows
			if !reflect.DeepEqual(deltas, wantDeltas) {
				t.Fatalf("deltas %v, want %v", printable(deltas), printable(wantDeltas))
			}
			continue
		}
		if !reflect.DeepEqual(rows, want) {
			t.Fatalf("order %v: rows %+v, want %+v", order, rows, want)
		}
		if !reflect.DeepEqual(deltas, wantDeltas) {
			t.Fatalf("order %v: deltas %v, want %v", order, printable(deltas), printable(wantDeltas))
		}
	}
	if got := want["c"]; got.ExecID != "e2" || !got.Finished || got.RecordedAt != codec.FormatTime(t0.Add(time.Second)) {
		t.Fatalf("row c = %+v: want exec_id filled by the late started event and the earliest recorded_at", got)
	}
}

// TestMergeIntoExistingRows checks what a batch owes rows already in the table: a settled
// outcome is never counted again, a reaped one is overwritten without a bump.
func TestMergeIntoExistingRows(t *testing.T) {
	finished := Row{ResultID: "a", ExecID: "e1", Finished: true, RecordedAt: codec.FormatTime(t0)}
	reaped := Row{ResultID: "b", ExecID: "e1", Finished: true, Reaped: true, ExitCode: -1, RecordedAt: codec.FormatTime(t0)}
	pending := Row{ResultID: "c", ExecID: "e1", RecordedAt: codec.FormatTime(t0)}
	entries := map[string]*Entry{
		"a": {Cur: finished, Existed: true},
		"b": {Cur: reaped, Existed: true},
		"c": {Cur: pending, Existed: true},
	}
	recs := []codec.Record{result("a", "e1", 1, time.Second), result("b", "e1", 0, time.Second), result("c", "e1", 0, time.Second)}
	deltas := Merge(recs, all(len(recs)), entries)
	if got, want := *deltas["e1"], (Delta{Success: 1}); got != want {
		t.Fatalf("e1 owed %+v, want %+v (only the pending row counts)", got, want)
	}
	if entries["a"].Dirty || entries["a"].Unchanged != 1 {
		t.Fatalf("a settled row was changed by a redelivery: %+v", entries["a"])
	}
	if e := entries["b"]; !e.Dirty || e.Cur.Reaped || e.Cur.ExitCode != 0 {
		t.Fatalf("reaped row not overwritten by its result: %+v", e.Cur)
	}
	if Unchanged(entries) != 1 {
		t.Fatalf("Unchanged = %d, want 1", Unchanged(entries))
	}
}

func printable(d Deltas) map[string]Delta {
	m := map[string]Delta{}
	for k, v := range d {
		m[k] = *v
	}
	return m
}
