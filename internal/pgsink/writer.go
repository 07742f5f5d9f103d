package pgsink

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"fanin/internal/codec"
	"fanin/internal/project"
	"fanin/internal/store"
)

// maxAttempts is how many times one transaction is tried when it loses a race (a deadlock, a
// serialization failure) before Write gives up with a transient error.
const maxAttempts = 8

// Write projects a batch of records in one transaction, as sink.Store does for SQLite: good
// records are merged into execution_results by the projection rules (package project) and
// their executions' counters bumped, poison records go to dead_letters, all committed
// together. Records may come in any order, repeat, and mix both kinds; any number of Writes
// may run at once, in this process and others, on the same rows: the tables are those one
// writer would leave.
//
// When the database refuses some record permanently (a constraint, a NUL byte in text), Write
// splits the batch and retries the halves until the offending records stand alone; those are
// dead-lettered with the database's error as the reason, and the rest land.
//
// An error is transient (a lost connection, a server shutting down, a read-only standby, a
// full disk, a deadlock still losing after a few attempts): treat the whole batch as unwritten
// and retry it later. Parts of it may have been committed (the report counts them); retrying
// them changes nothing.
func (s *Store) Write(ctx context.Context, recs []codec.Record) (store.Report, error) {
	if !s.enter() {
		return store.Report{System: "postgresql"}, ErrClosed
	}
	defer s.leave()
	w := store.NewBatch("postgresql", "BEGIN", recs)
	err := w.Write(func(idx []int) error { return s.writeRetry(ctx, recs, idx, w) })
	rep := w.Report()
	if err != nil {
		rep.StatusCode = statusCode(err)
		err = redacted(err, s.cfg.URL)
	}
	return rep, err
}

// writeRetry runs writeTx again while it loses a race, at most maxAttempts times.
func (s *Store) writeRetry(ctx context.Context, recs []codec.Record, idx []int, w *store.Batch) error {
	for attempt := 1; ; attempt++ {
		err := s.writeTx(ctx, recs, idx, w)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		// Both transactions were rolled back but one: let it finish before trying again.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt)*2*time.Millisecond + time.Duration(rand.IntN(5000))*time.Microsecond):
		}
	}
}

// counts is what one transaction did to execution_results.
type counts struct{ Inserted, Updated, Unchanged int }

// writeTx writes recs[idx...] in one transaction and adds what it did to w. Records with an
// error in w.Rejected are dead-lettered with it as the reason; the others are projected.
//
// The transaction costs three round trips when nothing is in the way, as a bare COPY does:
// BEGIN (with the savepoint of a started batch) in one, the rows (COPY, or read then COPY
// and update), then the executions' counters, the dead letters and COMMIT sent together.
func (s *Store) writeTx(ctx context.Context, recs []codec.Record, idx []int, w *store.Batch) (err error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", classify(err))
	}
	c := pc.Conn()
	defer func() {
		if err != nil && !c.IsClosed() {
			// A connection whose transaction cannot be ended is not given back to the pool.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if _, rerr := c.Exec(rctx, "ROLLBACK"); rerr != nil {
				c.Close(rctx)
			}
			cancel()
		}
		pc.Release()
	}()
	good, dead := w.Sort(idx)
	fresh := project.StartedOnly(recs, good)
	begin := "BEGIN"
	if fresh {
		begin = "BEGIN; SAVEPOINT fresh"
	}
	if _, err := c.Exec(ctx, begin); err != nil {
		return fmt.Errorf("begin: %w", classify(err))
	}
	var rep counts
	execs, err := writeResults(ctx, c, recs, good, fresh, &rep)
	if err != nil {
		return classify(err)
	}
	b := &pgx.Batch{}
	queueExecutions(b, execs)
	queueDeadLetters(b, recs, dead, w.Rejected)
	b.Queue("COMMIT")
	start := time.Now()
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	w.Committed(rep.Inserted, rep.Updated, rep.Unchanged, len(dead), time.Since(start))
	return nil
}

// writeResults projects recs[good...] into execution_results: it locks and reads the rows the
// records touch (result_id order, the one lock order of every fanin transaction), merges the
// records into them by the projection rules, COPYs the new rows straight into the table and
// updates the changed ones.
//
// A row another transaction inserts between the read and the COPY (the same run, in a batch of
// the other projection or another replica) makes the COPY fail with a unique violation once
// that transaction commits: that is a race, not the data, and the transaction is tried again,
// when the read finds and locks the row.
//
// fresh says the transaction holds the savepoint "fresh" and good are started events only:
// they are COPYed without a read first (copyFresh).
func writeResults(ctx context.Context, tx *pgx.Conn, recs []codec.Record, good []int, fresh bool, rep *counts) (project.Deltas, error) {
	if len(good) == 0 {
		return project.Deltas{}, nil
	}
	if fresh {
		execs, ok, err := copyFresh(ctx, tx, recs, good, rep)
		if ok || err != nil {
			return execs, err
		}
	}
	ids := project.ResultIDs(recs, good)
	sort.Strings(ids)
	ids = slices.Compact(ids)
	entries, err := lockRows(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	execs := project.Merge(recs, good, entries)
	var added, changed []*project.Entry
	for _, e := range sortedEntries(entries) {
		if e.Existed {
			changed = append(changed, e)
		} else {
			added = append(added, e)
		}
	}
	if err := copyRows(ctx, tx, added); err != nil {
		return nil, err
	}
	if err := updateRows(ctx, tx, changed); err != nil {
		return nil, err
	}
	rep.Inserted += len(added)
	rep.Updated += len(changed)
	rep.Unchanged += project.Unchanged(entries)
	return execs, nil
}

// copyFresh writes a batch of started events as new rows, COPYed without reading anything
// first (after the savepoint writeTx sets): they usually come before their results, so their rows mostly do not exist yet. When
// one does (a redelivery, a result first, another writer's row), the COPY fails with a unique
// violation, is rolled back to before it, and ok is false: the caller then locks and reads
// the rows. The COPY takes the rows in result_id order, as the read would.
func copyFresh(ctx context.Context, tx *pgx.Conn, recs []codec.Record, good []int, rep *counts) (_ project.Deltas, ok bool, _ error) {
	fresh := make(map[string]*project.Entry, len(good))
	execs := project.Merge(recs, good, fresh) // started events into absent rows owe no counts
	rows := sortedEntries(fresh)
	err := copyRows(ctx, tx, rows)
	var race *errRace
	switch {
	case err == nil:
		rep.Inserted += len(rows)
		rep.Unchanged += project.Unchanged(fresh)
		return execs, true, nil
	case !errors.As(err, &race):
		return nil, false, err
	}
	if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT fresh`); err != nil {
		return nil, false, fmt.Errorf("rollback to savepoint: %w", err)
	}
	return nil, false, nil
}

// sortedEntries returns the dirty entries, by result_id in byte order.
func sortedEntries(entries map[string]*project.Entry) []*project.Entry {
	rows := make([]*project.Entry, 0, len(entries))
	for _, e := range entries {
		if e.Dirty {
			rows = append(rows, e)
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Cur.ResultID < rows[j].Cur.ResultID })
	return rows
}

// errRace marks a unique violation of a row this transaction found absent: another one
// inserted it meanwhile. retryable says to try again.
type errRace struct{ err error }

func (e *errRace) Error() string { return "row inserted concurrently: " + e.err.Error() }
func (e *errRace) Unwrap() error { return e.err }

var rowColumns = []string{"result_id", "request_id", "exec_id", "pc_id", "exit_code", "stdout", "stderr",
	"started_at", "finished_at", "recorded_at", "job_id", "version", "reaped", "parent_result_id", "skipped"}

// inFlightColumns are the columns of a row only started events made.
var inFlightColumns = []string{"result_id", "request_id", "exec_id", "pc_id", "started_at", "recorded_at", "job_id", "version"}

// copyRows inserts new rows with COPY, PostgreSQL's bulk path, in result_id order.
func copyRows(ctx context.Context, tx *pgx.Conn, rows []*project.Entry) error {
	if len(rows) == 0 {
		return nil
	}
	inFlight := true // only started events so far: the outcome's columns keep their defaults
	for _, e := range rows {
		inFlight = inFlight && !e.Cur.Finished && !e.Cur.Reaped && e.Cur.ParentResultID == ""
	}
	var src pgx.CopyFromSource
	cols := rowColumns
	if inFlight {
		cols = inFlightColumns
		src = pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i].Cur
			return []any{r.ResultID, r.RequestID, nullable(r.ExecID), r.PCID, r.StartedAt, r.RecordedAt,
				nullable(r.JobID), nullable(r.Version)}, nil
		})
	} else {
		src = pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i].Cur
			return []any{r.ResultID, r.RequestID, nullable(r.ExecID), r.PCID, pgtype.Int4{Int32: r.ExitCode, Valid: r.Finished},
				r.Stdout, r.Stderr, r.StartedAt, nullable(r.FinishedAt), r.RecordedAt, nullable(r.JobID), nullable(r.Version),
				flag(r.Reaped), nullable(r.ParentResultID), flag(r.Skipped)}, nil
		})
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"execution_results"}, cols, src)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "execution_results_pkey" {
		return fmt.Errorf("insert rows: %w", &errRace{err})
	}
	if err != nil {
		return fmt.Errorf("insert rows: %w", err)
	}
	return nil
}

// columns are rows as one array per column, for unnest.
type columns struct {
	id, request, pc, started, recorded, stdout, stderr []string
	exec, finished, job, version, parent               []pgtype.Text
	exit                                               []pgtype.Int4
	reaped, skipped                                    []int32
	textSet                                            []bool
}

func newColumns(n int) *columns {
	return &columns{
		id: make([]string, 0, n), request: make([]string, 0, n), pc: make([]string, 0, n),
		started: make([]string, 0, n), recorded: make([]string, 0, n), stdout: make([]string, 0, n),
		stderr: make([]string, 0, n), exec: make([]pgtype.Text, 0, n), finished: make([]pgtype.Text, 0, n),
		job: make([]pgtype.Text, 0, n), version: make([]pgtype.Text, 0, n), parent: make([]pgtype.Text, 0, n),
		exit: make([]pgtype.Int4, 0, n), reaped: make([]int32, 0, n), skipped: make([]int32, 0, n),
		textSet: make([]bool, 0, n),
	}
}

func (c *columns) add(r *project.Row, text bool) {
	c.id = append(c.id, r.ResultID)
	c.request = append(c.request, r.RequestID)
	c.pc = append(c.pc, r.PCID)
	c.started = append(c.started, r.StartedAt)
	c.recorded = append(c.recorded, r.RecordedAt)
	c.exec = append(c.exec, nullable(r.ExecID))
	c.finished = append(c.finished, nullable(r.FinishedAt))
	c.job = append(c.job, nullable(r.JobID))
	c.version = append(c.version, nullable(r.Version))
	c.parent = append(c.parent, nullable(r.ParentResultID))
	c.exit = append(c.exit, pgtype.Int4{Int32: r.ExitCode, Valid: r.Finished})
	c.reaped = append(c.reaped, flag(r.Reaped))
	c.skipped = append(c.skipped, flag(r.Skipped))
	c.textSet = append(c.textSet, r.TextSet)
	if text && r.TextSet {
		c.stdout = append(c.stdout, r.Stdout)
		c.stderr = append(c.stderr, r.Stderr)
	} else {
		c.stdout = append(c.stdout, "")
		c.stderr = append(c.stderr, "")
	}
}

func nullable(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

func flag(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

const selectRows = `SELECT result_id, request_id, coalesce(exec_id, ''), pc_id, coalesce(exit_code, 0),
	started_at, coalesce(finished_at, ''), recorded_at, coalesce(job_id, ''), coalesce(version, ''),
	reaped, coalesce(parent_result_id, ''), skipped
	FROM execution_results WHERE result_id = ANY($1::text[]) ORDER BY result_id FOR UPDATE`

// lockRows locks and reads the rows of ids that exist, in result_id order (FOR UPDATE applies
// after the ORDER BY). stdout and stderr are not read.
func lockRows(ctx context.Context, tx *pgx.Conn, ids []string) (map[string]*project.Entry, error) {
	entries := make(map[string]*project.Entry, len(ids))
	res, err := tx.Query(ctx, selectRows, ids)
	if err != nil {
		return nil, fmt.Errorf("load rows: %w", err)
	}
	var (
		r               project.Row
		reaped, skipped int32
	)
	_, err = pgx.ForEachRow(res, []any{&r.ResultID, &r.RequestID, &r.ExecID, &r.PCID, &r.ExitCode,
		&r.StartedAt, &r.FinishedAt, &r.RecordedAt, &r.JobID, &r.Version, &reaped, &r.ParentResultID, &skipped},
		func() error {
			row := r
			row.Reaped, row.Skipped = reaped != 0, skipped != 0
			row.Finished = row.FinishedAt != ""
			entries[row.ResultID] = &project.Entry{Cur: row, Existed: true}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("load rows: %w", err)
	}
	return entries, nil
}

// updateRow writes merged rows over their stored ones; stdout and stderr only where the merge
// set the outcome (they are never read back).
const updateRowsSQL = `UPDATE execution_results e SET request_id = u.request_id, exec_id = u.exec_id,
	exit_code = u.exit_code, finished_at = u.finished_at, recorded_at = u.recorded_at, job_id = u.job_id,
	version = u.version, reaped = u.reaped, parent_result_id = u.parent_result_id, skipped = u.skipped,
	stdout = CASE WHEN u.text_set THEN u.stdout ELSE e.stdout END,
	stderr = CASE WHEN u.text_set THEN u.stderr ELSE e.stderr END
	FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::text[],
		$8::text[], $9::int4[], $10::text[], $11::int4[], $12::bool[], $13::text[], $14::text[])
		AS u(result_id, request_id, exec_id, exit_code, finished_at, recorded_at, job_id, version,
			reaped, parent_result_id, skipped, text_set, stdout, stderr)
	WHERE e.result_id = u.result_id`

// updateRows writes changed rows, all present and locked.
func updateRows(ctx context.Context, tx *pgx.Conn, rows []*project.Entry) error {
	if len(rows) == 0 {
		return nil
	}
	c := newColumns(len(rows))
	for _, e := range rows {
		c.add(&e.Cur, true)
	}
	tag, err := tx.Exec(ctx, updateRowsSQL, c.id, c.request, c.exec, c.exit, c.finished, c.recorded, c.job,
		c.version, c.reaped, c.parent, c.skipped, c.textSet, c.stdout, c.stderr)
	if err != nil {
		return fmt.Errorf("update rows: %w", err)
	}
	if int(tag.RowsAffected()) != len(rows) { // locked rows cannot vanish; never lose a merge silently
		return fmt.Errorf("update rows: %d of %d rows updated", tag.RowsAffected(), len(rows))
	}
	return nil
}

const (
	markRunning = `UPDATE executions SET status = 'running' WHERE exec_id = $1 AND status = 'pending'`
	bumpCounts  = `UPDATE executions SET
		success_count = success_count + $1,
		failure_count = failure_count + $2,
		status = CASE
			WHEN status = 'expired' THEN status
			WHEN success_count + failure_count + $3 >= target_count THEN 'completed'
			ELSE 'running' END
		WHERE exec_id = $4`
)

// queueExecutions queues each execution's delta, in exec_id order (the lock order after the
// rows'), pending → running first, as sink does. Each update is atomic on the row's latest
// version: a concurrent batch's bump is added to, never overwritten. A missing executions row
// is a no-op.
func queueExecutions(b *pgx.Batch, execs project.Deltas) {
	ids := make([]string, 0, len(execs))
	for id := range execs {
		if id != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		d := execs[id]
		if d.Started {
			b.Queue(markRunning, id)
		}
		if n := d.Success + d.Failure; n > 0 {
			b.Queue(bumpCounts, d.Success, d.Failure, n, id)
		}
	}
}

// insertDeadLetter is sink's: a message is recorded once per (stream, incarnation, sequence),
// and a row of unknown incarnation with the same stream, sequence and publish time is the same
// message.
const insertDeadLetter = `INSERT INTO dead_letters (stream, stream_created, stream_seq, subject, reason,
	payload, headers, recorded_at) SELECT $1::text, $2::text, $3::bigint, $4::text, $5::text, $6::bytea, $7::bytea, $8::text
	WHERE NOT EXISTS (SELECT 1 FROM dead_letters WHERE stream = $1 AND stream_seq = $3
		AND recorded_at = $8 AND (stream_created = '' OR $2 = ''))
	ON CONFLICT (stream, stream_created, stream_seq) DO NOTHING`

// lockDeadLetter serialises the transactions recording one stream sequence's dead letter. The
// primary key makes two copies of a message of the same incarnation one row, but not a copy of
// unknown incarnation and one of a known one: insertDeadLetter's NOT EXISTS, under READ
// COMMITTED, does not see a concurrent transaction's row, and both would be kept. Held to the
// end of the transaction, the lock makes the second insert (a later statement: a new snapshot)
// see the first's committed row.
const lockDeadLetter = `SELECT pg_advisory_xact_lock($1)`

// queueDeadLetters queues recs[dead...], each recorded once, payload and headers byte for
// byte, in (stream, sequence) order — also the order of their locks.
func queueDeadLetters(b *pgx.Batch, recs []codec.Record, dead []int, reasons []error) {
	sorted := append([]int(nil), dead...)
	sort.Slice(sorted, func(a, c int) bool {
		ra, rc := &recs[sorted[a]], &recs[sorted[c]]
		if ra.Stream != rc.Stream {
			return ra.Stream < rc.Stream
		}
		return ra.Seq < rc.Seq
	})
	for _, i := range sorted {
		r := &recs[i]
		payload, header := r.Payload, r.Header
		if payload == nil {
			payload = []byte{} // an empty payload is an empty bytea, never NULL
		}
		b.Queue(lockDeadLetter, lockKey(fmt.Sprintf("dead-letter/%s/%d", r.Stream, r.Seq)))
		if len(header) == 0 {
			header = nil // no headers: NULL
		}
		b.Queue(insertDeadLetter, r.Stream, streamCreatedText(r.StreamCreated), int64(r.Seq), r.Subject,
			reasons[i].Error(), payload, header, r.RecordedAtText())
	}
}

// streamCreatedText is the dead_letters.stream_created of a record: "" when unknown.
func streamCreatedText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return codec.FormatTime(t)
}

// lockKey names an advisory lock: the one that serialises migrations and the replay reset across
// replicas, and one per dead letter's stream sequence (rows lock themselves).
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("fanin/" + name))
	return int64(h.Sum64())
}
