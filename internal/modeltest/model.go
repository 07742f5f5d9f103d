// Package modeltest is the model-based property test of the projection rules, for any store:
// a random fleet and a random delivery history (any order, duplicates, redeliveries, batch
// boundaries, poison, reaper actions between batches, crashes between commit and ack) go
// through the store, and after every step its three tables must equal those of an in-memory
// model written from the text of docs/contract.md — not from package project.
//
// Both stores run it: internal/sink (SQLite) and internal/pgsink (PostgreSQL) each call Property
// and RunScenario on every Regression from a test of their own. Statements use $1-style
// parameters, which both databases read.
//
// Failing cases are kept by rapid under the calling package's testdata/rapid/ and replayed
// first on every run; each one found so far is also pinned as a Regression.
package modeltest

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// Writer is the store under test.
type Writer interface {
	Write(ctx context.Context, recs []codec.Record) (store.Report, error)
}

// ResultRow is one execution_results row, NULLs kept distinguishable, as a store's tests read
// it back.
type ResultRow struct {
	RequestID      string
	ExecID         sql.NullString
	PCID           string
	ExitCode       sql.NullInt64
	Stdout, Stderr string
	StartedAt      string
	FinishedAt     sql.NullString
	RecordedAt     string
	JobID          sql.NullString
	Version        sql.NullString
	Reaped         int
	ExpiresAt      sql.NullString
	ParentResultID sql.NullString
	Skipped        int
}

// Reasons returns, per record of a batch of n, why the report says it is a dead letter ("":
// projected).
func Reasons(rep store.Report, n int) []string {
	why := make([]string, n)
	for _, d := range rep.DeadLetters {
		why[d.Index] = d.Err.Error()
	}
	return why
}

// modelExecID is the broadcast of the generated fleet; modelOtherExec is an exec_id with no
// executions row (its counters are a no-op).
const (
	modelExecID    = "exec-m"
	modelOtherExec = "exec-x"
	modelRequest   = "req-m"
)

// modelT0 is when the generated broadcast went out.
var modelT0 = time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)

// ---- the model: domain.md, "Projection rules", applied one event at a time ----

// storeTime is domain.md's stored form: UTC, microseconds truncated, a literal Z.
func storeTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
}

// legacyID is domain.md's legacy result id, written from its text: UUID v5 (SHA-1) in the OID
// namespace of "kanade-issue-19/legacy-result-id:<request_id>:<pc_id>", lowercase hex.
func legacyID(requestID, pcID string) string {
	ns := []byte{0x6b, 0xa7, 0xb8, 0x12, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	h := sha1.Sum(append(ns, "kanade-issue-19/legacy-result-id:"+requestID+":"+pcID...))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

type mExec struct {
	Target, Success, Failure int
	Status                   string
}

type mDeadKey struct {
	Stream string
	Seq    uint64
}

type mDead struct {
	Subject    string
	Reason     bool // a reason is recorded (its text is the codec's business)
	Payload    string
	Headers    sql.NullString
	RecordedAt string
}

type model struct {
	rows  map[string]ResultRow
	execs map[string]*mExec
	dead  map[mDeadKey]mDead
}

// mStarted and mResult are events as domain.md's wire format defines them, already "decoded"
// by the generator (it knows what it encoded). "" means absent for optional fields.
type mStarted struct {
	ResultID, RequestID, ExecID, PCID, StartedAt, ManifestID, Version string
}

type mResult struct {
	ResultID, RequestID, ExecID, ParentResultID, PCID string
	ExitCode                                          int32
	Skipped                                           bool
	Stdout, Stderr, StartedAt, FinishedAt, ManifestID string
}

func nullStr(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func fillNull(dst *sql.NullString, v string) {
	if !dst.Valid && v != "" {
		*dst = nullStr(v)
	}
}

func minText(a, b string) string {
	if b < a {
		return b
	}
	return a
}

// count bumps execID's counters for one finished run and settles its status, as a result does.
func (m *model) count(execID string, exitCode int64) {
	e := m.execs[execID]
	if e == nil {
		return // a missing executions row is a no-op
	}
	if exitCode == 0 {
		e.Success++
	} else {
		e.Failure++
	}
	if e.Status == "expired" {
		return
	}
	if e.Success+e.Failure >= e.Target {
		e.Status = "completed"
	} else {
		e.Status = "running"
	}
}

func (m *model) started(s mStarted, recordedAt string) {
	r, ok := m.rows[s.ResultID]
	filledFinished := false
	if !ok {
		r = ResultRow{
			RequestID: s.RequestID, ExecID: nullStr(s.ExecID), PCID: s.PCID,
			StartedAt: s.StartedAt, RecordedAt: recordedAt,
			JobID: nullStr(s.ManifestID), Version: nullStr(s.Version),
		}
	} else {
		filledFinished = !r.ExecID.Valid && s.ExecID != "" && r.FinishedAt.Valid && r.Reaped == 0
		fillNull(&r.Version, s.Version)
		fillNull(&r.ExecID, s.ExecID)
		fillNull(&r.JobID, s.ManifestID)
		r.RecordedAt = minText(r.RecordedAt, recordedAt)
	}
	m.rows[s.ResultID] = r
	if e := m.execs[s.ExecID]; e != nil && e.Status == "pending" {
		e.Status = "running"
	}
	if filledFinished {
		m.count(r.ExecID.String, r.ExitCode.Int64)
	}
}

func (m *model) result(x mResult, recordedAt string) {
	r, ok := m.rows[x.ResultID]
	skipped := 0
	if x.Skipped {
		skipped = 1
	}
	switch {
	case !ok:
		r = ResultRow{
			RequestID: x.RequestID, ExecID: nullStr(x.ExecID), PCID: x.PCID,
			ExitCode: sql.NullInt64{Int64: int64(x.ExitCode), Valid: true},
			Stdout:   x.Stdout, Stderr: x.Stderr, StartedAt: x.StartedAt,
			FinishedAt: nullStr(x.FinishedAt), RecordedAt: recordedAt,
			JobID: nullStr(x.ManifestID), ParentResultID: nullStr(x.ParentResultID), Skipped: skipped,
		}
		m.rows[x.ResultID] = r
		if r.ExecID.Valid {
			m.count(r.ExecID.String, r.ExitCode.Int64)
		}
	case !r.FinishedAt.Valid || r.Reaped == 1:
		wasReaped := r.Reaped == 1
		r.ExitCode = sql.NullInt64{Int64: int64(x.ExitCode), Valid: true}
		r.Stdout, r.Stderr = x.Stdout, x.Stderr
		r.FinishedAt = nullStr(x.FinishedAt)
		r.Skipped = skipped
		r.Reaped = 0
		r.RequestID = x.RequestID
		fillNull(&r.JobID, x.ManifestID)
		fillNull(&r.ExecID, x.ExecID)
		fillNull(&r.ParentResultID, x.ParentResultID)
		r.RecordedAt = minText(r.RecordedAt, recordedAt)
		m.rows[x.ResultID] = r
		if !wasReaped && r.ExecID.Valid {
			m.count(r.ExecID.String, r.ExitCode.Int64)
		}
	default:
		r.RecordedAt = minText(r.RecordedAt, recordedAt)
		m.rows[x.ResultID] = r
	}
}

// reap is the reaper closing an in-flight row: exit_code -1, finished_at, reaped = 1, and one
// failure counted (status set) as a result would.
func (m *model) reap(resultID, finishedAt string) {
	r := m.rows[resultID]
	r.ExitCode = sql.NullInt64{Int64: -1, Valid: true}
	r.FinishedAt = nullStr(finishedAt)
	r.Reaped = 1
	m.rows[resultID] = r
	m.count(r.ExecID.String, -1)
}

func (m *model) poison(p *mPub) {
	k := mDeadKey{p.stream, p.seq}
	if _, ok := m.dead[k]; ok {
		return
	}
	m.dead[k] = mDead{Subject: p.subject, Reason: true, Payload: string(p.payload), RecordedAt: storeTime(p.published)}
}

func (m *model) apply(p *mPub) {
	recordedAt := storeTime(p.published)
	switch {
	case p.poison:
		m.poison(p)
	case p.started != nil:
		m.started(*p.started, recordedAt)
	default:
		m.result(*p.result, recordedAt)
	}
}

// ---- the generator ----

// mPub is one message on a stream: a publication. Redeliveries reuse it (same seq, same time).
type mPub struct {
	stream    string
	seq       uint64
	subject   string
	payload   []byte
	published time.Time
	poison    bool
	started   *mStarted
	result    *mResult
}

func (p *mPub) String() string {
	return fmt.Sprintf("%s/%d %s", p.stream, p.seq, p.payload)
}

func (p *mPub) record() codec.Record {
	kind := codec.KindStarted
	if p.stream == "RESULTS" {
		kind = codec.KindResult
	}
	r := codec.Record{Stream: p.stream, Seq: p.seq, Subject: p.subject, Published: p.published,
		Payload: p.payload, Kind: kind}
	r.Decode()
	return r
}

var modelZones = []*time.Location{time.UTC, time.FixedZone("JST", 9*3600), time.FixedZone("X", -(5*3600 + 30*60))}

// drawTime returns instant t written in a random valid RFC 3339 form.
func drawTime(t *rapid.T, at time.Time, label string) string {
	zone := rapid.SampledFrom(modelZones).Draw(t, label+"_zone")
	layout := rapid.SampledFrom([]string{time.RFC3339Nano, "2006-01-02T15:04:05.000000000Z07:00"}).Draw(t, label+"_layout")
	return at.In(zone).Format(layout)
}

// jsonObject joins members "key":value, in the order given.
func jsonObject(members []string) []byte {
	return []byte("{" + strings.Join(members, ",") + "}")
}

func q(s string) string { return fmt.Sprintf("%q", s) } // ASCII and simple unicode only

// poisonStarted and poisonResult can never succeed, each for a reason domain.md names.
var (
	poisonStarted = []string{
		``,
		`not json`,
		`{"result_id":"p1","request_id":`,
		`null`,
		`[]`,
		`{}`,
		`{"result_id":"p1","request_id":"r","exec_id":"e","pc_id":"p","started_at":"2026-05-20T12:00:00Z","manifest_id":"m"}`,                                // no version
		`{"result_id":"p1","request_id":"r","exec_id":"e","pc_id":"p","started_at":"yesterday","manifest_id":"m","version":"1"}`,                             // bad time
		`{"result_id":"p1","result_id":"p1","request_id":"r","exec_id":"e","pc_id":"p","started_at":"2026-05-20T12:00:00Z","manifest_id":"m","version":"1"}`, // duplicated key
		`{"Result_ID":"p1","request_id":"r","exec_id":"e","pc_id":"p","started_at":"2026-05-20T12:00:00Z","manifest_id":"m","version":"1"}`,                  // keys are case-sensitive
		`{"result_id":"p1","request_id":"r","exec_id":"e","pc_id":"","started_at":"2026-05-20T12:00:00Z","manifest_id":"m","version":"1"}`,                   // empty required
		`{"result_id":"p1","request_id":"r","exec_id":null,"pc_id":"p","started_at":"2026-05-20T12:00:00Z","manifest_id":"m","version":"1"}`,                 // null required
	}
	poisonResult = []string{
		``,
		`{"request_id":"r","pc_id":"x","exit_code":1.5,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		`{"request_id":"r","pc_id":"x","exit_code":1.0,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		`{"request_id":"r","pc_id":"x","exit_code":1e2,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		`{"request_id":"r","pc_id":"x","exit_code":"1","stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		`{"request_id":"r","pc_id":"x","exit_code":2147483648,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		`{"request_id":"r","pc_id":"x","exit_code":0,"exit_code":0,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		`{"request_id":"r","pc_id":"x","exit_code":0,"skipped":"yes","stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		`{"request_id":"r","pc_id":"x","exit_code":0,"exec_id":5,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		`{"request_id":"r","pc_id":"x","exit_code":0,"stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		`{"request_id":"r","pc_id":"x","exit_code":0,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-02-30T00:00:00Z"}`,
		`{"request_id":"","pc_id":"x","exit_code":0,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`,
		"\xff\xfe{",
	}
)

// Scenario is one generated fleet and its delivery history.
type Scenario struct {
	exec  *mExec // nil: no executions row
	pubs  []*mPub
	steps []step
}

// step is one thing that happens to the database: a batch written (crash: written again, as
// the redelivery after a crash between commit and ack would), or the reaper closing a row.
type step struct {
	batch []*mPub
	crash bool
	reap  bool
	pick  int // which in-flight row the reaper closes (modulo their number)
}

// DrawScenario draws a fleet of 1–8 PCs (some legacy results, some results without exec_id or
// with another execution's, some runs missing an event), its copies, redeliveries, poison,
// delivery order, batch cuts, crashes and reaper steps.
func DrawScenario(t *rapid.T) Scenario {
	var sc Scenario
	nPCs := rapid.IntRange(1, 8).Draw(t, "pcs")
	if rapid.IntRange(0, 9).Draw(t, "has_exec_row") > 0 {
		sc.exec = &mExec{
			Target: rapid.IntRange(1, nPCs+2).Draw(t, "target"),
			Status: rapid.SampledFrom([]string{"pending", "pending", "running", "expired"}).Draw(t, "status"),
		}
	}
	seqs := map[string]uint64{}
	publish := func(stream, subject string, payload []byte, ms int) *mPub {
		seqs[stream]++
		p := &mPub{stream: stream, seq: seqs[stream], subject: subject, payload: payload,
			published: modelT0.Add(time.Duration(ms)*time.Millisecond + time.Duration(rapid.IntRange(0, 999).Draw(t, "pub_ns"))*time.Nanosecond)}
		sc.pubs = append(sc.pubs, p)
		return p
	}
	addCopies := func(p *mPub) {
		// The agent's outbox publishes it again: another sequence; the same or another time.
		for range rapid.IntRange(0, 2).Draw(t, "copies") {
			ms := rapid.IntRange(0, 5000).Draw(t, "copy_ms")
			c := *p
			seqs[p.stream]++
			c.seq = seqs[p.stream]
			if rapid.Bool().Draw(t, "copy_same_time") {
				c.published = p.published
			} else {
				c.published = modelT0.Add(time.Duration(ms) * time.Millisecond)
			}
			sc.pubs = append(sc.pubs, &c)
		}
	}

	for i := range nPCs {
		pc := fmt.Sprintf("PC-%d", i)
		if rapid.Bool().Draw(t, "pc_case") {
			pc = strings.ToLower(pc) // host names verbatim: distinct PCs
		}
		execID := modelExecID
		if rapid.IntRange(0, 7).Draw(t, "other_exec") == 0 {
			execID = modelOtherExec
		}
		legacy := rapid.IntRange(0, 3).Draw(t, "legacy") == 0
		resultID := fmt.Sprintf("r-%d", i)
		if legacy {
			resultID = legacyID(modelRequest, pc)
		}
		startAt := modelT0.Add(time.Duration(rapid.IntRange(0, 2_000_000_000).Draw(t, "start_ns")))
		finishAt := startAt.Add(time.Duration(rapid.IntRange(0, 3_000_000_000).Draw(t, "run_ns")))
		manifest, version := "inventory-hw", rapid.SampledFrom([]string{"1.0.0", "2.0.0-β"}).Draw(t, "version")

		if rapid.IntRange(0, 5).Draw(t, "has_started") > 0 {
			s := mStarted{ResultID: resultID, RequestID: modelRequest, ExecID: execID, PCID: pc,
				StartedAt: storeTime(startAt), ManifestID: manifest, Version: version}
			members := []string{`"result_id":` + q(resultID), `"request_id":` + q(modelRequest), `"exec_id":` + q(execID),
				`"pc_id":` + q(pc), `"started_at":` + q(drawTime(t, startAt, "s_started")), `"manifest_id":` + q(manifest),
				`"version":` + q(version)}
			if rapid.Bool().Draw(t, "s_unknown") {
				members = append(members, `"agent_build":{"a":[1,2,{"b":null}],"a":-1.5e-7}`, `"agent_build":"dup unknown is fine"`)
			}
			members = rapid.Permutation(members).Draw(t, "s_order")
			p := publish("EVENTS", "events.started."+execID+"."+pc, jsonObject(members), rapid.IntRange(0, 5000).Draw(t, "s_ms"))
			p.started = &s
			addCopies(p)
		}
		if rapid.IntRange(0, 5).Draw(t, "has_result") > 0 {
			x := mResult{ResultID: resultID, RequestID: modelRequest, PCID: pc,
				ExitCode:   rapid.SampledFrom([]int32{0, 0, 0, 1, -1, 125, -2147483648, 2147483647}).Draw(t, "exit"),
				Skipped:    rapid.IntRange(0, 4).Draw(t, "skipped") == 0,
				Stdout:     rapid.SampledFrom([]string{"", "hostname=" + pc, "é\n\"quoted\"\ttab"}).Draw(t, "stdout"),
				Stderr:     rapid.SampledFrom([]string{"", "collector: access denied"}).Draw(t, "stderr"),
				StartedAt:  storeTime(startAt),
				FinishedAt: storeTime(finishAt),
			}
			members := []string{`"request_id":` + q(modelRequest), `"pc_id":` + q(pc),
				fmt.Sprintf(`"exit_code":%d`, x.ExitCode), `"stdout":` + q(x.Stdout), `"stderr":` + q(x.Stderr),
				`"started_at":` + q(drawTime(t, startAt, "r_started")), `"finished_at":` + q(drawTime(t, finishAt, "r_finished"))}
			if !legacy {
				members = append(members, `"result_id":`+q(resultID))
			} else if rapid.Bool().Draw(t, "legacy_empty_id") {
				members = append(members, `"result_id":""`)
			}
			if rapid.IntRange(0, 3).Draw(t, "r_exec") > 0 {
				x.ExecID = execID
				members = append(members, `"exec_id":`+q(execID))
			} else if rapid.Bool().Draw(t, "r_exec_null") {
				members = append(members, `"exec_id":null`)
			}
			if rapid.Bool().Draw(t, "r_manifest") {
				x.ManifestID = manifest
				members = append(members, `"manifest_id":`+q(manifest))
			}
			if rapid.IntRange(0, 3).Draw(t, "r_parent") == 0 {
				x.ParentResultID = "parent-" + resultID
				members = append(members, `"parent_result_id":`+q(x.ParentResultID))
			}
			if x.Skipped {
				members = append(members, `"skipped":true`)
			} else if rapid.Bool().Draw(t, "r_skipped_explicit") {
				members = append(members, rapid.SampledFrom([]string{`"skipped":false`, `"skipped":null`}).Draw(t, "r_skipped_form"))
			}
			if rapid.Bool().Draw(t, "r_unknown") {
				members = append(members, `"collect_object":"c/1"`, `"newer_field":[{"x":1}]`)
			}
			members = rapid.Permutation(members).Draw(t, "r_order")
			p := publish("RESULTS", "results."+modelRequest, jsonObject(members), rapid.IntRange(0, 8000).Draw(t, "r_ms"))
			p.result = &x
			addCopies(p)
		}
	}
	for range rapid.IntRange(0, 2).Draw(t, "poison_started") {
		payload := rapid.SampledFrom(poisonStarted).Draw(t, "poison_s_payload")
		p := publish("EVENTS", "events.started."+modelExecID+".BAD", []byte(payload), rapid.IntRange(0, 5000).Draw(t, "ps_ms"))
		p.poison = true
	}
	for range rapid.IntRange(0, 2).Draw(t, "poison_results") {
		payload := rapid.SampledFrom(poisonResult).Draw(t, "poison_r_payload")
		p := publish("RESULTS", "results."+modelRequest, []byte(payload), rapid.IntRange(0, 5000).Draw(t, "pr_ms"))
		p.poison = true
	}

	// Deliveries: every publication at least once, some redelivered (same seq, same time), in
	// any order, cut into batches of any size.
	deliveries := append([]*mPub(nil), sc.pubs...)
	for range rapid.IntRange(0, len(sc.pubs)).Draw(t, "redeliveries") {
		deliveries = append(deliveries, sc.pubs[rapid.IntRange(0, len(sc.pubs)-1).Draw(t, "redelivered")])
	}
	deliveries = rapid.Permutation(deliveries).Draw(t, "delivery_order")
	for len(deliveries) > 0 {
		n := rapid.IntRange(1, len(deliveries)).Draw(t, "batch_size")
		sc.steps = append(sc.steps, step{batch: deliveries[:n], crash: rapid.IntRange(0, 4).Draw(t, "crash") == 0})
		deliveries = deliveries[n:]
		if rapid.IntRange(0, 3).Draw(t, "reaper") == 0 {
			sc.steps = append(sc.steps, step{reap: true, pick: rapid.IntRange(0, 7).Draw(t, "reap_pick")})
		}
	}
	return sc
}

// ---- running a Scenario through a store ----

// reaperFinishedAt is when the reaper closes rows: after everything the fleet sends.
var reaperFinishedAt = storeTime(modelT0.Add(time.Hour))

// Property checks s against the model on rapid's number of generated scenarios (100 unless
// -rapid.checks or RAPID_CHECKS says otherwise), soakRounds times that under FANIN_SOAK=1
// (make soak). db is the same database as s, through database/sql: the model's reaper writes
// with it and the tables are read back with it.
func Property(t *testing.T, s Writer, db *sql.DB, soakRounds int) {
	t.Helper()
	rounds := 1
	if os.Getenv("FANIN_SOAK") == "1" {
		rounds = soakRounds
	}
	for range rounds {
		rapid.Check(t, func(rt *rapid.T) { RunScenario(rt, s, db, DrawScenario(rt)) })
	}
}

// RunScenario plays sc on s (whose tables it empties first) and on a fresh model, comparing
// the tables after every step.
func RunScenario(t interface {
	Helper()
	Fatalf(string, ...any)
}, s Writer, db *sql.DB, sc Scenario) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{`DELETE FROM execution_results`, `DELETE FROM executions`, `DELETE FROM dead_letters`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	m := &model{rows: map[string]ResultRow{}, execs: map[string]*mExec{}, dead: map[mDeadKey]mDead{}}
	if sc.exec != nil {
		e := *sc.exec
		m.execs[modelExecID] = &e
		if _, err := db.Exec(`INSERT INTO executions (exec_id, job_id, version, initiated_by, initiated_at,
			target_count, status) VALUES ($1, 'inventory-hw', '1.0.0', 'operator', $2, $3, $4)`,
			modelExecID, storeTime(modelT0), e.Target, e.Status); err != nil {
			t.Fatalf("insert execution: %v", err)
		}
	}
	for i, st := range sc.steps {
		if st.reap {
			var inflight []string
			for id, r := range m.rows {
				if !r.FinishedAt.Valid {
					inflight = append(inflight, id)
				}
			}
			if len(inflight) == 0 {
				continue
			}
			sort.Strings(inflight)
			id := inflight[st.pick%len(inflight)]
			m.reap(id, reaperFinishedAt)
			reapSQL(t, db, id, reaperFinishedAt)
		} else {
			recs := make([]codec.Record, len(st.batch))
			for j, p := range st.batch {
				recs[j] = p.record()
				m.apply(p)
			}
			writes := 1
			if st.crash {
				writes = 2 // committed, not acked: the same batch comes back
			}
			for range writes {
				rep, err := s.Write(ctx, recs)
				why := Reasons(rep, len(recs))
				if err != nil {
					t.Fatalf("step %d: Write: %v", i, err)
				}
				for j, p := range st.batch {
					if (why[j] != "") != p.poison {
						t.Fatalf("step %d: record %s: rejected %q, want poison=%v", i, p, why[j], p.poison)
					}
				}
			}
		}
		if diff := compareModel(db, m); diff != "" {
			t.Fatalf("after step %d (%s): %s", i, describeStep(st), diff)
		}
	}
}

func describeStep(st step) string {
	if st.reap {
		return "reaper"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "batch of %d, crash=%v:", len(st.batch), st.crash)
	for _, p := range st.batch {
		fmt.Fprintf(&b, "\n\t%s", p)
	}
	return b.String()
}

// reapSQL is what the reaper does in SQL (domain.md: exit_code -1, finished_at, reaped = 1,
// one failure counted and status set as a result would).
func reapSQL(t interface {
	Helper()
	Fatalf(string, ...any)
}, db *sql.DB, resultID, finishedAt string) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatalf("reaper: %v", err)
	}
	defer tx.Rollback()
	var execID sql.NullString
	if err := tx.QueryRow(`UPDATE execution_results SET exit_code = -1, finished_at = $1, reaped = 1
		WHERE result_id = $2 AND finished_at IS NULL RETURNING exec_id`, finishedAt, resultID).Scan(&execID); err != nil {
		t.Fatalf("reaper: close %s: %v", resultID, err)
	}
	if _, err := tx.Exec(`UPDATE executions SET failure_count = failure_count + 1,
		status = CASE WHEN status = 'expired' THEN status
		              WHEN success_count + failure_count + 1 >= target_count THEN 'completed'
		              ELSE 'running' END
		WHERE exec_id = $1`, execID); err != nil {
		t.Fatalf("reaper: count: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("reaper: commit: %v", err)
	}
}

// compareModel returns "" when the database's tables equal the model's, else the first
// difference.
func compareModel(db *sql.DB, m *model) string {
	rows, err := db.Query(`SELECT result_id, request_id, exec_id, pc_id, exit_code, stdout, stderr,
		started_at, finished_at, recorded_at, job_id, version, reaped, expires_at, parent_result_id, skipped
		FROM execution_results`)
	if err != nil {
		return err.Error()
	}
	got := map[string]ResultRow{}
	for rows.Next() {
		var id string
		var r ResultRow
		if err := rows.Scan(&id, &r.RequestID, &r.ExecID, &r.PCID, &r.ExitCode, &r.Stdout, &r.Stderr,
			&r.StartedAt, &r.FinishedAt, &r.RecordedAt, &r.JobID, &r.Version, &r.Reaped, &r.ExpiresAt,
			&r.ParentResultID, &r.Skipped); err != nil {
			rows.Close()
			return err.Error()
		}
		got[id] = r
	}
	rows.Close()
	var diffs []string
	for id, want := range m.rows {
		if g, ok := got[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("execution_results %s: missing, want %+v", id, want))
		} else if g != want {
			diffs = append(diffs, fmt.Sprintf("execution_results %s:\n\t got  %+v\n\t want %+v", id, g, want))
		}
	}
	for id, g := range got {
		if _, ok := m.rows[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("execution_results %s: unexpected row %+v", id, g))
		}
	}

	erows, err := db.Query(`SELECT exec_id, target_count, success_count, failure_count, status FROM executions`)
	if err != nil {
		return err.Error()
	}
	gotExecs := map[string]mExec{}
	for erows.Next() {
		var id string
		var e mExec
		if err := erows.Scan(&id, &e.Target, &e.Success, &e.Failure, &e.Status); err != nil {
			erows.Close()
			return err.Error()
		}
		gotExecs[id] = e
	}
	erows.Close()
	if len(gotExecs) != len(m.execs) {
		diffs = append(diffs, fmt.Sprintf("executions: %d rows, want %d", len(gotExecs), len(m.execs)))
	}
	for id, want := range m.execs {
		if g := gotExecs[id]; g != *want {
			diffs = append(diffs, fmt.Sprintf("executions %s: got %+v, want %+v", id, g, *want))
		}
	}

	drows, err := db.Query(`SELECT stream, stream_seq, subject, reason, payload, headers, recorded_at FROM dead_letters`)
	if err != nil {
		return err.Error()
	}
	gotDead := map[mDeadKey]mDead{}
	for drows.Next() {
		var k mDeadKey
		var d mDead
		var reason string
		var payload []byte
		if err := drows.Scan(&k.Stream, &k.Seq, &d.Subject, &reason, &payload, &d.Headers, &d.RecordedAt); err != nil {
			drows.Close()
			return err.Error()
		}
		if payload == nil {
			diffs = append(diffs, fmt.Sprintf("dead_letters %v: payload is NULL", k))
		}
		d.Reason, d.Payload = reason != "", string(payload)
		gotDead[k] = d
	}
	drows.Close()
	if len(gotDead) != len(m.dead) {
		diffs = append(diffs, fmt.Sprintf("dead_letters: %d rows, want %d", len(gotDead), len(m.dead)))
	}
	for k, want := range m.dead {
		if g, ok := gotDead[k]; !ok || g != want {
			diffs = append(diffs, fmt.Sprintf("dead_letters %v: got %+v, want %+v", k, g, want))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}
