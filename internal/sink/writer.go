package sink

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"

	"fanin/internal/codec"
)

// Report says what one Write did.
type Report struct {
	// Rejected holds, for each record of the batch (same index), the reason it was written to
	// dead_letters; "" means it was projected (or changed nothing, being a duplicate). Rejected
	// records must be terminated, the others acked.
	Rejected []string
	// Inserted and Updated count execution_results rows; Unchanged counts records that changed
	// nothing (redeliveries, duplicates); DeadLettered counts rejected records.
	Inserted, Updated, Unchanged, DeadLettered int
}

func (r *Report) add(o Report) {
	r.Inserted += o.Inserted
	r.Updated += o.Updated
	r.Unchanged += o.Unchanged
	r.DeadLettered += o.DeadLettered
}

// Write projects a batch of records in one transaction: good records are merged into
// execution_results (and their executions' counters, one update per execution), poison records
// go to dead_letters, all committed together. Records may come in any order, repeat, and mix
// both kinds; the resulting tables do not depend on it.
//
// When the database refuses some record permanently (a constraint, say), Write splits the batch
// and retries the halves, each in its own transaction, until the offending records stand alone;
// those are dead-lettered with the database's error as the reason, and the rest land.
//
// An error means the cause may pass (SQLITE_BUSY past the busy timeout, an I/O error, a full
// disk, a read-only file, a cancelled context): treat the whole batch as unwritten and retry it
// later. Parts of it may have been committed; retrying them changes nothing.
func (s *Sink) Write(ctx context.Context, recs []codec.Record) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Report{}, ErrClosed
	}
	rep := Report{Rejected: make([]string, len(recs))}
	idx := make([]int, len(recs))
	for i := range recs {
		idx[i] = i
		if recs[i].Poison != nil {
			rep.Rejected[i] = recs[i].Poison.Error()
		}
	}
	err := s.writeSplit(ctx, recs, idx, &rep)
	return rep, err
}

// writeSplit writes recs[idx...] in one transaction, bisecting on a permanent error.
func (s *Sink) writeSplit(ctx context.Context, recs []codec.Record, idx []int, rep *Report) error {
	got, err := s.writeTx(ctx, recs, idx, rep.Rejected)
	if err == nil {
		rep.add(got)
		return nil
	}
	if !IsPermanent(err) || len(idx) == 0 {
		return err
	}
	if len(idx) == 1 {
		i := idx[0]
		if rep.Rejected[i] != "" {
			return fmt.Errorf("record its dead letter: %w", err) // the dead letter itself is refused
		}
		rep.Rejected[i] = fmt.Sprintf("database rejected the row: %v", err)
		return s.writeSplit(ctx, recs, idx, rep)
	}
	half := len(idx) / 2
	if err := s.writeSplit(ctx, recs, idx[:half], rep); err != nil {
		return err
	}
	return s.writeSplit(ctx, recs, idx[half:], rep)
}

// entry tracks one result_id through a batch.
type entry struct {
	cur     row
	existed bool // a row was in the table before this transaction
	dirty   bool
}

// writeTx writes recs[idx...] in one BEGIN IMMEDIATE transaction. Records with a non-empty
// rejected[i] are dead-lettered with that reason; the others are projected.
func (s *Sink) writeTx(ctx context.Context, recs []codec.Record, idx []int, rejected []string) (rep Report, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Report{}, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()

	entries, err := loadRows(ctx, tx, recs, idx, rejected)
	if err != nil {
		return Report{}, err
	}

	// Merge every record into its row in memory, in batch order: the same as applying them one
	// by one, but each row is written once and each execution's counters are bumped once.
	execs := map[string]*execDelta{}
	var dead []int
	for _, i := range idx {
		if rejected[i] != "" {
			dead = append(dead, i)
			continue
		}
		r := &recs[i]
		recordedAt := r.RecordedAtText()
		var id string
		if r.Kind == codec.KindStarted {
			id = r.Started.ResultID
		} else {
			id = r.Result.ResultID
		}
		e := entries[id]
		var cur *row
		if e != nil {
			cur = &e.cur
		}
		var (
			next    row
			changed bool
			bump    *outcome
		)
		if r.Kind == codec.KindStarted {
			next, changed, bump = applyStarted(cur, &r.Started, recordedAt)
			execDeltaFor(execs, r.Started.ExecID).started = true
		} else {
			next, changed, bump = applyResult(cur, &r.Result, recordedAt)
		}
		if !changed {
			rep.Unchanged++
			continue
		}
		if e == nil {
			e = &entry{}
			entries[id] = e
		}
		e.cur, e.dirty = next, true
		if bump != nil {
			d := execDeltaFor(execs, bump.execID)
			if bump.success {
				d.success++
			} else {
				d.failure++
			}
		}
	}

	if err := writeRows(ctx, tx, entries, &rep); err != nil {
		return Report{}, err
	}
	if err := writeExecutions(ctx, tx, execs); err != nil {
		return Report{}, err
	}
	if err := writeDeadLetters(ctx, tx, recs, dead, rejected); err != nil {
		return Report{}, err
	}
	rep.DeadLettered = len(dead)
	if err := tx.Commit(); err != nil {
		return Report{}, fmt.Errorf("commit: %w", err)
	}
	return rep, nil
}

const selectRows = `SELECT result_id, request_id, coalesce(exec_id, ''), pc_id, exit_code,
	started_at, coalesce(finished_at, ''), recorded_at, coalesce(job_id, ''), coalesce(version, ''),
	reaped, coalesce(parent_result_id, ''), skipped
	FROM execution_results WHERE result_id IN (SELECT value FROM json_each(?))`

// loadRows reads the existing rows of every result_id the batch's good records touch, in one
// query. stdout and stderr are not read.
func loadRows(ctx context.Context, tx *sql.Tx, recs []codec.Record, idx []int, rejected []string) (map[string]*entry, error) {
	ids := make([]string, 0, len(idx))
	for _, i := range idx {
		if rejected[i] != "" {
			continue
		}
		if recs[i].Kind == codec.KindStarted {
			ids = append(ids, recs[i].Started.ResultID)
		} else {
			ids = append(ids, recs[i].Result.ResultID)
		}
	}
	entries := make(map[string]*entry, len(ids))
	if len(ids) == 0 {
		return entries, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("load rows: %w", err)
	}
	rows, err := tx.QueryContext(ctx, selectRows, string(list))
	if err != nil {
		return nil, fmt.Errorf("load rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r        row
			exitCode sql.NullInt32
		)
		if err := rows.Scan(&r.resultID, &r.requestID, &r.execID, &r.pcID, &exitCode,
			&r.startedAt, &r.finishedAt, &r.recordedAt, &r.jobID, &r.version,
			&r.reaped, &r.parentResultID, &r.skipped); err != nil {
			return nil, fmt.Errorf("load rows: %w", err)
		}
		r.exitCode = exitCode.Int32
		r.finished = r.finishedAt != ""
		entries[r.resultID] = &entry{cur: r, existed: true}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load rows: %w", err)
	}
	return entries, nil
}

const (
	insertRow = `INSERT INTO execution_results (result_id, request_id, exec_id, pc_id, exit_code,
		stdout, stderr, started_at, finished_at, recorded_at, job_id, version, reaped,
		parent_result_id, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	updateRow = `UPDATE execution_results SET request_id = ?, exec_id = ?, exit_code = ?,
		finished_at = ?, recorded_at = ?, job_id = ?, version = ?, reaped = ?,
		parent_result_id = ?, skipped = ? WHERE result_id = ?`
	// updateRowText is updateRow for a merge that set the outcome, and with it the output.
	updateRowText = `UPDATE execution_results SET request_id = ?, exec_id = ?, exit_code = ?,
		finished_at = ?, recorded_at = ?, job_id = ?, version = ?, reaped = ?,
		parent_result_id = ?, skipped = ?, stdout = ?, stderr = ? WHERE result_id = ?`
)

// writeRows inserts the new rows and updates the changed ones. Rows are written in result_id
// order, which keeps B-tree page visits local.
func writeRows(ctx context.Context, tx *sql.Tx, entries map[string]*entry, rep *Report) error {
	dirty := make([]*entry, 0, len(entries))
	for _, e := range entries {
		if e.dirty {
			dirty = append(dirty, e)
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	sort.Slice(dirty, func(i, j int) bool { return dirty[i].cur.resultID < dirty[j].cur.resultID })

	var ins, upd, txt *sql.Stmt
	prepare := func(st **sql.Stmt, q string) error {
		if *st != nil {
			return nil
		}
		p, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*st = p
		return nil
	}
	for _, e := range dirty {
		r := &e.cur
		if !e.existed {
			if err := prepare(&ins, insertRow); err != nil {
				return err
			}
			if _, err := ins.ExecContext(ctx, r.resultID, r.requestID, nullable(r.execID), r.pcID,
				exitCode(r), r.stdout, r.stderr, r.startedAt, nullable(r.finishedAt), r.recordedAt,
				nullable(r.jobID), nullable(r.version), r.reaped, nullable(r.parentResultID), r.skipped); err != nil {
				return fmt.Errorf("insert %s: %w", r.resultID, err)
			}
			rep.Inserted++
			continue
		}
		if !r.textSet {
			if err := prepare(&upd, updateRow); err != nil {
				return err
			}
			if _, err := upd.ExecContext(ctx, r.requestID, nullable(r.execID), exitCode(r),
				nullable(r.finishedAt), r.recordedAt, nullable(r.jobID), nullable(r.version), r.reaped,
				nullable(r.parentResultID), r.skipped, r.resultID); err != nil {
				return fmt.Errorf("update %s: %w", r.resultID, err)
			}
		} else {
			if err := prepare(&txt, updateRowText); err != nil {
				return err
			}
			if _, err := txt.ExecContext(ctx, r.requestID, nullable(r.execID), exitCode(r),
				nullable(r.finishedAt), r.recordedAt, nullable(r.jobID), nullable(r.version), r.reaped,
				nullable(r.parentResultID), r.skipped, r.stdout, r.stderr, r.resultID); err != nil {
				return fmt.Errorf("update %s: %w", r.resultID, err)
			}
		}
		rep.Updated++
	}
	return nil
}

// execDelta is what one batch owes one execution.
type execDelta struct {
	started          bool // a started event was seen: pending → running
	success, failure int
}

func execDeltaFor(m map[string]*execDelta, execID string) *execDelta {
	d := m[execID]
	if d == nil {
		d = &execDelta{}
		m[execID] = d
	}
	return d
}

const (
	markRunning = `UPDATE executions SET status = 'running' WHERE exec_id = ? AND status = 'pending'`
	bumpCounts  = `UPDATE executions SET
		success_count = success_count + ?,
		failure_count = failure_count + ?,
		status = CASE
			WHEN status = 'expired' THEN status
			WHEN success_count + failure_count + ? >= target_count THEN 'completed'
			ELSE 'running' END
		WHERE exec_id = ?`
)

// writeExecutions applies each execution's aggregated delta with at most two statements. The
// pending → running step goes first: a bump in the same batch then settles the status from the
// counts, as it would have applied one event at a time. A missing executions row is a no-op:
// the backend creates them, never fanin.
func writeExecutions(ctx context.Context, tx *sql.Tx, execs map[string]*execDelta) error {
	ids := make([]string, 0, len(execs))
	for id := range execs {
		if id != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids) // a fixed lock order keeps concurrent writers out of each other's way
	for _, id := range ids {
		d := execs[id]
		if d.started {
			if _, err := tx.ExecContext(ctx, markRunning, id); err != nil {
				return fmt.Errorf("mark execution %s running: %w", id, err)
			}
		}
		if n := d.success + d.failure; n > 0 {
			if _, err := tx.ExecContext(ctx, bumpCounts, d.success, d.failure, n, id); err != nil {
				return fmt.Errorf("count results of execution %s: %w", id, err)
			}
		}
	}
	return nil
}

const insertDeadLetter = `INSERT INTO dead_letters (stream, stream_seq, subject, reason, payload,
	headers, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (stream, stream_seq) DO NOTHING`

// writeDeadLetters records recs[dead...] once each, keeping the payload byte for byte.
func writeDeadLetters(ctx context.Context, tx *sql.Tx, recs []codec.Record, dead []int, reasons []string) error {
	if len(dead) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, insertDeadLetter)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	for _, i := range dead {
		r := &recs[i]
		var headers any
		if len(r.Header) > 0 {
			b, err := json.Marshal(r.Header)
			if err != nil {
				return fmt.Errorf("dead letter %s/%d: headers: %w", r.Stream, r.Seq, err)
			}
			headers = string(b)
		}
		payload := r.Payload
		if payload == nil {
			payload = []byte{} // an empty payload is an empty blob, never NULL
		}
		if _, err := st.ExecContext(ctx, r.Stream, int64(r.Seq), r.Subject, reasons[i], payload,
			headers, r.RecordedAtText()); err != nil {
			return fmt.Errorf("dead letter %s/%d: %w", r.Stream, r.Seq, err)
		}
	}
	return nil
}

// nullable maps "" to SQL NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func exitCode(r *row) any {
	if !r.finished {
		return nil
	}
	return int64(r.exitCode)
}
