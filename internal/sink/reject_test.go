package sink

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/modeltest"
)

// refuseEvil makes the database itself refuse, permanently, every run of PC "evil".
const refuseEvil = `CREATE TRIGGER refuse BEFORE INSERT ON execution_results
	WHEN NEW.pc_id = 'evil' BEGIN SELECT RAISE(ABORT, 'evil pc refused'); END`

func TestRowRejectedByDatabaseDoesNotHoldBatchHostage(t *testing.T) {
	const (
		n        = 50
		poisonAt = 13 // a poison record rides along: dead-lettered whichever half it falls in
	)
	tests := []struct {
		name string
		evil []int // indexes of the refused records
	}{
		{"first and last", []int{0, n - 1}},
		{"scattered", []int{7, 41}},
		{"adjacent", []int{24, 25}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSink(t)
			insertExecution(t, s, testExec, n, "pending")
			mustExec(t, s.db, refuseEvil)

			recs := make([]codec.Record, n)
			for i := range recs {
				pc := fmt.Sprintf("PC-%02d", i)
				if slices.Contains(tt.evil, i) {
					pc = "evil"
				}
				id := fmt.Sprintf("r%02d", i)
				at := t0.Add(time.Duration(i) * time.Millisecond)
				switch {
				case i == poisonAt:
					recs[i] = rawRecord(codec.KindResult, uint64(i+1), "results.req-1", []byte("{oops"), at)
				case i%3 == 0:
					recs[i] = started(id, pc).record(t, uint64(i+1), at)
				default:
					recs[i] = result(id, pc, 0).record(t, uint64(i+1), at)
				}
			}
			refused := slices.Sorted(slices.Values(append([]int{poisonAt}, tt.evil...)))

			rep, err := s.Write(context.Background(), recs)
			why := modeltest.Reasons(rep, len(recs))
			if err != nil {
				t.Fatalf("Write: %v", err)
			}

			var rejected []int
			for i, reason := range why {
				if reason != "" {
					rejected = append(rejected, i)
				}
			}
			if !slices.Equal(rejected, refused) {
				t.Fatalf("Report.DeadLetters marks %v, want %v", rejected, refused)
			}
			for _, i := range tt.evil {
				d := readDeadLetter(t, s, recs[i].Stream, recs[i].Seq)
				if !strings.Contains(d.Reason, "evil pc refused") {
					t.Errorf("dead letter %d reason %q lacks the database's error", i, d.Reason)
				}
				if d.Reason != why[i] {
					t.Errorf("dead letter %d reason %q, but Report.DeadLetters says %q", i, d.Reason, why[i])
				}
			}
			if got := countRows(t, s, "dead_letters"); got != len(refused) {
				t.Errorf("dead_letters has %d rows, want %d", got, len(refused))
			}
			if got := countRows(t, s, "execution_results"); got != n-len(refused) {
				t.Errorf("execution_results has %d rows, want the %d good ones", got, n-len(refused))
			}
			if rep.Inserted != n-len(refused) || len(rep.DeadLetters) != len(refused) {
				t.Errorf("report = %+v, want %d inserted, %d dead-lettered", rep, n-len(refused), len(refused))
			}
			// Every good result counted once, although parts of the batch were retried.
			var goodResults int
			for i := range n {
				if i%3 != 0 && !slices.Contains(refused, i) {
					goodResults++
				}
			}
			if got := readExecution(t, s, testExec); got.Success != goodResults || got.Failure != 0 {
				t.Errorf("execution = %+v, want %d successes", got, goodResults)
			}
		})
	}
}
