package pgsink

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"fanin/internal/store"
)

func sinkFilter() store.DeadLetterFilter { return store.DeadLetterFilter{} }

func sinkExecution(id string) store.Execution {
	return store.Execution{ExecID: id, JobID: "j", Version: "v", InitiatedBy: "t", InitiatedAt: t0, TargetCount: 1}
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

func TestDisplayNameShowsNoPassword(t *testing.T) {
	for cs, want := range map[string]string{
		"postgres://fanin:s3cret@db1:5433/fanin?sslmode=disable":                     "postgres://fanin@db1:5433/fanin",
		"host=/run/pg port=5433 user=fanin password=s3cret dbname=f sslmode=disable": "postgres://fanin@/f?host=/run/pg&port=5433",
		"postgres://fanin:s3cret@db1,db2/fanin?sslmode=disable":                      "postgres://fanin@db1:5432,db2:5432/fanin",
	} {
		cfg := Config{URL: cs}
		if got := cfg.Display(); got != want {
			t.Errorf("Display(%q) = %q, want %q", cs, got, want)
		}
		if got := Redact("failed: "+cs, cs); strings.Contains(got, "s3cret") {
			t.Errorf("Redact left the password: %q", got)
		}
	}
}

func TestIsConnStringTellsPostgreSQLFromAFile(t *testing.T) {
	for s, want := range map[string]bool{
		"postgres://fanin@db1/fanin":       true,
		"postgresql:///fanin?host=/run/pg": true,
		"host=db1 dbname=fanin":            true,
		"  dbname = fanin host=db1":        true,
		"sslmode=verify-full host=db1":     true,
		"service=fanin":                    true,
		"fanin.db":                         false,
		"/var/lib/fanin/fanin.db":          false,
		"./data/a host=b.db":               false,
		"/srv/fanin dbname=x/fanin.db":     false,
		"backup=2026-12-07.db":             false, // a file name with '=': not a libpq keyword
		"file:fanin.db?mode=rwc":           false,
		"postgres.db":                      false,
		"postgres:fanin.db":                false,
	} {
		if got := IsConnString(s); got != want {
			t.Errorf("IsConnString(%q) = %v, want %v", s, got, want)
		}
	}
}
