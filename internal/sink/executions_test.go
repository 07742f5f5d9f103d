package sink

import (
	"context"
	"errors"
	"testing"
	"time"

	"fanin/internal/fault"
	"fanin/internal/store"
)

// storedExecution is the part of an executions row the backend sets.
type storedExecution struct {
	JobID, Version, InitiatedBy, InitiatedAt string
	Target                                   int
}

func TestAddExecutionCreatesAPendingRow(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	demo := store.Execution{ExecID: testExec, JobID: testManifest, Version: testVersion, InitiatedBy: "operator",
		InitiatedAt: t0, TargetCount: 2}
	tests := []struct {
		name    string
		before  []store.Execution // added first
		add     store.Execution
		wantErr bool
		want    storedExecution // the executions row of add.ExecID afterwards
	}{
		{name: "a new execution", add: demo,
			want: storedExecution{testManifest, testVersion, "operator", "2026-05-20T12:00:00.000000Z", 2}},
		{
			name: "initiated_at in UTC, truncated to microseconds",
			add: store.Execution{ExecID: "exec-jst", JobID: testManifest, Version: testVersion, InitiatedBy: "operator",
				InitiatedAt: time.Date(2026, 5, 20, 21, 0, 0, 123456789, tokyo), TargetCount: 1},
			want: storedExecution{testManifest, testVersion, "operator", "2026-05-20T12:00:00.123456Z", 1},
		},
		{
			name:   "an execution already there is refused and kept",
			before: []store.Execution{demo},
			add: store.Execution{ExecID: testExec, JobID: "other", Version: "2.0.0", InitiatedBy: "someone else",
				InitiatedAt: t0.Add(time.Hour), TargetCount: 9},
			wantErr: true,
			want:    storedExecution{testManifest, testVersion, "operator", "2026-05-20T12:00:00.000000Z", 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestSink(t)
			for _, e := range tt.before {
				if err := s.AddExecution(ctx, e); err != nil {
					t.Fatalf("AddExecution(%s): %v", e.ExecID, err)
				}
			}
			err := s.AddExecution(ctx, tt.add)
			if (err != nil) != tt.wantErr {
				t.Fatalf("AddExecution(%s) = %v, want error %v", tt.add.ExecID, err, tt.wantErr)
			}
			if err != nil && !fault.IsPermanent(err) {
				t.Errorf("AddExecution of an existing execution: %v is not permanent", err)
			}
			var got storedExecution
			if err := s.db.QueryRow(`SELECT job_id, version, initiated_by, initiated_at, target_count
				FROM executions WHERE exec_id = ?`, tt.add.ExecID).Scan(&got.JobID, &got.Version,
				&got.InitiatedBy, &got.InitiatedAt, &got.Target); err != nil {
				t.Fatalf("read executions row %s: %v", tt.add.ExecID, err)
			}
			if got != tt.want {
				t.Errorf("executions row %s = %+v, want %+v", tt.add.ExecID, got, tt.want)
			}
			if got := readExecution(t, s, tt.add.ExecID); got != (execRow{Status: "pending"}) {
				t.Errorf("executions row = %+v, want pending with counters at 0", got)
			}
		})
	}
}

func TestAddExecutionIsTheRowWriteMoves(t *testing.T) {
	ctx := context.Background()
	s := newTestSink(t)
	if err := s.AddExecution(ctx, store.Execution{ExecID: testExec, JobID: testManifest, Version: testVersion,
		InitiatedBy: "operator", InitiatedAt: t0, TargetCount: 1}); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0))
	if got, want := readExecution(t, s, testExec), (execRow{Success: 1, Status: "completed"}); got != want {
		t.Fatalf("after its only result: %+v, want %+v", got, want)
	}
}

func TestAddExecutionAfterCloseIsErrClosed(t *testing.T) {
	s := newTestSink(t)
	s.Close()
	err := s.AddExecution(context.Background(), store.Execution{ExecID: testExec, JobID: testManifest,
		Version: testVersion, InitiatedBy: "operator", InitiatedAt: t0, TargetCount: 1})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("AddExecution after Close = %v, want ErrClosed", err)
	}
}
