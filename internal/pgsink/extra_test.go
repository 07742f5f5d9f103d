package pgsink

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"fanin/internal/sink"
)

func sinkFilter() sink.DeadLetterFilter { return sink.DeadLetterFilter{} }

func sinkExecution(id string) sink.Execution {
	return sink.Execution{ExecID: id, JobID: "j", Version: "v", InitiatedBy: "t", InitiatedAt: t0, TargetCount: 1}
}

func pgErr(code string) error { return &pgconn.PgError{Code: code, Message: "test " + code} }

func dbName(t *testing.T, s *Store) string {
	t.Helper()
	var name string
	if err := s.pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

func openStoreNoMigrate(t *testing.T, url string) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL = url
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openSQLiteRW(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}
