package pgsink

import (
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"fanin/internal/modeltest"
)

// modelStore opens a migrated store on a database of its own, and the same database through
// database/sql for the model's reaper and reads.
func modelStore(t *testing.T) (*Store, *sql.DB) {
	t.Helper()
	s, url := newStore(t)
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cc)
	t.Cleanup(func() { db.Close() })
	return s, db
}

// TestStoreMatchesModelOfDomainRules runs the model-based property test the SQLite store runs
// (internal/modeltest: any order, duplicates, redeliveries, batch boundaries, poison, reaper
// steps, crashes between commit and ack, checked after every step against a model written from
// docs/contract.md) against the PostgreSQL store.
func TestStoreMatchesModelOfDomainRules(t *testing.T) {
	s, db := modelStore(t)
	modeltest.Property(t, s, db, 20) // 20 × rapid's checks under FANIN_SOAK=1
}

func TestStorePassesModelRegressions(t *testing.T) {
	s, db := modelStore(t)
	for _, r := range modeltest.Regressions() {
		t.Run(r.Name, func(t *testing.T) { modeltest.RunScenario(t, s, db, r.Scenario) })
	}
}
