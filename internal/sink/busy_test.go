package sink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"fanin/internal/codec"
	"fanin/internal/fault"
)

// holdWriteLock takes the database's write lock with BEGIN IMMEDIATE on a separate
// connection, as another process would, and returns the function that releases it.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("BEGIN IMMEDIATE: %v", err)
	}
	released := false
	release = func() {
		t.Helper()
		if released {
			return
		}
		released = true
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Fatalf("ROLLBACK: %v", err)
		}
		conn.Close()
	}
	t.Cleanup(release)
	return release
}

func TestWriteWhileAnotherConnectionHoldsTheLockIsTransient(t *testing.T) {
	cfg := testConfig(t)
	cfg.BusyTimeout = 200 * time.Millisecond
	s := openTestSink(t, cfg)
	insertExecution(t, s, testExec, 2, "pending")
	recs := []codec.Record{
		started("r1", "pc1").record(t, 1, t0),
		result("r2", "pc2", 0).record(t, 2, t0),
		rawRecord(codec.KindResult, 3, "results.req-1", []byte("poison"), t0),
	}

	release := holdWriteLock(t, cfg.Path)
	begin := time.Now()
	_, err := s.Write(context.Background(), recs)
	waited := time.Since(begin)
	if err == nil {
		t.Fatal("Write succeeded while another connection held the write lock")
	}
	if fault.IsPermanent(err) {
		t.Fatalf("IsPermanent(%v) = true, want false: the lock will go away", err)
	}
	var se sqlite3.Error
	if !errors.As(err, &se) || se.Code != sqlite3.ErrBusy {
		t.Errorf("Write error %v is not SQLITE_BUSY", err)
	}
	if waited < cfg.BusyTimeout/2 {
		t.Errorf("Write gave up after %v, before its busy timeout of %v", waited, cfg.BusyTimeout)
	}
	for _, table := range []string{"execution_results", "dead_letters"} {
		if n := countRows(t, s, table); n != 0 {
			t.Errorf("the failed Write left %d rows in %s", n, table)
		}
	}
	if got := readExecution(t, s, testExec); got != (execRow{Status: "pending"}) {
		t.Errorf("the failed Write moved the execution to %+v", got)
	}

	release()
	rep, err := s.Write(context.Background(), recs)
	if err != nil {
		t.Fatalf("Write after the lock was released: %v", err)
	}
	if rep.Inserted != 2 || len(rep.DeadLetters) != 1 {
		t.Fatalf("report = %+v, want 2 inserted and 1 dead-lettered", rep)
	}
	if got := readExecution(t, s, testExec); got != (execRow{Success: 1, Status: "running"}) {
		t.Fatalf("execution = %+v, want 1 success, running", got)
	}
}

func TestWriteWithCancelledContextIsTransient(t *testing.T) {
	s := newTestSink(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Write(ctx, []codec.Record{started("r1", "pc1").record(t, 1, t0)})
	if err == nil {
		t.Fatal("Write with a cancelled context succeeded")
	}
	if fault.IsPermanent(err) {
		t.Fatalf("IsPermanent(%v) = true, want false", err)
	}
	if n := countRows(t, s, "execution_results"); n != 0 {
		t.Fatalf("a cancelled Write left %d rows", n)
	}
}

func TestClassify(t *testing.T) {
	s := newTestSink(t)
	mustExec(t, s.db, `CREATE TABLE unique_x (x INTEGER PRIMARY KEY); INSERT INTO unique_x VALUES (1)`)
	_, constraint := s.db.Exec(`INSERT INTO unique_x VALUES (1)`)
	if constraint == nil {
		t.Fatal("duplicate primary key accepted")
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"constraint", constraint, true},
		{"wrapped constraint", fmt.Errorf("insert r1: %w", constraint), true},
		{"too big", sqlite3.Error{Code: sqlite3.ErrTooBig}, true},
		{"busy", sqlite3.Error{Code: sqlite3.ErrBusy}, false},
		{"wrapped busy", fmt.Errorf("begin: %w", sqlite3.Error{Code: sqlite3.ErrBusy}), false},
		{"locked", sqlite3.Error{Code: sqlite3.ErrLocked}, false},
		{"I/O", sqlite3.Error{Code: sqlite3.ErrIoErr}, false},
		{"full disk", sqlite3.Error{Code: sqlite3.ErrFull}, false},
		{"read-only", sqlite3.Error{Code: sqlite3.ErrReadonly}, false},
		{"context canceled", context.Canceled, false},
		{"wrapped context canceled", fmt.Errorf("commit: %w", context.Canceled), false},
		{"deadline exceeded", context.DeadlineExceeded, false},
		{"nil", nil, false},
		{"not from SQLite", errors.New("connection reset"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fault.IsPermanent(classify(tt.err)); got != tt.want {
				t.Fatalf("IsPermanent(classify(%v)) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
