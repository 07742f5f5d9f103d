package sink

// The model-based property test of the projection rules (internal/modeltest, shared with the
// PostgreSQL store): a random fleet and a random delivery history (any order, duplicates,
// redeliveries, batch boundaries, poison, reaper actions between batches, crashes between
// commit and ack) go through the real sink, and after every step the three tables must equal
// those of an in-memory model written from the text of docs/contract.md — not from package
// project.
//
// Failing cases are kept by rapid under testdata/rapid/ and replayed first on every run; each
// one found so far is also pinned as a modeltest.Regression.
//
// FANIN_SOAK=1 runs many more cases (make soak); RAPID_CHECKS overrides the count as usual.

import (
	"path/filepath"
	"testing"

	"fanin/internal/modeltest"
)

// modelSink opens one migrated sink (Sync normal: durability is not what this checks) for all
// the cases of a test.
func modelSink(t *testing.T) *Sink {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "model.db")
	cfg.Sync = SyncNormal
	return openTestSink(t, cfg)
}

func TestSinkMatchesModelOfDomainRules(t *testing.T) {
	s := modelSink(t)
	modeltest.Property(t, s, s.db, 50) // 50 × rapid's checks under FANIN_SOAK=1
}

func TestSinkPassesModelRegressions(t *testing.T) {
	s := modelSink(t)
	for _, r := range modeltest.Regressions() {
		t.Run(r.Name, func(t *testing.T) { modeltest.RunScenario(t, s, s.db, r.Scenario) })
	}
}
