package pgsink

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"pgregory.net/rapid"

	"fanin/internal/modeltest"
)

// TestStoreMatchesModelOfDomainRules runs the model-based property test of internal/sink
// (internal/modeltest: any order, duplicates, redeliveries, batch boundaries, poison, reaper
// steps, crashes between commit and ack, checked after every step against a model written from
// docs/contract.md) against the PostgreSQL store.
func TestStoreMatchesModelOfDomainRules(t *testing.T) {
	s, url := newStore(t)
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cc)
	t.Cleanup(func() { db.Close() })
	rounds := 1
	if os.Getenv("FANIN_SOAK") == "1" {
		rounds = 20
	}
	for range rounds {
		rapid.Check(t, func(rt *rapid.T) { modeltest.RunScenario(rt, s, db, modeltest.DrawScenario(rt)) })
	}
}
