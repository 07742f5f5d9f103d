package sink

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"testing"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// otherExec is a second execution, whose rows the test execution's counts must leave out.
const otherExec = "exec-2"

// inOther returns x as a result of otherExec.
func inOther(x resultMsg) resultMsg {
	x.ExecID = otherExec
	return x
}

func TestSummary(t *testing.T) {
	badStarted := rawRecord(codec.KindStarted, 9, "events.started.exec-1.bad", []byte("not json"), t0)
	badResult := rawRecord(codec.KindResult, 9, "results.req-1", []byte("{}"), t0)
	tests := []struct {
		name   string
		target int
		write  func(t *testing.T) []codec.Record
		want   store.Summary
	}{
		{
			name:   "nothing ingested yet",
			target: 3,
			write:  func(*testing.T) []codec.Record { return nil },
			want:   store.Summary{Status: "pending", Target: 3},
		},
		{
			name:   "runs in flight and finished, poison on both streams",
			target: 3,
			write: func(t *testing.T) []codec.Record {
				return []codec.Record{
					started("r1", "pc1").record(t, 1, t0),
					started("r2", "pc2").record(t, 2, t0),
					result("r1", "pc1", 0).record(t, 1, t0),
					result("r3", "pc3", 1).record(t, 2, t0), // its started event is not in yet
					inOther(result("r9", "pc9", 0)).record(t, 3, t0),
					badStarted, badResult,
				}
			},
			want: store.Summary{Status: "running", Target: 3, Succeeded: 1, Failed: 1,
				Results: store.ResultCounts{Rows: 3, InFlight: 1, Versioned: 2},
				DeadLetters: []store.StreamDeadLetters{
					{Stream: "EVENTS", Count: 1, Reason: badStarted.Poison.Error()},
					{Stream: "RESULTS", Count: 1, Reason: badResult.Poison.Error()},
				}},
		},
		{
			name:   "every run finished",
			target: 2,
			write: func(t *testing.T) []codec.Record {
				return []codec.Record{
					started("r1", "pc1").record(t, 1, t0),
					started("r2", "pc2").record(t, 2, t0),
					result("r1", "pc1", 0).record(t, 1, t0),
					result("r2", "pc2", 2).record(t, 2, t0),
				}
			},
			want: store.Summary{Status: "completed", Target: 2, Succeeded: 1, Failed: 1,
				Results: store.ResultCounts{Rows: 2, Versioned: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestSink(t)
			insertExecution(t, s, testExec, tt.target, "pending")
			if recs := tt.write(t); len(recs) > 0 {
				if _, err := s.Write(ctx, recs); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			got, err := s.Summary(ctx, testExec)
			if err != nil {
				t.Fatalf("Summary: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Summary =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestSummaryOfAnUnknownExecutionIsErrNoRows(t *testing.T) {
	s := newTestSink(t)
	if _, err := s.Summary(context.Background(), "exec-unknown"); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("Summary of an unknown execution = %v, want sql.ErrNoRows", err)
	}
}

func TestCountResults(t *testing.T) {
	ctx := context.Background()
	s := newTestSink(t)
	mustWrite(t, s,
		started("r1", "pc1").record(t, 1, t0),
		started("r2", "pc2").record(t, 2, t0),
		result("r1", "pc1", 0).record(t, 1, t0),
		result("r3", "pc3", 0).record(t, 2, t0),
		inOther(result("r9", "pc9", 0)).record(t, 3, t0),
	)
	tests := []struct {
		execID string
		want   store.ResultCounts
	}{
		{"", store.ResultCounts{Rows: 4, InFlight: 1, Versioned: 2}},
		{testExec, store.ResultCounts{Rows: 3, InFlight: 1, Versioned: 2}},
		{otherExec, store.ResultCounts{Rows: 1}},
		{"exec-unknown", store.ResultCounts{}},
	}
	for _, tt := range tests {
		if got, err := s.CountResults(ctx, tt.execID); err != nil || got != tt.want {
			t.Errorf("CountResults(%q) = %+v, %v; want %+v", tt.execID, got, err, tt.want)
		}
	}
}

func TestCountStdoutLength(t *testing.T) {
	ctx := context.Background()
	s := newTestSink(t)
	withStdout := func(resultID, stdout string) resultMsg {
		x := result(resultID, "pc-"+resultID, 0)
		x.Stdout = stdout
		return x
	}
	mustWrite(t, s,
		withStdout("r1", "abcd").record(t, 1, t0),
		withStdout("r2", "wxyz").record(t, 2, t0),
		withStdout("r3", "été!").record(t, 3, t0), // 4 characters, 6 bytes
		withStdout("r4", "").record(t, 4, t0),
		started("r5", "pc5").record(t, 5, t0), // in flight: stdout "" until its result
	)
	tests := []struct {
		n, want int
	}{
		{4, 3},
		{6, 0},
		{0, 2},
		{100, 0},
	}
	for _, tt := range tests {
		if got, err := s.CountStdoutLength(ctx, tt.n); err != nil || got != tt.want {
			t.Errorf("CountStdoutLength(%d) = %d, %v; want %d", tt.n, got, err, tt.want)
		}
	}
}
