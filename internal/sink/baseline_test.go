package sink

import (
	"context"
	"errors"
	"testing"
	"time"

	"fanin/internal/modeltest"
)

func TestInsertInFlight(t *testing.T) {
	published := t0.Add(1500 * time.Microsecond)
	inFlight := modeltest.ResultRow{RequestID: testRequest, ExecID: valid(testExec), PCID: "pc1",
		StartedAt: "2026-05-20T12:00:00.000000Z", RecordedAt: "2026-05-20T12:00:00.001500Z",
		JobID: valid(testManifest), Version: valid(testVersion)}
	tests := []struct {
		name    string
		written []resultMsg         // written with Write first
		inserts int                 // InsertInFlight calls of r1's started event
		want    modeltest.ResultRow // r1's row afterwards
	}{
		{name: "a new run", inserts: 1, want: inFlight},
		{name: "twice: one row", inserts: 2, want: inFlight},
		{
			name:    "a finished row is left alone",
			written: []resultMsg{result("r1", "pc1", 0)},
			inserts: 1,
			want: modeltest.ResultRow{RequestID: testRequest, ExecID: valid(testExec), PCID: "pc1", ExitCode: validInt(0),
				Stdout: "hostname=pc1", StartedAt: "2026-05-20T12:00:00.000000Z",
				FinishedAt: valid("2026-05-20T12:00:02.000000Z"), RecordedAt: "2026-05-20T12:00:00.000000Z",
				JobID: valid(testManifest)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestSink(t)
			insertExecution(t, s, testExec, 1, "pending")
			for i, x := range tt.written {
				mustWrite(t, s, x.record(t, uint64(i+1), t0))
			}
			before := readExecution(t, s, testExec)
			e := *started("r1", "pc1").record(t, 1, published).Started
			for range tt.inserts {
				if err := s.InsertInFlight(ctx, e, published); err != nil {
					t.Fatalf("InsertInFlight: %v", err)
				}
			}
			if got := readRow(t, s, "r1"); got != tt.want {
				t.Errorf("row r1 =\n %+v\nwant\n %+v", got, tt.want)
			}
			if n := countRows(t, s, "execution_results"); n != 1 {
				t.Errorf("%d rows in execution_results, want 1", n)
			}
			if got := readExecution(t, s, testExec); got != before {
				t.Errorf("executions row moved from %+v to %+v; InsertInFlight must not touch it", before, got)
			}
		})
	}
}

func TestInsertInFlightAfterCloseIsErrClosed(t *testing.T) {
	s := newTestSink(t)
	e := *started("r1", "pc1").record(t, 1, t0).Started
	if err := s.InsertInFlight(context.Background(), e, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // closes the prepared statement too
		t.Fatalf("Close: %v", err)
	}
	if err := s.InsertInFlight(context.Background(), e, t0); !errors.Is(err, ErrClosed) {
		t.Fatalf("InsertInFlight after Close = %v, want ErrClosed", err)
	}
}
