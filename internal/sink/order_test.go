package sink

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fleet"
	"fanin/internal/modeltest"
)

// The property of domain.md: any order, any number of duplicates, any batch boundaries and
// any crash between commit and ack produce exactly the same final tables.

const (
	fleetPCs  = 30
	orderSeed = 20260520
)

// Runs of the fleet whose messages the test reshapes (fleet.Broadcast has rates, the test wants
// exact counts): three legacy agents that send no result_id, and results without exec_id.
var (
	legacyPCs = map[string]bool{"PC-00003": true, "PC-00011": true, "PC-00017": true}
	noExecPCs = map[string]bool{"PC-00005": true, "PC-00008": true, "PC-00013": true, "PC-00017": true, "PC-00026": true}
)

// fleetRecords returns the messages of one broadcast to fleetPCs PCs as decoded records in
// publish order: a started event and a result per PC, about 20% of them published twice
// (another stream sequence, a later publish time), some failures, 3 legacy results, 5
// results without exec_id and 4 poison messages.
func fleetRecords(t *testing.T) []codec.Record {
	t.Helper()
	b := fleet.Broadcast{
		ExecID: testExec, RequestID: testRequest, ManifestID: testManifest, Version: testVersion,
		PCs: fleetPCs, Start: t0, Seed: orderSeed,
		FailureRate: 0.2, DuplicateRate: 0.2, Poison: 2,
	}
	seq := map[string]uint64{}
	var (
		recs                   []codec.Record
		duplicates, poison     int
		failedRuns             = map[string]bool{}
		seen                   = map[string]bool{}
		legacySeen, noExecSeen int
	)
	for _, m := range b.Messages() {
		payload := m.Payload
		if !m.Poison {
			payload = reshape(t, m.Kind, payload)
		}
		r := rawRecord(m.Kind, 0, m.Subject, payload, t0.Add(m.At))
		seq[r.Stream]++
		r.Seq = seq[r.Stream]
		if (r.Poison != nil) != m.Poison {
			t.Fatalf("fleet message %s %q: poison %v, decoded as %v", m.Subject, payload, m.Poison, r.Poison)
		}
		switch {
		case m.Poison:
			poison++
		case m.Kind == codec.KindResult:
			key := "result " + r.Result.ResultID
			if seen[key] {
				duplicates++
				break
			}
			seen[key] = true
			if r.Result.ExitCode != 0 {
				failedRuns[r.Result.ResultID] = true
			}
			if r.Result.ResultID == codec.LegacyResultID(testRequest, r.Result.PCID) {
				legacySeen++
			}
			if r.Result.ExecID == "" {
				noExecSeen++
			}
		default:
			key := "started " + r.Started.ResultID
			if seen[key] {
				duplicates++
			}
			seen[key] = true
		}
		recs = append(recs, r)
	}
	// The fleet is seeded: these only guard the test against a generator that stops
	// producing what the property needs.
	if poison != 4 || legacySeen != len(legacyPCs) || noExecSeen != len(noExecPCs) ||
		len(failedRuns) == 0 || duplicates < fleetPCs*2/10 {
		t.Fatalf("fleet has %d poison, %d legacy results, %d results without exec_id, %d failures, %d duplicates",
			poison, legacySeen, noExecSeen, len(failedRuns), duplicates)
	}
	return recs
}

// reshape turns the payload of a legacy PC into what a legacy agent sends (a result without
// result_id, and a started event carrying the derived id), and drops exec_id from the results
// of noExecPCs.
func reshape(t *testing.T, kind codec.Kind, payload []byte) []byte {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("fleet payload %q: %v", payload, err)
	}
	pc, _ := m["pc_id"].(string)
	if legacyPCs[pc] {
		if kind == codec.KindStarted {
			m["result_id"] = codec.LegacyResultID(testRequest, pc)
		} else {
			delete(m, "result_id")
		}
	}
	if noExecPCs[pc] && kind == codec.KindResult {
		delete(m, "exec_id")
	}
	return mustJSON(t, m)
}

// randomBatches shuffles recs and cuts them into batches of random sizes: each run draws a
// largest size in 1..len(recs), then each batch a size in 1..largest, so runs range from one
// record per batch to a single batch.
func randomBatches(rng *rand.Rand, recs []codec.Record) [][]codec.Record {
	shuffled := slices.Clone(recs)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	largest := 1 + rng.IntN(len(shuffled))
	var batches [][]codec.Record
	for rest := shuffled; len(rest) > 0; {
		n := min(1+rng.IntN(largest), len(rest))
		batches = append(batches, rest[:n])
		rest = rest[n:]
	}
	return batches
}

// withRedeliveries writes about a third of the batches twice: the ingester crashed between
// the commit and the acks, so JetStream delivers the same messages (same stream sequences,
// same publish times) again, right away or after later batches.
func withRedeliveries(rng *rand.Rand, batches [][]codec.Record) [][]codec.Record {
	again := make([][][]codec.Record, len(batches))
	for i, b := range batches {
		if rng.IntN(3) == 0 {
			k := i + rng.IntN(len(batches)-i)
			again[k] = append(again[k], b)
		}
	}
	var out [][]codec.Record
	for i, b := range batches {
		out = append(out, b)
		out = append(out, again[i]...)
	}
	return out
}

// writeBatches writes batches, one Write each, into a fresh database holding the broadcast's
// executions row, and returns its sink.
func writeBatches(t *testing.T, batches [][]codec.Record) *Sink {
	t.Helper()
	cfg := testConfig(t)
	// Sync normal: every run is a throwaway database, and an fsync at each of its many commits
	// would dominate the runtime; what this test checks does not depend on durability.
	cfg.Sync = SyncNormal
	s := openTestSink(t, cfg)
	insertExecution(t, s, testExec, fleetPCs, "pending")
	for _, b := range batches {
		rep, err := s.Write(context.Background(), b)
		why := modeltest.Reasons(rep, len(b))
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		for i, r := range b {
			if (why[i] != "") != (r.Poison != nil) {
				t.Fatalf("record %s/%d: rejected %q, poison %v", r.Stream, r.Seq, why[i], r.Poison)
			}
		}
	}
	return s
}

// applyBatches is writeBatches returning the dump of the final tables.
func applyBatches(t *testing.T, batches [][]codec.Record) string {
	t.Helper()
	s := writeBatches(t, batches)
	d := dumpTables(t, s.db)
	if err := s.Close(); err != nil { // early: the test opens dozens of databases
		t.Fatal(err)
	}
	return d
}

// dumpTables renders every column of every row of the three projected tables, in primary key
// order, as text: NULL, integers, quoted text and hex blobs are all told apart.
func dumpTables(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []struct{ table, key string }{
		{"execution_results", "result_id"},
		{"executions", "exec_id"},
		{"dead_letters", "stream, stream_seq"},
	} {
		rows, err := db.Query(`SELECT * FROM ` + q.table + ` ORDER BY ` + q.key)
		if err != nil {
			t.Fatalf("dump %s: %v", q.table, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "== %s (%s)\n", q.table, strings.Join(cols, ", "))
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("dump %s: %v", q.table, err)
			}
			for i, v := range vals {
				if i > 0 {
					b.WriteString(" | ")
				}
				b.WriteString(sqlText(v))
			}
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("dump %s: %v", q.table, err)
		}
		rows.Close()
	}
	return b.String()
}

func sqlText(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return "real " + strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return strconv.Quote(v)
	case []byte:
		return "x'" + hex.EncodeToString(v) + "'"
	case time.Time:
		return "time " + v.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%T %v", v, v)
}

// firstDiff describes the first line where two dumps differ.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want %s\n  got  %s", i+1, wl, gl)
		}
	}
	return "no difference"
}

func TestFinalTablesDoNotDependOnOrderBatchesOrRedelivery(t *testing.T) {
	recs := fleetRecords(t)

	// The reference: the messages one at a time in publish order, as the original projected them.
	serial := make([][]codec.Record, len(recs))
	for i := range recs {
		serial[i] = recs[i : i+1]
	}
	ref := writeBatches(t, serial)
	want := dumpTables(t, ref.db)
	checkFleetTables(t, ref, recs)

	reversed := slices.Clone(recs)
	slices.Reverse(reversed)
	runs := []struct {
		name    string
		batches [][]codec.Record
	}{
		{"one batch in publish order", [][]codec.Record{recs}},
		{"one batch in reverse order", [][]codec.Record{reversed}},
		{"every batch twice", withRedeliveries(rand.New(rand.NewPCG(orderSeed, 0)), serialTwice(serial))},
	}
	const permutations = 60
	for i := range permutations {
		rng := rand.New(rand.NewPCG(orderSeed, uint64(i)+1))
		batches := randomBatches(rng, recs)
		name := fmt.Sprintf("permutation %d (seed %d,%d) in %d batches", i, orderSeed, i+1, len(batches))
		if i%3 == 0 {
			batches = withRedeliveries(rng, batches)
			name += ", some delivered twice"
		}
		runs = append(runs, struct {
			name    string
			batches [][]codec.Record
		}{name, batches})
	}

	for _, run := range runs {
		if got := applyBatches(t, run.batches); got != want {
			t.Fatalf("%s: tables differ from the serial run's at %s", run.name, firstDiff(want, got))
		}
	}
}

// serialTwice is every batch written twice in a row: each commit's acks were lost.
func serialTwice(batches [][]codec.Record) [][]codec.Record {
	var out [][]codec.Record
	for _, b := range batches {
		out = append(out, b, b)
	}
	return out
}

// checkFleetTables checks the reference run against what the broadcast must produce, so the
// property cannot hold by every run being wrong the same way.
func checkFleetTables(t *testing.T, s *Sink, recs []codec.Record) {
	t.Helper()
	failed := map[string]bool{}
	for _, r := range recs {
		if r.Poison == nil && r.Kind == codec.KindResult && r.Result.ExitCode != 0 {
			failed[r.Result.ResultID] = true
		}
	}
	var rows, finished, withVersion, withExec, legacy int
	if err := s.db.QueryRow(`SELECT count(*), count(finished_at), count(version), count(exec_id),
		count(*) FILTER (WHERE result_id IN (?, ?, ?)) FROM execution_results WHERE reaped = 0`,
		codec.LegacyResultID(testRequest, "PC-00003"), codec.LegacyResultID(testRequest, "PC-00011"),
		codec.LegacyResultID(testRequest, "PC-00017")).Scan(&rows, &finished, &withVersion, &withExec, &legacy); err != nil {
		t.Fatal(err)
	}
	if rows != fleetPCs || finished != fleetPCs || withVersion != fleetPCs || withExec != fleetPCs || legacy != 3 {
		t.Fatalf("reference: %d rows, %d finished, %d with version, %d with exec_id, %d legacy; want %d, %d, %d, %d, 3",
			rows, finished, withVersion, withExec, legacy, fleetPCs, fleetPCs, fleetPCs, fleetPCs)
	}
	want := execRow{Success: fleetPCs - len(failed), Failure: len(failed), Status: "completed"}
	if got := readExecution(t, s, testExec); got != want {
		t.Fatalf("reference: execution = %+v, want %+v", got, want)
	}
	if n := countRows(t, s, "dead_letters"); n != 4 {
		t.Fatalf("reference: %d dead letters, want 4", n)
	}
}

func TestConcurrentIngestersProduceTheSameTables(t *testing.T) {
	recs := fleetRecords(t)
	serial := make([][]codec.Record, len(recs))
	for i := range recs {
		serial[i] = recs[i : i+1]
	}
	want := applyBatches(t, serial)

	const ingesters = 3
	for round := range 10 {
		rng := rand.New(rand.NewPCG(orderSeed, 1000+uint64(round)))
		// Each batch goes to one ingester; a redelivered batch may go to another one.
		batches := withRedeliveries(rng, randomBatches(rng, recs))
		share := make([][][]codec.Record, ingesters)
		for _, b := range batches {
			k := rng.IntN(ingesters)
			share[k] = append(share[k], b)
		}

		cfg := testConfig(t)
		cfg.Sync = SyncNormal // throwaway databases, as in the test above
		sinks := make([]*Sink, ingesters)
		for k := range sinks {
			sinks[k] = openTestSink(t, cfg)
		}
		insertExecution(t, sinks[0], testExec, fleetPCs, "pending")

		errs := make(chan error, ingesters)
		for k, s := range sinks {
			go func() {
				for _, b := range share[k] {
					if _, err := s.Write(context.Background(), b); err != nil {
						errs <- fmt.Errorf("ingester %d: %w", k, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range ingesters {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if got := dumpTables(t, sinks[0].db); got != want {
			t.Fatalf("round %d: tables differ from the serial run's at %s", round, firstDiff(want, got))
		}
		for _, s := range sinks {
			s.Close()
		}
	}
}
