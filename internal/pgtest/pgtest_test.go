package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fanin/internal/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	srv = pgtest.Start(context.Background())
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

func TestNewDBGivesEachTestItsOwnEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := srv.NewDB(t), srv.NewDB(t)
	if a == b {
		t.Fatalf("both databases are %q", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 't'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database b sees a's table")
	}
}

func TestRestartClosesConnectionsAndServesAgain(t *testing.T) {
	ctx := context.Background()
	cs := srv.NewDB(t)
	conn, err := pgx.Connect(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	srv.Restart(t)
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("a connection from before the restart still works")
	}
	ctx2, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	again, err := pgx.Connect(ctx2, cs)
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	again.Close(ctx)
}
