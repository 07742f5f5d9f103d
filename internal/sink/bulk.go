package sink

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mattn/go-sqlite3"

	"fanin/internal/project"
)

// A batch of started events into absent rows — the common case — is inserted with a few
// statements a batch instead of one a row: the rows, bound as a single JSON array text, are
// unpacked by SQLite into a temporary table, which one INSERT … SELECT copies into
// execution_results. One bind and a few steps a batch instead of some ten cgo crossings and a
// step a row.
//
// Why the temporary table, and not one INSERT … SELECT … FROM jsonb_each(?): a statement that
// writes many rows and calls a function (->> is one) may abort halfway, so SQLite keeps a
// statement journal for it, and in WAL mode that is a copy of every page the statement
// touches, written to a temporary file — most of what the single statement would save. The
// copy from the temporary table calls no function and, under OR FAIL, needs no statement
// journal (a refused row stops it with the rows before it in place; the transaction is rolled
// back whole on any error anyway). Filling the temporary table journals its own few pages only.
const (
	// stageCreate makes the temporary table once per connection (it lives as long as the
	// connection) and empties it of the last batch.
	stageCreate = `CREATE TEMP TABLE IF NOT EXISTS fanin_started (result_id, request_id,
		exec_id, pc_id, started_at, recorded_at, job_id, version);
		DELETE FROM temp.fanin_started`
	// stageStarted unpacks the rows: one JSON array of the eight values per row (null for
	// NULL), in result_id order, which the rowids keep. jsonb_each hands each row's array to
	// ->> as JSONB: json_each would render it as text for ->> to parse again.
	stageStarted = `INSERT INTO temp.fanin_started SELECT value->>0, value->>1, value->>2,
		value->>3, value->>4, value->>5, value->>6, value->>7 FROM jsonb_each(?)`
	// insertStaged is insertStarted for the staged rows, in their order (no ORDER BY: no
	// sort). `WHERE true` is required: without it SQLite's parser takes ON CONFLICT for a
	// join's ON.
	insertStaged = `INSERT OR FAIL INTO main.execution_results (result_id, request_id, exec_id,
		pc_id, started_at, recorded_at, job_id, version)
		SELECT * FROM temp.fanin_started WHERE true ON CONFLICT (result_id) DO NOTHING`
	// maxRowid is the largest rowid of execution_results (NULL when empty): one step down
	// the table's B-tree.
	maxRowid = `SELECT max(rowid) FROM main.execution_results`
	// selectExisted are the staged ids whose row was in execution_results before
	// insertStaged ran: rowid at most ?, the largest rowid before.
	selectExisted = `SELECT result_id FROM main.execution_results
		WHERE rowid <= ? AND result_id IN (SELECT result_id FROM temp.fanin_started)`
)

// bulkMin is the fewest rows insertFresh inserts through the temporary table: it prepares and
// runs five statements a transaction, and at 100-row batches the two ways cost the same CPU
// (BenchmarkWriteStarted, paired runs). Below it a row the database refuses also keeps its own
// error message ("insert <result_id>: …") once bisection has it alone.
const bulkMin = 100

// insertFresh writes the rows a started-only batch merged into absent rows (writeInsertFirst's
// first pass), as writeRows would, and returns the ids whose row turned out to exist.
//
// It inserts them all through fanin_started (see stageStarted). When every row was new — the
// usual case — that is all. When fewer rows were inserted than sent, some existed, and which
// cannot be told from their values (a row an earlier batch wrote from the same event looks
// like one just inserted). Their rowids tell: SQLite gives a new row one more than the largest
// rowid in the table (only when that is the largest integer does it pick at random, which the
// check below rules out), so the rows with a rowid no larger than the largest before the
// statement are the ones that were there.
func insertFresh(ctx context.Context, tx *txn, entries map[string]*project.Entry, rep *counts) (existed []string, err error) {
	rows := inFlightRows(entries)
	if len(rows) < bulkMin {
		return writeRows(ctx, tx, entries, rep)
	}
	list, ok := appendStartedJSON(nil, rows)
	if !ok {
		return writeRows(ctx, tx, entries, rep) // text JSON cannot carry: bind it as it is
	}
	var (
		inserted int64
		oneByOne bool
	)
	err = tx.raw(func(c *sqlite3.SQLiteConn) error {
		last, err := queryInt(ctx, c, maxRowid)
		if err != nil {
			return fmt.Errorf("largest rowid: %w", err)
		}
		if last > math.MaxInt64-int64(len(rows)) {
			oneByOne = true // new rowids would not all be larger: never in practice
			return nil
		}
		if _, err := execRaw(ctx, c, stageCreate); err != nil {
			return fmt.Errorf("stage: %w", err)
		}
		if _, err := execRaw(ctx, c, stageStarted, string(list)); err != nil {
			return fmt.Errorf("stage %d rows: %w", len(rows), err)
		}
		inserted, err = execRaw(ctx, c, insertStaged)
		if err != nil {
			return fmt.Errorf("insert %d rows %s to %s: %w", len(rows), rows[0].ResultID, rows[len(rows)-1].ResultID, err)
		}
		if inserted == int64(len(rows)) {
			return nil
		}
		existed, err = queryTexts(ctx, c, selectExisted, last)
		if err != nil {
			return fmt.Errorf("rows that existed: %w", err)
		}
		if int64(len(existed))+inserted != int64(len(rows)) {
			return fmt.Errorf("insert: %d of %d rows inserted, but %d existed", inserted, len(rows), len(existed))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if oneByOne {
		return writeRows(ctx, tx, entries, rep)
	}
	rep.Inserted += int(inserted)
	return existed, nil
}

// rowids reports whether execution_results has rowids, which insertFresh needs: a table made
// by another program before fanin's migrations (they create it only when it is missing) may be
// WITHOUT ROWID, and then every started batch goes one row at a time instead of failing. It
// is asked once, within a write transaction (s.mu held).
func (s *Sink) rowids(ctx context.Context, tx *txn) (bool, error) {
	if s.hasRowids == 0 {
		var withoutRowid bool
		err := tx.QueryRowContext(ctx, `SELECT wr FROM pragma_table_list('execution_results') WHERE schema = 'main'`).Scan(&withoutRowid)
		if err != nil {
			return false, fmt.Errorf("is execution_results a rowid table: %w", err)
		}
		s.hasRowids = 1
		if withoutRowid {
			s.hasRowids = 2
		}
	}
	return s.hasRowids == 1, nil
}

// execRaw runs query with args on c and returns the rows it changed.
func execRaw(ctx context.Context, c *sqlite3.SQLiteConn, query string, args ...any) (int64, error) {
	res, err := c.ExecContext(ctx, query, named(args))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryInt runs a query of one integer (NULL: 0).
func queryInt(ctx context.Context, c *sqlite3.SQLiteConn, query string, args ...any) (int64, error) {
	var n int64
	err := queryEach(ctx, c, query, args, func(v driver.Value) { n, _ = v.(int64) })
	return n, err
}

// queryTexts runs a query of one text column and returns its values.
func queryTexts(ctx context.Context, c *sqlite3.SQLiteConn, query string, args ...any) ([]string, error) {
	var texts []string
	err := queryEach(ctx, c, query, args, func(v driver.Value) { texts = append(texts, text(v)) })
	return texts, err
}

// queryEach runs a query of one column on c and calls f with each value.
func queryEach(ctx context.Context, c *sqlite3.SQLiteConn, query string, args []any, f func(driver.Value)) error {
	rows, err := c.QueryContext(ctx, query, named(args))
	if err != nil {
		return err
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	for {
		if err := rows.Next(v); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		f(v[0])
	}
}

// named numbers args as the driver takes them.
func named(args []any) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, v := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return nv
}

// inFlightRows returns the rows of entries to write, sorted by result_id, when every one is a
// new row in flight that insertStarted can write; nil otherwise.
func inFlightRows(entries map[string]*project.Entry) []*project.Row {
	rows := make([]*project.Row, 0, len(entries))
	for _, e := range entries {
		if !e.Dirty {
			continue
		}
		if e.Existed || !inFlightDefaults(&e.Cur) {
			return nil
		}
		rows = append(rows, &e.Cur)
	}
	slices.SortFunc(rows, func(a, b *project.Row) int { return strings.Compare(a.ResultID, b.ResultID) })
	return rows
}

// appendStartedJSON appends rows to b as stageStarted reads them. It reports false when
// some text is not valid UTF-8, which a JSON string cannot carry byte for byte.
func appendStartedJSON(b []byte, rows []*project.Row) ([]byte, bool) {
	n := 2
	for _, r := range rows {
		// The texts, 8 pairs of quotes, 7 commas, brackets and a comma; escapes are rare.
		n += len(r.ResultID) + len(r.RequestID) + len(r.ExecID) + len(r.PCID) + len(r.StartedAt) +
			len(r.RecordedAt) + len(r.JobID) + len(r.Version) + 26
	}
	b = slices.Grow(b, n)
	b = append(b, '[')
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, s := range [...]string{r.ResultID, r.RequestID, r.ExecID, r.PCID, r.StartedAt, r.RecordedAt, r.JobID, r.Version} {
			if j > 0 {
				b = append(b, ',')
			}
			nullable := j == 2 || j == 6 || j == 7 // exec_id, job_id, version: "" is NULL
			if s == "" && nullable {
				b = append(b, "null"...)
				continue
			}
			var ok bool
			if b, ok = appendJSONString(b, s); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	return append(b, ']'), true
}

// jsonPlain holds the bytes a JSON string carries as they are and that are whole characters:
// ASCII from the space on, but '"' and '\\'.
var jsonPlain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends s to b as a JSON string: '"', '\' and the control characters below
// U+0020 escaped, everything else as it is (JSON text is UTF-8). strconv.AppendQuote is not
// JSON: it writes \x.., \a and \U........ escapes that JSON does not have. It reports false
// when s is not valid UTF-8 (UTF-8 encoded surrogates included).
func appendJSONString(b []byte, s string) ([]byte, bool) {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is still to copy
	for i := 0; i < len(s); {
		c := s[i]
		if jsonPlain[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return b, false
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
}
