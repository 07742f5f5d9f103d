package modeltest

import "time"

// Regression is an explicit history the property test pins: a corner of the rules the
// generator reaches only now and then, run on every store every time.
type Regression struct {
	Name     string // a test name: what the history checks
	Scenario Scenario
}

// Regressions returns the explicit histories every store must pass (none so far was a failure
// of a store; they pin the corners the model exercises). A case the property test finds goes
// here too, besides rapid's fail file.
func Regressions() []Regression {
	// A result without exec_id, then its started event (which fills it), in one batch, twice.
	r1, st1 := fixedPub("RESULTS", 1, 10, fixedResultNo), fixedPub("EVENTS", 1, 20, fixedStarted)
	// A started row reaped, then the late result without exec_id, then the started event again.
	st2, r2 := fixedPub("EVENTS", 1, 10, fixedStarted), fixedPub("RESULTS", 1, 5, fixedResultNo)
	// An expired execution's run finishing, among poison.
	st3, r3 := fixedPub("EVENTS", 1, 10, fixedStarted), fixedPub("RESULTS", 1, 5, fixedResult)
	bad := fixedPub("RESULTS", 2, 5, `{"exit_code":1.5}`)
	return []Regression{
		{"ResultWithoutExecIDThenStartedInOneBatchCountsOnce", Scenario{
			exec: &mExec{Target: 1, Status: "pending"}, pubs: []*mPub{r1, st1},
			steps: []step{{batch: []*mPub{r1, st1, r1, st1}, crash: true}}}},
		{"ReapedRowThenLateResultWithoutExecIDThenStarted", Scenario{
			exec: &mExec{Target: 2, Status: "pending"}, pubs: []*mPub{st2, r2},
			steps: []step{{batch: []*mPub{st2}}, {reap: true}, {batch: []*mPub{r2, st2}}, {batch: []*mPub{r2}, crash: true}}}},
		{"ExpiredExecutionCountsButStaysExpired", Scenario{
			exec: &mExec{Target: 1, Status: "expired"}, pubs: []*mPub{st3, r3, bad},
			steps: []step{{batch: []*mPub{bad, st3, bad}}, {batch: []*mPub{r3, bad}, crash: true}}}},
	}
}

// The events of the explicit histories: a run's started event, its result without exec_id (a
// failure, exit 3), and its result with it (a success).
const (
	fixedStarted  = `{"result_id":"r1","request_id":"req-m","exec_id":"exec-m","pc_id":"pc1","started_at":"2026-05-20T12:00:00Z","manifest_id":"m","version":"1"}`
	fixedResultNo = `{"result_id":"r1","request_id":"req-m","pc_id":"pc1","exit_code":3,"stdout":"o","stderr":"e","started_at":"2026-05-20T12:00:00Z","finished_at":"2026-05-20T12:00:01Z"}`
	fixedResult   = `{"result_id":"r1","request_id":"req-m","exec_id":"exec-m","pc_id":"pc1","exit_code":0,"stdout":"o","stderr":"","started_at":"2026-05-20T12:00:00Z","finished_at":"2026-05-20T12:00:01Z"}`
)

// fixedPub builds a publication of an explicit history, its model events read back from the
// codec (the history is written as payloads, not as model events).
func fixedPub(stream string, seq uint64, ms int, payload string) *mPub {
	p := &mPub{stream: stream, seq: seq, payload: []byte(payload), published: modelT0.Add(time.Duration(ms) * time.Millisecond)}
	if stream == "EVENTS" {
		p.subject = "events.started.x"
	} else {
		p.subject = "results.x"
	}
	rec := p.record()
	switch {
	case rec.Poison != nil:
		p.poison = true
	case stream == "EVENTS":
		s := rec.Started
		p.started = &mStarted{s.ResultID, s.RequestID, s.ExecID, s.PCID, storeTime(s.StartedAt), s.ManifestID, s.Version}
	default:
		x := rec.Result
		p.result = &mResult{x.ResultID, x.RequestID, x.ExecID, x.ParentResultID, x.PCID, x.ExitCode, x.Skipped,
			x.Stdout, x.Stderr, storeTime(x.StartedAt), storeTime(x.FinishedAt), x.ManifestID}
	}
	return p
}
