package main

import (
	"context"
	"fmt"

	"fanin/internal/batch"
	"fanin/internal/sink"
)

// The native mode is SQLite's own speed on fanin's rows: the same schema, indexes, pragmas,
// cache and connection (sink.Open's), transactions of the size fanin's grouping reaches while
// behind, and no Go in the per-row loop. One statement per transaction makes its rows inside
// SQLite (from the PC number and its result_id), sorts them by result_id and inserts them;
// with -results every started transaction is followed by one that projects the same
// PCs' results, an upsert doing what the projection rules do to an in-flight row.
//
// The result_ids are the broadcast's own (random UUIDs, drawn by the same generator from the
// same seed), put into a temporary table before the timed part: random keys cluster on the
// B-tree's pages as agents' do, which ids derived by arithmetic from the PC number would not
// (evenly spread keys dirty more pages per transaction).

// nativeIDs fills the temporary table of the ids from a JSON array, PC i's at i.
const (
	nativeIDsTable = `CREATE TEMP TABLE IF NOT EXISTS native_ids (i INTEGER PRIMARY KEY, id TEXT NOT NULL)`
	nativeIDs      = `INSERT INTO temp.native_ids (i, id) SELECT key + 1, value FROM json_each(?)`
)

// nativeFrom is the FROM clause of both statements: PCs ?1 … ?2 (inclusive), i and id, in
// result_id order.
const nativeFrom = ` FROM temp.native_ids WHERE i BETWEEN ?1 AND ?2 ORDER BY 1`

// nativePC is PC i's id: PC-0000042, as the generator names it.
const nativePC = `printf('PC-%07d', i)`

// nativeStartedAt and nativeFinishedAt are gen's times: PCs started over the first two seconds,
// each finished 1.5 s later.
const (
	nativeStartedAt  = `printf('2026-05-20T12:00:%02d.%06dZ', (i % 200000) / 100000, (i % 200000) * 10 % 1000000)`
	nativeFinishedAt = `printf('2026-05-20T12:00:%02d.%06dZ', ((i % 200000) * 10 + 1500000) / 1000000, ((i % 200000) * 10 + 1500000) % 1000000)`
	nativeRecordedAt = `'2026-05-20T12:00:05.000000Z'`
)

// nativeStarted inserts PCs ?1 … ?2's in-flight rows, in result_id order; a row already there
// is left alone, as fanin's insert does.
const nativeStarted = `INSERT INTO execution_results (result_id, request_id, exec_id, pc_id, exit_code,
	stdout, stderr, started_at, finished_at, recorded_at, job_id, version, reaped,
	parent_result_id, skipped) SELECT id, '` + benchRequestID + `', '` +
	benchExecID + `', ` + nativePC + `, NULL, '', '', ` + nativeStartedAt + `, NULL, ` + nativeRecordedAt +
	`, '` + benchManifest + `', '` + benchVersion + `', 0, NULL, 0 ` + nativeFrom + `
	ON CONFLICT (result_id) DO NOTHING`

// nativeResults projects PCs ?1 … ?2's results, in result_id order: a new row is inserted
// finished; a row in flight or reaped takes the outcome and fills what is NULL (contract §5);
// a finished one keeps it. The executions' counters are one statement per transaction in
// fanin too, and are left out here.
const nativeResults = `INSERT INTO execution_results (result_id, request_id, exec_id, pc_id, exit_code,
	stdout, stderr, started_at, finished_at, recorded_at, job_id, version, reaped,
	parent_result_id, skipped) SELECT id, '` + benchRequestID + `', '` +
	benchExecID + `', ` + nativePC + `, 0, 'hostname=' || ` + nativePC + ` || ' cpu=4 ram=16GiB', '', ` +
	nativeStartedAt + `, ` + nativeFinishedAt + `, ` + nativeRecordedAt + `, '` + benchManifest +
	`', NULL, 0, NULL, 0 ` + nativeFrom + `
	ON CONFLICT (result_id) DO UPDATE SET exit_code = excluded.exit_code, stdout = excluded.stdout,
		stderr = excluded.stderr, finished_at = excluded.finished_at, skipped = excluded.skipped,
		request_id = excluded.request_id, reaped = 0,
		job_id = coalesce(job_id, excluded.job_id), exec_id = coalesce(exec_id, excluded.exec_id),
		parent_result_id = coalesce(parent_result_id, excluded.parent_result_id),
		recorded_at = min(recorded_at, excluded.recorded_at)
	WHERE finished_at IS NULL OR reaped = 1`

// loadNativeIDs puts the broadcast's result_ids into the temporary table (untimed).
func loadNativeIDs(ctx context.Context, db *sink.Sink, pcs int) error {
	g := newGen(seedEvents)
	list := make([]byte, 0, pcs*39+2)
	list = append(list, '[')
	for i := range pcs {
		g.next()
		if i > 0 {
			list = append(list, ',')
		}
		list = append(list, '"')
		list = append(list, g.id[:]...)
		list = append(list, '"')
	}
	list = append(list, ']')
	if _, err := db.Exec(ctx, nativeIDsTable); err != nil {
		return fmt.Errorf("native ids: %w", err)
	}
	if _, err := db.Exec(ctx, nativeIDs, string(list)); err != nil {
		return fmt.Errorf("native ids: %w", err)
	}
	return nil
}

// groupSize is how many messages one of fanin's transactions holds while it is behind, at N.
func groupSize(n int) int {
	c := batch.Started()
	c.BatchSize = n
	return c.GroupSize()
}

// native measures SQLite's own speed on the broadcast's rows, in transactions of the size
// fanin uses while behind at N, on a fresh database (holding prefill other rows first).
func native(ctx context.Context, e *env, n, prefill int) (result, error) {
	res := result{Mode: modeNative, N: n, Prefill: prefill, Msgs: e.opts.PCs}
	name := e.name(modeNative, n)
	path := e.dbPath(name)
	defer removeDB(path)
	if prefill > 0 {
		if err := prefillDB(ctx, e, path, prefill); err != nil {
			return res, err
		}
	}
	db, err := openSink(ctx, e.sinkConfig(path))
	if err != nil {
		return res, err
	}
	defer db.Close()
	if e.opts.Results {
		res.Msgs *= 2
	}

	if err := loadNativeIDs(ctx, db, e.opts.PCs); err != nil {
		return res, err
	}
	tx := groupSize(n)
	label := fmt.Sprintf("native N=%d", n)
	if prefill > 0 {
		label = fmt.Sprintf("native +%d rows", prefill)
	}
	e.prog.start(label, uint64(res.Msgs))
	defer e.prog.finish()
	var done uint64
	mt := e.startMeter(path)
	mt.begin()
	for first := 1; first <= e.opts.PCs; first += tx {
		last := min(first+tx-1, e.opts.PCs)
		queries := []string{nativeStarted}
		if e.opts.Results {
			queries = append(queries, nativeResults)
		}
		for _, q := range queries {
			got, err := db.Exec(ctx, q, first, last)
			res.Txs++
			if err != nil {
				mt.stop()
				return res, fmt.Errorf("native: %w", err)
			}
			if want := int64(last - first + 1); got != want {
				mt.stop()
				return res, fmt.Errorf("native: %d rows written of PCs %d–%d, want %d", got, first, last, want)
			}
			done += uint64(last - first + 1)
			e.prog.update(done)
		}
	}
	mt.end()
	res.M = mt.stop()
	return res, verifyRows(ctx, db, &res, prefill+e.opts.PCs, e.opts.Results)
}
