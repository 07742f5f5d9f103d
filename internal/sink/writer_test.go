package sink

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/modeltest"
)

// The behaviours the original projector's tests pin come first, then fanin's own rules.

func TestStartedCreatesInFlightRow(t *testing.T) {
	s := newTestSink(t)
	rep := mustWrite(t, s, started("r1", "minipc").record(t, 1, t0.Add(time.Second)))

	if rep.Inserted != 1 {
		t.Errorf("Report.Inserted = %d, want 1", rep.Inserted)
	}
	got := readRow(t, s, "r1")
	want := modeltest.ResultRow{
		RequestID: testRequest, ExecID: valid(testExec), PCID: "minipc",
		StartedAt:  "2026-05-20T12:00:00.000000Z",
		RecordedAt: "2026-05-20T12:00:01.000000Z",
		JobID:      valid(testManifest), Version: valid(testVersion),
	}
	if got != want {
		t.Fatalf("row after started =\n%+v\nwant\n%+v", got, want)
	}
	if got.ExitCode.Valid || got.FinishedAt.Valid {
		t.Fatalf("in-flight row has exit_code %v, finished_at %v; want both NULL", got.ExitCode, got.FinishedAt)
	}
}

func TestStartedDeliveredTwiceMakesOneRow(t *testing.T) {
	s := newTestSink(t)
	ev := started("r1", "pc1")
	mustWrite(t, s, ev.record(t, 1, t0))
	first := readRow(t, s, "r1")

	rep := mustWrite(t, s, ev.record(t, 1, t0))
	if rep.Unchanged != 1 || rep.Inserted != 0 || rep.Updated != 0 {
		t.Errorf("redelivery report = %+v, want one unchanged record", rep)
	}
	if n := countRows(t, s, "execution_results"); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	if got := readRow(t, s, "r1"); got != first {
		t.Fatalf("redelivery changed the row:\n%+v\nwas\n%+v", got, first)
	}
}

func TestStartedAfterResultKeepsOneFinishedRowAndFillsVersion(t *testing.T) {
	s := newTestSink(t)
	mustWrite(t, s, result("r1", "pc1", 3).record(t, 1, t0.Add(3*time.Second)))
	finished := readRow(t, s, "r1")
	if finished.Version.Valid {
		t.Fatalf("a result alone set version %v, want NULL until its started event", finished.Version)
	}

	mustWrite(t, s, started("r1", "pc1").record(t, 1, t0.Add(4*time.Second)))

	if n := countRows(t, s, "execution_results"); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	got := readRow(t, s, "r1")
	want := finished
	want.Version = valid(testVersion) // fanin's improvement: the original left it NULL
	if got != want {
		t.Fatalf("row after late started =\n%+v\nwant\n%+v", got, want)
	}
	if !got.FinishedAt.Valid || got.ExitCode != validInt(3) {
		t.Fatalf("late started reopened the row: exit_code %v, finished_at %v", got.ExitCode, got.FinishedAt)
	}
}

func TestBroadcastStartedEventsMakeOneRowPerResultID(t *testing.T) {
	s := newTestSink(t)
	mustWrite(t, s,
		started("r1", "pc1").record(t, 1, t0),
		started("r2", "pc2").record(t, 2, t0),
		started("r3", "pc3").record(t, 3, t0),
	)
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM execution_results WHERE exec_id = ?`, testExec).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d rows for %s, want 3", n, testExec)
	}
}

func TestResultsSharingRequestIDMakeTwoRows(t *testing.T) {
	s := newTestSink(t)
	mustWrite(t, s,
		result("r1", "pc1", 0).record(t, 1, t0),
		result("r2", "pc2", 0).record(t, 2, t0),
	)
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM execution_results WHERE request_id = ?`, testRequest).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d rows for %s, want 2", n, testRequest)
	}
}

func TestSameResultTwiceChangesAndBumpsNothing(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, testExec, 5, "pending")
	x := result("r1", "pc1", 0)
	mustWrite(t, s, x.record(t, 1, t0))
	row, exec := readRow(t, s, "r1"), readExecution(t, s, testExec)

	rep := mustWrite(t, s, x.record(t, 1, t0))

	if rep.Unchanged != 1 || rep.Updated != 0 {
		t.Errorf("second delivery report = %+v, want one unchanged record", rep)
	}
	if got := readRow(t, s, "r1"); got != row {
		t.Errorf("second delivery changed the row:\n%+v\nwas\n%+v", got, row)
	}
	if got := readExecution(t, s, testExec); got != exec {
		t.Errorf("second delivery moved the execution to %+v from %+v", got, exec)
	}
	if exec != (execRow{Success: 1, Status: "running"}) {
		t.Errorf("execution after one result = %+v, want 1 success, running", exec)
	}
}

func TestDuplicateResultDoesNotOverwriteStoredOutcome(t *testing.T) {
	// An agent that reports the same run twice with a different outcome: the first stays.
	s := newTestSink(t)
	insertExecution(t, s, testExec, 5, "pending")
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0))
	first := readRow(t, s, "r1")

	other := result("r1", "pc1", 2)
	other.Stdout, other.Stderr = "", "other"
	other.FinishedAt = t0.Add(time.Minute).Format(time.RFC3339)
	mustWrite(t, s, other.record(t, 2, t0.Add(time.Minute)))

	if got := readRow(t, s, "r1"); got != first {
		t.Fatalf("a second result overwrote the first:\n%+v\nwas\n%+v", got, first)
	}
	if got := readExecution(t, s, testExec); got != (execRow{Success: 1, Status: "running"}) {
		t.Fatalf("execution = %+v, want the first result counted once", got)
	}
}

func TestLegacyResultDeliveredTwiceMakesOneRowWithDerivedID(t *testing.T) {
	s := newTestSink(t)
	x := result("", "legacy-pc", 0) // no result_id on the wire
	mustWrite(t, s, x.record(t, 1, t0))
	mustWrite(t, s, x.record(t, 1, t0))

	if n := countRows(t, s, "execution_results"); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	id := codec.LegacyResultID(testRequest, "legacy-pc")
	var got string
	if err := s.db.QueryRow(`SELECT result_id FROM execution_results`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Fatalf("result_id = %q, want the derived %q", got, id)
	}
}

func TestCountersCompleteWhenEveryTargetReported(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, testExec, 2, "pending")
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0), result("r2", "pc2", 1).record(t, 2, t0))

	if got, want := readExecution(t, s, testExec), (execRow{Success: 1, Failure: 1, Status: "completed"}); got != want {
		t.Fatalf("execution = %+v, want %+v", got, want)
	}
}

func TestCountersCompleteAcrossBatches(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, testExec, 2, "pending")
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0))
	if got, want := readExecution(t, s, testExec), (execRow{Success: 1, Status: "running"}); got != want {
		t.Fatalf("after the first result: execution = %+v, want %+v", got, want)
	}
	mustWrite(t, s, result("r2", "pc2", 1).record(t, 2, t0))
	if got, want := readExecution(t, s, testExec), (execRow{Success: 1, Failure: 1, Status: "completed"}); got != want {
		t.Fatalf("after the second result: execution = %+v, want %+v", got, want)
	}
}

func TestCountersStayRunningBelowTarget(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, testExec, 3, "pending")
	mustWrite(t, s, result("r1", "pc1", 0).record(t, 1, t0))

	if got, want := readExecution(t, s, testExec), (execRow{Success: 1, Status: "running"}); got != want {
		t.Fatalf("execution = %+v, want %+v", got, want)
	}
}

// reap does to resultID what the reaper does to a stale in-flight row: closes it as killed
// and counts one failure on its execution.
func reap(t *testing.T, s *Sink, resultID, execID string, at time.Time) {
	t.Helper()
	mustExec(t, s.db, `UPDATE execution_results SET exit_code = -1, finished_at = ?, reaped = 1
		WHERE result_id = ? AND finished_at IS NULL`, codec.FormatTime(at), resultID)
	mustExec(t, s.db, `UPDATE executions SET failure_count = failure_count + 1,
		status = CASE WHEN status = 'expired' THEN status
		              WHEN success_count + failure_count + 1 >= target_count THEN 'completed'
		              ELSE 'running' END
		WHERE exec_id = ?`, execID)
}

func TestResultAfterReapedRowOverwritesItWithoutBumpingCounters(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, testExec, 2, "pending")
	mustWrite(t, s, started("r1", "pc1").record(t, 1, t0))
	reap(t, s, "r1", testExec, t0.Add(time.Hour))
	reaped := readExecution(t, s, testExec)
	if reaped != (execRow{Failure: 1, Status: "running"}) {
		t.Fatalf("execution after the reaper = %+v, want 1 failure, running", reaped)
	}

	late := result("r1", "pc1", 0)
	late.Stdout = "late but real"
	late.FinishedAt = t0.Add(2 * time.Hour).Format(time.RFC3339)
	mustWrite(t, s, late.record(t, 1, t0.Add(2*time.Hour)))

	got := readRow(t, s, "r1")
	if got.Reaped != 0 {
		t.Errorf("reaped = %d, want 0", got.Reaped)
	}
	if got.ExitCode != validInt(0) || got.Stdout != "late but real" {
		t.Errorf("exit_code %v, stdout %q; want the late result's 0, %q", got.ExitCode, got.Stdout, late.Stdout)
	}
	if want := valid("2026-05-20T14:00:00.000000Z"); got.FinishedAt != want {
		t.Errorf("finished_at = %v, want the late result's %v", got.FinishedAt, want)
	}
	if got.RecordedAt != codec.FormatTime(t0) {
		t.Errorf("recorded_at = %s, want the started event's earlier %s", got.RecordedAt, codec.FormatTime(t0))
	}
	if e := readExecution(t, s, testExec); e != reaped {
		t.Errorf("the late result moved the execution to %+v from %+v: the reaper counted it already", e, reaped)
	}

	// Its redelivery is a plain duplicate now.
	rep := mustWrite(t, s, late.record(t, 1, t0.Add(2*time.Hour)))
	if rep.Unchanged != 1 {
		t.Errorf("redelivery of the late result: report %+v, want one unchanged record", rep)
	}
	if e := readExecution(t, s, testExec); e != reaped {
		t.Errorf("redelivery moved the execution to %+v from %+v", e, reaped)
	}
}

func TestRecordedAtIsPublishTime(t *testing.T) {
	s := newTestSink(t)
	published := time.Date(2026, 5, 20, 12, 34, 56, 789_012_345, time.UTC)
	mustWrite(t, s,
		started("r1", "pc1").record(t, 1, published),
		result("r2", "pc2", 0).record(t, 2, published.Add(time.Second)),
	)
	if got, want := readRow(t, s, "r1").RecordedAt, codec.FormatTime(published); got != want {
		t.Errorf("started: recorded_at = %s, want the publish time %s", got, want)
	}
	if got, want := readRow(t, s, "r2").RecordedAt, codec.FormatTime(published.Add(time.Second)); got != want {
		t.Errorf("result: recorded_at = %s, want the publish time %s", got, want)
	}
}

func TestRecordedAtIsEarliestPublishTime(t *testing.T) {
	early, mid, late := t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(3*time.Second)
	type message func(t *testing.T, published time.Time) codec.Record
	startedEvent := func(t *testing.T, at time.Time) codec.Record { return started("r1", "pc1").record(t, 1, at) }
	resultEvent := func(t *testing.T, at time.Time) codec.Record { return result("r1", "pc1", 0).record(t, 2, at) }
	tests := []struct {
		name        string
		first, then message
	}{
		{"started then started", startedEvent, startedEvent},
		{"result then result", resultEvent, resultEvent},
		{"started then result", startedEvent, resultEvent},
		{"result then started", resultEvent, startedEvent},
	}
	for _, tt := range tests {
		for _, sameBatch := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, same batch %v", tt.name, sameBatch), func(t *testing.T) {
				s := newTestSink(t)
				write := func(recs ...codec.Record) {
					t.Helper()
					if sameBatch {
						mustWrite(t, s, recs...)
						return
					}
					for _, r := range recs {
						mustWrite(t, s, r)
					}
				}
				write(tt.first(t, mid), tt.then(t, late))
				if got := readRow(t, s, "r1").RecordedAt; got != codec.FormatTime(mid) {
					t.Fatalf("a later-published message moved recorded_at to %s from %s", got, codec.FormatTime(mid))
				}
				write(tt.then(t, early))
				if got := readRow(t, s, "r1").RecordedAt; got != codec.FormatTime(early) {
					t.Fatalf("an earlier-published message left recorded_at at %s, want %s", got, codec.FormatTime(early))
				}
			})
		}
	}
}

func TestStartedMarksPendingExecutionRunning(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, testExec, 3, "pending")
	mustWrite(t, s, started("r1", "pc1").record(t, 1, t0))

	if got, want := readExecution(t, s, testExec), (execRow{Status: "running"}); got != want {
		t.Fatalf("execution = %+v, want %+v", got, want)
	}
}

func TestStartedLeavesNonPendingExecutionAlone(t *testing.T) {
	for _, status := range []string{"running", "completed", "expired"} {
		t.Run(status, func(t *testing.T) {
			s := newTestSink(t)
			insertExecution(t, s, testExec, 3, status)
			mustWrite(t, s, started("r1", "pc1").record(t, 1, t0))

			if got, want := readExecution(t, s, testExec), (execRow{Status: status}); got != want {
				t.Fatalf("execution = %+v, want %+v", got, want)
			}
		})
	}
}

func TestStartedWithoutExecutionRowCreatesNone(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, "other-exec", 3, "pending")
	mustWrite(t, s, started("r1", "pc1").record(t, 1, t0), result("r2", "pc2", 0).record(t, 2, t0))

	if n := countRows(t, s, "executions"); n != 1 {
		t.Fatalf("executions has %d rows, want only the backend's 1", n)
	}
	if got := readExecution(t, s, "other-exec"); got != (execRow{Status: "pending"}) {
		t.Fatalf("another execution moved to %+v", got)
	}
	if n := countRows(t, s, "execution_results"); n != 2 {
		t.Fatalf("execution_results has %d rows, want 2", n)
	}
}

func TestResultWithoutExecIDIsCountedWhenItsStartedEventArrives(t *testing.T) {
	for _, sameBatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("same batch %v", sameBatch), func(t *testing.T) {
			s := newTestSink(t)
			insertExecution(t, s, testExec, 2, "pending")
			x := result("r1", "pc1", 1)
			x.ExecID = ""
			ev := started("r1", "pc1")

			if sameBatch {
				mustWrite(t, s, x.record(t, 1, t0.Add(time.Second)), ev.record(t, 1, t0.Add(2*time.Second)))
			} else {
				mustWrite(t, s, x.record(t, 1, t0.Add(time.Second)))
				if got := readExecution(t, s, testExec); got != (execRow{Status: "pending"}) {
					t.Fatalf("a result without exec_id moved the execution to %+v", got)
				}
				mustWrite(t, s, ev.record(t, 1, t0.Add(2*time.Second)))
			}
			if got, want := readExecution(t, s, testExec), (execRow{Failure: 1, Status: "running"}); got != want {
				t.Fatalf("after the started event: execution = %+v, want %+v", got, want)
			}
			if got := readRow(t, s, "r1").ExecID; got != valid(testExec) {
				t.Fatalf("exec_id = %v, want it filled from the started event", got)
			}

			// Redeliveries of either count nothing more.
			mustWrite(t, s, ev.record(t, 1, t0.Add(2*time.Second)), x.record(t, 1, t0.Add(time.Second)))
			if got, want := readExecution(t, s, testExec), (execRow{Failure: 1, Status: "running"}); got != want {
				t.Fatalf("after redeliveries: execution = %+v, want %+v", got, want)
			}
		})
	}
}

func TestExpiredExecutionStaysExpiredWhenCounted(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, testExec, 1, "expired")
	mustWrite(t, s, started("r1", "pc1").record(t, 1, t0), result("r1", "pc1", 0).record(t, 1, t0))

	if got, want := readExecution(t, s, testExec), (execRow{Success: 1, Status: "expired"}); got != want {
		t.Fatalf("execution = %+v, want %+v", got, want)
	}
}

var storedTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

func TestTimestampsAreStoredInFixedUTCForm(t *testing.T) {
	s := newTestSink(t)
	ev := started("r1", "pc1")
	ev.StartedAt = "2026-05-20T21:00:00.123456789+09:00"
	x := result("r1", "pc1", 0)
	x.StartedAt = ev.StartedAt
	x.FinishedAt = "2026-05-20T21:00:01.999999999+09:00" // truncated, not rounded up to :02
	jst := time.FixedZone("JST", 9*60*60)
	published := time.Date(2026, 5, 20, 21, 0, 3, 456_789_999, jst)
	mustWrite(t, s, ev.record(t, 1, published), x.record(t, 1, published.Add(time.Second)))

	got := readRow(t, s, "r1")
	for _, c := range []struct{ column, got, want string }{
		{"started_at", got.StartedAt, "2026-05-20T12:00:00.123456Z"},
		{"finished_at", got.FinishedAt.String, "2026-05-20T12:00:01.999999Z"},
		{"recorded_at", got.RecordedAt, "2026-05-20T12:00:03.456789Z"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.column, c.got, c.want)
		}
		if !storedTime.MatchString(c.got) {
			t.Errorf("%s = %q is not in the form 2006-01-02T15:04:05.000000Z", c.column, c.got)
		}
	}
}

func TestResultColumnsComeFromThePayload(t *testing.T) {
	s := newTestSink(t)
	x := result("r1", "pc1", 125)
	x.ParentResultID = "parent-1"
	x.Skipped = true
	x.Stdout, x.Stderr = "out\x00put ✓", "err"
	mustWrite(t, s, x.record(t, 1, t0.Add(5*time.Second)))

	got := readRow(t, s, "r1")
	want := modeltest.ResultRow{
		RequestID: testRequest, ExecID: valid(testExec), PCID: "pc1", ExitCode: validInt(125),
		Stdout: "out\x00put ✓", Stderr: "err",
		StartedAt:  "2026-05-20T12:00:00.000000Z",
		FinishedAt: valid("2026-05-20T12:00:02.000000Z"),
		RecordedAt: "2026-05-20T12:00:05.000000Z",
		JobID:      valid(testManifest), ParentResultID: valid("parent-1"), Skipped: 1,
	}
	if got != want {
		t.Fatalf("row =\n%+v\nwant\n%+v", got, want)
	}
}

func TestResultFinishesInFlightRowAndFillsItsNulls(t *testing.T) {
	s := newTestSink(t)
	insertExecution(t, s, testExec, 2, "pending")
	mustWrite(t, s, started("r1", "pc1").record(t, 1, t0))
	x := result("r1", "pc1", 0)
	x.ParentResultID = "parent-1"
	mustWrite(t, s, x.record(t, 1, t0.Add(3*time.Second)))

	got := readRow(t, s, "r1")
	if got.ExitCode != validInt(0) || got.FinishedAt != valid("2026-05-20T12:00:02.000000Z") ||
		got.Stdout != x.Stdout || got.ParentResultID != valid("parent-1") || got.Version != valid(testVersion) {
		t.Fatalf("row after its result = %+v", got)
	}
	if got.RecordedAt != codec.FormatTime(t0) {
		t.Fatalf("recorded_at = %s, want the earlier started event's %s", got.RecordedAt, codec.FormatTime(t0))
	}
	if e := readExecution(t, s, testExec); e != (execRow{Success: 1, Status: "running"}) {
		t.Fatalf("execution = %+v, want 1 success, running", e)
	}
}

// updateCounter logs every UPDATE of an executions row into update_log.
const updateCounter = `CREATE TABLE update_log (n INTEGER);
	CREATE TRIGGER count_updates AFTER UPDATE ON executions BEGIN INSERT INTO update_log VALUES (1); END`

func TestBatchBumpsCountersWithOneUpdatePerExecution(t *testing.T) {
	const n = 1000
	s := newTestSink(t)
	insertExecution(t, s, testExec, n, "running")
	mustExec(t, s.db, updateCounter)

	recs := make([]codec.Record, n)
	for i := range recs {
		pc := fmt.Sprintf("PC-%04d", i)
		recs[i] = result("r-"+pc, pc, i%4).record(t, uint64(i+1), t0)
	}
	mustWrite(t, s, recs...)

	if got, want := readExecution(t, s, testExec), (execRow{Success: n / 4, Failure: n - n/4, Status: "completed"}); got != want {
		t.Fatalf("execution = %+v, want %+v", got, want)
	}
	if got := countRows(t, s, "update_log"); got != 1 {
		t.Fatalf("%d results in one batch updated the executions row %d times, want once", n, got)
	}
}
