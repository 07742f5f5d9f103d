package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"fanin/internal/fault"
	"fanin/internal/store"
)

// purgeBusyAttempts is how many times a chunk is tried while the database stays locked past
// the busy timeout (an ingester's long transaction, a reader's checkpoint).
const purgeBusyAttempts = 10

// PurgeDeadLetters deletes every dead letter f selects, chunk rows per transaction (0:
// store.DefaultPurgeChunk), and returns how many it deleted. Each chunk is found by a read and
// deleted in its own BEGIN IMMEDIATE transaction, so the write lock is held briefly and another
// process (a running ingester) writes between chunks; a chunk that finds the database locked past the busy timeout is
// tried again, with backoff, a few times. Rows are taken in rowid order, each chunk resuming
// after the last: dead letters recorded meanwhile that f selects may go too.
//
// f.Limit must be 0: a purge deletes all that f selects. Deleting every dead letter of a
// database that holds no execution_results makes it look wiped (see Empty) to the next start.
func (s *Sink) PurgeDeadLetters(ctx context.Context, f store.DeadLetterFilter, chunk int) (int, error) {
	if f.Limit != 0 {
		return 0, fault.Fieldf("Limit", "must be 0 for a purge, not %d", f.Limit)
	}
	if chunk <= 0 {
		chunk = store.DefaultPurgeChunk
	}
	total := 0
	var after int64 // the last rowid looked at
	for {
		var (
			n    int
			last int64
			err  error
		)
		backoff := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			n, last, err = s.purgeChunk(ctx, f, after, chunk)
			if err == nil || !isBusy(err) || attempt == purgeBusyAttempts {
				break
			}
			select {
			case <-ctx.Done():
				return total, fmt.Errorf("purge dead letters: %w", ctx.Err())
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
		if err != nil {
			return total, fmt.Errorf("purge dead letters (%d deleted): %w", total, err)
		}
		total += n
		if last == after { // nothing left above it
			return total, nil
		}
		after = last
	}
}

// purgeChunk deletes up to chunk dead letters f selects whose rowid is above after, and
// returns how many it deleted and the last rowid it looked at. The rows are found by a plain
// read, which in WAL mode takes no lock a writer waits for (however many rows it scans past
// when f selects few); only the delete, by rowid, is a write transaction. The delete checks f
// again, so a rowid that names another row by then (a VACUUM renumbers them) is left alone.
func (s *Sink) purgeChunk(ctx context.Context, f store.DeadLetterFilter, after int64, chunk int) (int, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, after, ErrClosed
	}
	where, args := deadLetterWhere(f)
	rows, err := s.db.QueryContext(ctx, `SELECT rowid FROM dead_letters WHERE `+where+` AND rowid > ? ORDER BY rowid LIMIT ?`,
		append(slices.Clone(args), after, chunk)...)
	if err != nil {
		return 0, after, err
	}
	var ids []any
	last := after
	for rows.Next() {
		if err := rows.Scan(&last); err != nil {
			rows.Close()
			return 0, after, err
		}
		ids = append(ids, last)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, after, err
	}
	if len(ids) == 0 {
		return 0, after, nil
	}
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (the DSN's _txlock)
	if err != nil {
		return 0, after, err
	}
	defer tx.Rollback()
	q := `DELETE FROM dead_letters WHERE rowid IN (?` + strings.Repeat(",?", len(ids)-1) + `) AND ` + where
	res, err := tx.ExecContext(ctx, q, append(ids, args...)...)
	if err != nil {
		return 0, after, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, after, err
	}
	if err := tx.Commit(); err != nil {
		return 0, after, err
	}
	return int(n), last, nil
}

// isBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY).
func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrBusy
}
