package sink

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"fanin/internal/codec"
	"fanin/internal/project"
	"fanin/internal/store"
)

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
// later. Parts of it may have been committed (the report counts them); retrying them changes
// nothing.
func (s *Sink) Write(ctx context.Context, recs []codec.Record) (store.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.Report{System: "sqlite"}, ErrClosed
	}
	b := store.NewBatch("sqlite", "BEGIN IMMEDIATE", recs)
	err := b.Write(func(idx []int) error { return s.writeTx(ctx, recs, idx, b) })
	rep := b.Report()
	if err != nil {
		rep.StatusCode = statusCode(err)
	}
	return rep, err
}

// writeTx writes recs[idx...] in one BEGIN IMMEDIATE transaction and adds what it did to b.
// Records with an error in b.Rejected are dead-lettered with it as the reason; the others are
// projected. Errors the database returns are classified (see classify).
func (s *Sink) writeTx(ctx context.Context, recs []codec.Record, idx []int, b *store.Batch) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", classify(err))
	}
	defer conn.Close()
	sqlTx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", classify(err))
	}
	tx := &txn{Tx: sqlTx, conn: conn}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()

	good, dead := b.Sort(idx)
	var rep counts
	var execs project.Deltas
	if project.StartedOnly(recs, good) {
		var bulk bool
		if bulk, err = s.rowids(ctx, tx); err != nil {
			return classify(err)
		}
		execs, err = writeInsertFirst(ctx, tx, recs, good, bulk, &rep)
	} else {
		execs, err = writeLookupFirst(ctx, tx, recs, good, &rep)
	}
	if err != nil {
		return classify(err)
	}
	if err := writeExecutions(ctx, tx, execs); err != nil {
		return classify(err)
	}
	if err := writeDeadLetters(ctx, tx, recs, dead, b.Rejected); err != nil {
		return classify(err)
	}
	if err := writeMarks(ctx, tx, recs, idx); err != nil {
		return classify(err)
	}
	start := time.Now()
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	commit := time.Since(start)
	// Committed, but into the file at Config.Path? A deleted or replaced file takes the commit with it.
	if err := s.CheckFile(); err != nil {
		return fmt.Errorf("after commit: %w", err)
	}
	b.Committed(rep.Inserted, rep.Updated, rep.Unchanged, len(dead), commit)
	return nil
}

// counts is what one transaction did to execution_results.
type counts struct{ Inserted, Updated, Unchanged int }

// writeLookupFirst reads the rows the records touch, merges the records into them and writes
// the rows that changed.
func writeLookupFirst(ctx context.Context, tx *txn, recs []codec.Record, good []int, rep *counts) (project.Deltas, error) {
	entries, err := loadRows(ctx, tx, project.ResultIDs(recs, good))
	if err != nil {
		return nil, err
	}
	execs := project.Merge(recs, good, entries)
	existed, err := writeRows(ctx, tx, entries, rep)
	if err != nil {
		return nil, err
	}
	if len(existed) > 0 { // cannot happen under the write lock; never insert over a row
		return nil, fmt.Errorf("insert: row %s appeared during the transaction", existed[0])
	}
	rep.Unchanged += project.Unchanged(entries)
	return execs, nil
}

// writeInsertFirst writes a batch of started events. They usually come before their results,
// so most of their rows do not exist yet: it inserts first, and reads and merges again only the
// rows that turn out to exist — saving the lookup of every id. With bulk, a large batch is
// inserted in a few statements (insertFresh), else one row at a time.
func writeInsertFirst(ctx context.Context, tx *txn, recs []codec.Record, good []int, bulk bool, rep *counts) (project.Deltas, error) {
	fresh := make(map[string]*project.Entry, len(good))
	execs := project.Merge(recs, good, fresh) // started events into absent rows owe no counts
	insert := writeRows
	if bulk {
		insert = insertFresh
	}
	existed, err := insert(ctx, tx, fresh, rep)
	if err != nil {
		return nil, err
	}
	if len(existed) == 0 {
		rep.Unchanged += project.Unchanged(fresh)
		return execs, nil
	}
	again := make(map[string]bool, len(existed))
	for _, id := range existed {
		again[id] = true
		delete(fresh, id)
	}
	rep.Unchanged += project.Unchanged(fresh)
	var redo []int
	for _, i := range good {
		if again[recs[i].Started.ResultID] {
			redo = append(redo, i)
		}
	}
	entries, err := loadRows(ctx, tx, existed)
	if err != nil {
		return nil, err
	}
	execs.Add(project.Merge(recs, redo, entries))
	if _, err := writeRows(ctx, tx, entries, rep); err != nil {
		return nil, err
	}
	rep.Unchanged += project.Unchanged(entries)
	return execs, nil
}

// selectRows reads the rows of a list of ids, each as one text value — the three integers and
// the byte length of each of the ten texts, then the texts one after the other — so that a
// row costs one column read and one string instead of thirteen. stdout and stderr are not read.
const selectRows = `SELECT printf('%d %d %d %d %d %d %d %d %d %d %d %d %d ',
		coalesce(exit_code, 0), reaped, skipped, octet_length(result_id), octet_length(request_id),
		octet_length(coalesce(exec_id, '')), octet_length(pc_id), octet_length(started_at),
		octet_length(coalesce(finished_at, '')), octet_length(recorded_at),
		octet_length(coalesce(job_id, '')), octet_length(coalesce(version, '')),
		octet_length(coalesce(parent_result_id, '')))
	|| result_id || request_id || coalesce(exec_id, '') || pc_id || started_at
	|| coalesce(finished_at, '') || recorded_at || coalesce(job_id, '') || coalesce(version, '')
	|| coalesce(parent_result_id, '')
	FROM execution_results WHERE result_id IN (SELECT value FROM json_each(?))`

// loadRows reads the existing rows of ids in one query. stdout and stderr are not read.
func loadRows(ctx context.Context, tx *txn, ids []string) (map[string]*project.Entry, error) {
	entries := make(map[string]*project.Entry, len(ids))
	if len(ids) == 0 {
		return entries, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("load rows: %w", err)
	}
	err = tx.raw(func(c *sqlite3.SQLiteConn) error {
		st, err := c.Prepare(selectRows)
		if err != nil {
			return err
		}
		defer st.Close()
		q, ok := st.(driver.StmtQueryContext)
		if !ok {
			return errors.New("driver statement cannot query with a context")
		}
		rows, err := q.QueryContext(ctx, []driver.NamedValue{{Ordinal: 1, Value: string(list)}})
		if err != nil {
			return err
		}
		defer rows.Close()
		v := make([]driver.Value, 1)
		var slab []project.Entry // the entries, a few allocations for all
		for {
			if err := rows.Next(v); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			r, err := unpackRow(text(v[0]))
			if err != nil {
				return err
			}
			if len(slab) == cap(slab) {
				slab = make([]project.Entry, 0, min(len(ids)-len(entries), 1024))
			}
			slab = append(slab, project.Entry{Cur: r, Existed: true})
			entries[r.ResultID] = &slab[len(slab)-1]
		}
	})
	if err != nil {
		return nil, fmt.Errorf("load rows: %w", err)
	}
	return entries, nil
}

// unpackRow reads a row as selectRows packs it. Its strings share p's memory.
func unpackRow(p string) (project.Row, error) {
	var n [13]int
	rest := p
	for i := range n {
		sp := strings.IndexByte(rest, ' ')
		if sp < 0 {
			return project.Row{}, fmt.Errorf("unpack row %.60q: too few numbers", p)
		}
		v, err := strconv.Atoi(rest[:sp])
		if err != nil {
			return project.Row{}, fmt.Errorf("unpack row %.60q: %w", p, err)
		}
		n[i], rest = v, rest[sp+1:]
	}
	var texts [10]string
	for i := range texts {
		l := n[3+i]
		if l < 0 || l > len(rest) {
			return project.Row{}, fmt.Errorf("unpack row %.60q: text %d of %d bytes, %d left", p, i, l, len(rest))
		}
		texts[i], rest = rest[:l], rest[l:]
	}
	if rest != "" {
		return project.Row{}, fmt.Errorf("unpack row %.60q: %d bytes left over", p, len(rest))
	}
	r := project.Row{ExitCode: int32(n[0]), Reaped: n[1] != 0, Skipped: n[2] != 0,
		ResultID: texts[0], RequestID: texts[1], ExecID: texts[2], PCID: texts[3], StartedAt: texts[4],
		FinishedAt: texts[5], RecordedAt: texts[6], JobID: texts[7], Version: texts[8], ParentResultID: texts[9]}
	r.Finished = r.FinishedAt != ""
	return r, nil
}

// text is a column value read as text: NULL is "", as the projection rules see it.
func text(v driver.Value) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return ""
}

const (
	// insertStarted is insertRow for a row in flight (a started event's), with the columns it
	// leaves at their defaults out: half the values to bind.
	insertStarted = `INSERT INTO execution_results (result_id, request_id, exec_id, pc_id,
		started_at, recorded_at, job_id, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (result_id) DO NOTHING`
	insertRow = `INSERT INTO execution_results (result_id, request_id, exec_id, pc_id, exit_code,
		stdout, stderr, started_at, finished_at, recorded_at, job_id, version, reaped,
		parent_result_id, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (result_id) DO NOTHING`
	updateRow = `UPDATE execution_results SET request_id = ?, exec_id = ?, exit_code = ?,
		finished_at = ?, recorded_at = ?, job_id = ?, version = ?, reaped = ?,
		parent_result_id = ?, skipped = ? WHERE result_id = ?`
	// updateRowText is updateRow for a merge that set the outcome, and with it the output.
	updateRowText = `UPDATE execution_results SET request_id = ?, exec_id = ?, exit_code = ?,
		finished_at = ?, recorded_at = ?, job_id = ?, version = ?, reaped = ?,
		parent_result_id = ?, skipped = ?, stdout = ?, stderr = ? WHERE result_id = ?`
)

// writeRows inserts the new rows and updates the changed ones, in result_id order, which keeps
// B-tree page visits local. An insert that finds its row already there changes nothing; those
// ids are returned.
func writeRows(ctx context.Context, tx *txn, entries map[string]*project.Entry, rep *counts) (existed []string, err error) {
	dirty := make([]*project.Entry, 0, len(entries))
	for _, e := range entries {
		if e.Dirty {
			dirty = append(dirty, e)
		}
	}
	if len(dirty) == 0 {
		return nil, nil
	}
	slices.SortFunc(dirty, func(a, b *project.Entry) int { return strings.Compare(a.Cur.ResultID, b.Cur.ResultID) })

	err = tx.raw(func(c *sqlite3.SQLiteConn) error {
		var st rowStatements
		defer st.close()
		for _, e := range dirty {
			r := &e.Cur
			if !e.Existed {
				var (
					n   int64
					err error
				)
				if inFlightDefaults(r) {
					n, err = st.exec(ctx, c, &st.fly, insertStarted, r.ResultID, r.RequestID, nullable(r.ExecID),
						r.PCID, r.StartedAt, r.RecordedAt, nullable(r.JobID), nullable(r.Version))
				} else {
					n, err = st.exec(ctx, c, &st.ins, insertRow,
						r.ResultID, r.RequestID, nullable(r.ExecID), r.PCID, exitCode(r), r.Stdout, r.Stderr,
						r.StartedAt, nullable(r.FinishedAt), r.RecordedAt, nullable(r.JobID), nullable(r.Version),
						r.Reaped, nullable(r.ParentResultID), r.Skipped)
				}
				if err != nil {
					return fmt.Errorf("insert %s: %w", r.ResultID, err)
				}
				if n == 0 {
					existed = append(existed, r.ResultID)
					continue
				}
				rep.Inserted++
				continue
			}
			var err error
			if !r.TextSet {
				_, err = st.exec(ctx, c, &st.upd, updateRow, r.RequestID, nullable(r.ExecID), exitCode(r),
					nullable(r.FinishedAt), r.RecordedAt, nullable(r.JobID), nullable(r.Version), r.Reaped,
					nullable(r.ParentResultID), r.Skipped, r.ResultID)
			} else {
				_, err = st.exec(ctx, c, &st.txt, updateRowText, r.RequestID, nullable(r.ExecID), exitCode(r),
					nullable(r.FinishedAt), r.RecordedAt, nullable(r.JobID), nullable(r.Version), r.Reaped,
					nullable(r.ParentResultID), r.Skipped, r.Stdout, r.Stderr, r.ResultID)
			}
			if err != nil {
				return fmt.Errorf("update %s: %w", r.ResultID, err)
			}
			rep.Updated++
		}
		return nil
	})
	return existed, err
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
func writeExecutions(ctx context.Context, tx *txn, execs project.Deltas) error {
	ids := make([]string, 0, len(execs))
	for id := range execs {
		if id != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids) // a fixed lock order keeps concurrent writers out of each other's way
	for _, id := range ids {
		d := execs[id]
		if d.Started {
			if _, err := tx.ExecContext(ctx, markRunning, id); err != nil {
				return fmt.Errorf("mark execution %s running: %w", id, err)
			}
		}
		if n := d.Success + d.Failure; n > 0 {
			if _, err := tx.ExecContext(ctx, bumpCounts, d.Success, d.Failure, n, id); err != nil {
				return fmt.Errorf("count results of execution %s: %w", id, err)
			}
		}
	}
	return nil
}

// insertDeadLetter records a message once: another copy of it (same stream, incarnation and
// sequence) changes nothing. A row whose incarnation is unknown (stream_created empty:
// recorded before fanin kept it, or by a loop that did not know it) is the same message when
// stream, sequence and publish time match, so a redelivery across that change is recorded once
// too; another incarnation's message of the same sequence is kept beside it.
const insertDeadLetter = `INSERT INTO dead_letters (stream, stream_created, stream_seq, subject, reason,
	payload, headers, recorded_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
	WHERE NOT EXISTS (SELECT 1 FROM dead_letters WHERE stream = ?1 AND stream_seq = ?3
		AND recorded_at = ?8 AND (stream_created = '' OR ?2 = ''))
	ON CONFLICT (stream, stream_created, stream_seq) DO NOTHING`

// writeDeadLetters records recs[dead...] once each, keeping the payload byte for byte.
func writeDeadLetters(ctx context.Context, tx *txn, recs []codec.Record, dead []int, reasons []error) error {
	if len(dead) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, insertDeadLetter)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	for _, i := range dead {
		r := &recs[i]
		payload, header := r.Payload, r.Header
		if payload == nil {
			payload = []byte{} // an empty payload is an empty blob, never NULL
		}
		if len(header) == 0 {
			header = nil // no headers: NULL
		}
		if _, err := st.ExecContext(ctx, r.Stream, streamCreatedText(r.StreamCreated), int64(r.Seq),
			r.Subject, reasons[i].Error(), payload, header, r.RecordedAtText()); err != nil {
			return fmt.Errorf("dead letter %s/%d: %w", r.Stream, r.Seq, err)
		}
	}
	return nil
}

// inFlightDefaults reports whether r is a row in flight whose other columns hold their defaults, as
// insertStarted leaves them: no outcome, no output, not reaped, no parent, not skipped.
func inFlightDefaults(r *project.Row) bool {
	return !r.Finished && r.FinishedAt == "" && r.Stdout == "" && r.Stderr == "" && !r.Reaped &&
		r.ParentResultID == "" && !r.Skipped
}

// nullable maps "" to SQL NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func exitCode(r *project.Row) any {
	if !r.Finished {
		return nil
	}
	return int64(r.ExitCode)
}
