package pgsink

// The property of docs/contract.md §7 for many writers: a generated broadcast — any order,
// duplicates, redeliveries, poison, results before their started events and without exec_id —
// delivered to three writers at once, each cutting its share into batches of any size, leaves
// exactly the tables that one writer leaves in SQLite given all of it. The SQLite store is
// itself checked against a model of the contract (internal/sink/model_test.go), so this
// carries that model over to PostgreSQL under its own concurrency.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"fanin/internal/codec"
	"fanin/internal/store"
)

type pub struct {
	kind      codec.Kind
	seq       uint64
	payload   []byte
	published time.Time
	header    map[string][]string
}

func (p *pub) record() codec.Record {
	r := record(p.kind, p.seq, p.payload, p.published)
	r.Header = store.EncodeHeader(p.header)
	return r
}

var poisonPayloads = []string{``, `not json`, `{"result_id":"p"}`, "\xff\xfe{", `{"exit_code":1.5}`}

// drawBroadcast draws a small fleet's messages and their deliveries (every message at least
// once, some again, in any order), and the executions row's state.
func drawBroadcast(t *rapid.T) (deliveries []*pub, target int, status string) {
	seqs := map[codec.Kind]uint64{}
	var pubs []*pub
	publish := func(kind codec.Kind, payload []byte) *pub {
		seqs[kind]++
		p := &pub{kind: kind, seq: seqs[kind], payload: payload,
			published: t0.Add(time.Duration(rapid.IntRange(0, 8000).Draw(t, "ms")) * time.Millisecond)}
		pubs = append(pubs, p)
		return p
	}
	copies := func(p *pub) {
		for range rapid.IntRange(0, 2).Draw(t, "copies") {
			c := *p
			seqs[p.kind]++
			c.seq = seqs[p.kind]
			if !rapid.Bool().Draw(t, "copy_same_time") {
				c.published = t0.Add(time.Duration(rapid.IntRange(0, 8000).Draw(t, "copy_ms")) * time.Millisecond)
			}
			pubs = append(pubs, &c)
		}
	}
	n := rapid.IntRange(1, 12).Draw(t, "pcs")
	for i := range n {
		pc, id := fmt.Sprintf("PC-%d", i), fmt.Sprintf("r-%02d", i)
		exec := "exec-m"
		if rapid.IntRange(0, 7).Draw(t, "other_exec") == 0 {
			exec = "exec-x" // no executions row: counting is a no-op
		}
		if rapid.IntRange(0, 5).Draw(t, "has_started") > 0 {
			copies(publish(codec.KindStarted, startedPayload(id, exec, pc)))
		}
		if rapid.IntRange(0, 5).Draw(t, "has_result") > 0 {
			resExec := exec
			if rapid.IntRange(0, 3).Draw(t, "result_without_exec") == 0 {
				resExec = ""
			}
			exit := rapid.SampledFrom([]int{0, 0, 1, -1}).Draw(t, "exit")
			stdout := rapid.SampledFrom([]string{"", "hostname=" + pc, "é\n\"q\"\t"}).Draw(t, "stdout")
			copies(publish(codec.KindResult, resultPayload(id, resExec, pc, exit, stdout)))
		}
	}
	for range rapid.IntRange(0, 3).Draw(t, "poison") {
		kind := rapid.SampledFrom([]codec.Kind{codec.KindStarted, codec.KindResult}).Draw(t, "poison_kind")
		p := publish(kind, []byte(rapid.SampledFrom(poisonPayloads).Draw(t, "poison_payload")))
		if rapid.Bool().Draw(t, "poison_header") {
			p.header = map[string][]string{"Nats-Msg-Id": {"m"}, "X-B": {"\xff", "2"}}
		}
	}
	deliveries = append(deliveries, pubs...)
	for range rapid.IntRange(0, len(pubs)).Draw(t, "redeliveries") {
		deliveries = append(deliveries, pubs[rapid.IntRange(0, len(pubs)-1).Draw(t, "redelivered")])
	}
	deliveries = rapid.Permutation(deliveries).Draw(t, "order")
	return deliveries, rapid.IntRange(1, n+2).Draw(t, "target"),
		rapid.SampledFrom([]string{"pending", "pending", "running", "expired"}).Draw(t, "status")
}

// batches cuts ds into batches of drawn sizes.
func batches(t *rapid.T, ds []*pub, label string) [][]codec.Record {
	var out [][]codec.Record
	for len(ds) > 0 {
		n := rapid.IntRange(1, len(ds)).Draw(t, label)
		b := make([]codec.Record, n)
		for i, p := range ds[:n] {
			b[i] = p.record()
		}
		out = append(out, b)
		ds = ds[n:]
	}
	return out
}

func resetTables(t *rapid.T, exec func(string, ...any) error, target int, status string) {
	for _, q := range []string{`DELETE FROM execution_results`, `DELETE FROM executions`, `DELETE FROM dead_letters`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := exec(`INSERT INTO executions (exec_id, job_id, version, initiated_by, initiated_at, target_count, status)
		VALUES ('exec-m', 'inventory-hw', '1.0.0', 'test', '2026-05-20T12:00:00.000000Z', $1, $2)`, target, status); err != nil {
		t.Fatalf("insert execution: %v", err)
	}
}

func TestThreeConcurrentWritersGiveTheTablesOfOneWriter(t *testing.T) {
	pg, _ := newStore(t)
	ref, refPath := newSQLite(t)
	refDB := openSQLiteRW(t, refPath)
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		ds, target, status := drawBroadcast(rt)
		resetTables(rt, func(q string, args ...any) error { _, err := pg.pool.Exec(ctx, q, args...); return err }, target, status)
		resetTables(rt, func(q string, args ...any) error { _, err := refDB.Exec(q, args...); return err }, target, status)

		for _, b := range batches(rt, ds, "ref_batch") {
			if _, err := ref.Write(ctx, b); err != nil {
				rt.Fatalf("SQLite Write: %v", err)
			}
		}
		shares := make([][]*pub, 3)
		for _, p := range ds {
			w := rapid.IntRange(0, 2).Draw(rt, "writer")
			shares[w] = append(shares[w], p)
		}
		work := make([][][]codec.Record, 3)
		for w := range shares {
			work[w] = batches(rt, shares[w], fmt.Sprintf("writer%d_batch", w))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for w := range work {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, b := range work[w] {
					if err := writeRetrying(ctx, pg, b); err != nil {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			rt.Fatalf("PostgreSQL Write: %v", err)
		}
		if d := diffLines(dumpPG(t, pg), dumpSQLite(t, refPath)); d != "" {
			rt.Fatalf("PostgreSQL (3 writers) differs from SQLite (1 writer):\n%s", d)
		}
	})
}

// TestConcurrentBatchesOnTheSameRunsCountEachOnce races many writers over the same runs, every
// one of them delivering the whole broadcast: each run is counted exactly once.
func TestConcurrentBatchesOnTheSameRunsCountEachOnce(t *testing.T) {
	s, _ := newStore(t)
	const pcs = 200
	addExecution(t, s, "exec-1", pcs)
	var recs []codec.Record
	for i := range pcs {
		id := fmt.Sprintf("r-%03d", i)
		recs = append(recs,
			record(codec.KindStarted, uint64(i+1), startedPayload(id, "exec-1", "PC"), t0),
			record(codec.KindResult, uint64(i+1), resultPayload(id, "exec-1", "PC", i%2, "x"), t0))
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer its own order and batch size: ascending, descending, interleaved.
			mine := make([]codec.Record, len(recs))
			for i := range recs {
				mine[i] = recs[(i*(2*w+1))%len(recs)]
			}
			size := 7 + 13*w
			for i := 0; i < len(mine); i += size {
				if err := writeRetrying(context.Background(), s, mine[i:min(i+size, len(mine))]); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sum, err := s.Summary(context.Background(), "exec-1")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != pcs/2 || sum.Failed != pcs/2 || sum.Status != "completed" || sum.Results.Rows != pcs {
		t.Fatalf("summary %+v: want %d successes, %d failures, completed", sum, pcs/2, pcs/2)
	}
}

// TestAPoisonMessageRacedFromTwoIncarnationViewsIsRecordedOnce writes each poison message twice
// at once — once as a loop that knew the stream's incarnation records it, once as one that did
// not (an older replica) — from two writers: one dead letter each, never two.
func TestAPoisonMessageRacedFromTwoIncarnationViewsIsRecordedOnce(t *testing.T) {
	s, _ := newStore(t)
	created := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	const n = 100
	together := make([]sync.WaitGroup, n+1) // both writers start each sequence at once
	for i := range together {
		together[i].Add(2)
	}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= n; seq++ {
				together[seq].Done()
				together[seq].Wait()
				r := record(codec.KindResult, seq, []byte("not json"), t0.Add(time.Duration(seq)*time.Second))
				if (w+int(seq))%2 == 0 {
					r.StreamCreated = created
				}
				if err := writeRetrying(context.Background(), s, []codec.Record{r}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	dls, err := s.DeadLetters(context.Background(), store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	per := map[uint64]int{}
	for _, d := range dls {
		per[d.Seq]++
	}
	for seq := uint64(1); seq <= n; seq++ {
		if per[seq] != 1 {
			t.Errorf("sequence %d: %d dead letters, want 1", seq, per[seq])
		}
	}
}
