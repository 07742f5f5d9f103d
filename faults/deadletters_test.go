package faults

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/broker"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// deadLetterRow is one dead_letters row, as the test reads it.
type deadLetterRow struct {
	stream, created string
	seq             uint64
	payload         string
}

// deadLetters returns the dead_letters rows, read in a separate read-only connection.
func deadLetters(t *testing.T, path string) []deadLetterRow {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT stream, stream_created, stream_seq, payload FROM dead_letters ORDER BY payload`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []deadLetterRow
	for rows.Next() {
		var d deadLetterRow
		if err := rows.Scan(&d.stream, &d.created, &d.seq, &d.payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// publishPoison publishes one poison result per name on results.req-1.
func publishPoison(t *testing.T, js jetstream.JetStream, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := js.Publish(context.Background(), "results.req-1", []byte("not json: "+n)); err != nil {
			t.Fatalf("publish %s: %v", n, err)
		}
	}
}

// stop ends p with SIGTERM and fails the test unless it exits 0.
func stop(t *testing.T, p *proc) {
	t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// TestDeadLettersSurviveTheStreamsRecreation: RESULTS deleted and created again numbers its
// messages from 1 again. The new poison must be kept beside the old (same sequences, another
// incarnation), and a redelivery of it — the durable gone with its ack state — must still be
// recorded once.
func TestDeadLettersSurviveTheStreamsRecreation(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	db := filepath.Join(t.TempDir(), "fanin.db") // fanin creates and migrates it
	dir := t.TempDir()
	args := ingestArgs(srv.ClientURL(), db)
	ctx := context.Background()

	p := start(t, dir, args, nil)
	p.waitLog("projecting", 2, 30*time.Second)
	publishPoison(t, js, "old 1", "old 2", "old 3")
	fleettest.WaitDrained(t, js, 30*time.Second)
	stop(t, p)
	if n := len(deadLetters(t, db)); n != 3 {
		t.Fatalf("%d dead letters after the first poison, want 3", n)
	}

	if err := js.DeleteStream(ctx, "RESULTS"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, broker.ResultsStream("RESULTS")); err != nil {
		t.Fatal(err)
	}
	publishPoison(t, js, "new 1", "new 2", "new 3") // RESULTS/1..3 again

	p = start(t, dir, args, nil)
	p.waitLog("projecting", 2, 30*time.Second)
	fleettest.WaitDrained(t, js, 30*time.Second)
	stop(t, p)
	checkBothIncarnations(t, deadLetters(t, db))

	// A wiped ack state: the durable and fanin's safe point for it gone, so the durable is
	// created again from the start of the stream and delivers the three new poison again.
	s, err := js.Stream(ctx, "RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConsumer(ctx, "backend_results_projector"); err != nil {
		t.Fatal(err)
	}
	forgetSafePoints(t, db)
	p = start(t, dir, args, nil)
	p.waitLog("projecting", 2, 30*time.Second)
	fleettest.WaitDrained(t, js, 30*time.Second)
	info := consumerInfo(js, "RESULTS", "backend_results_projector")
	if info == nil || info.Delivered.Stream != 3 || info.AckFloor.Stream != 3 {
		t.Fatalf("the recreated durable = %+v, want the three messages delivered again and acked", info)
	}
	stop(t, p)
	checkBothIncarnations(t, deadLetters(t, db))
}

// checkBothIncarnations checks that dls are the three old and the three new poison messages,
// each once, RESULTS/1..3 of two incarnations.
func checkBothIncarnations(t *testing.T, dls []deadLetterRow) {
	t.Helper()
	var payloads []string
	created := map[string][]uint64{}
	for _, d := range dls {
		payloads = append(payloads, d.payload)
		created[d.created] = append(created[d.created], d.seq)
	}
	want := []string{"not json: new 1", "not json: new 2", "not json: new 3", "not json: old 1", "not json: old 2", "not json: old 3"}
	if !slices.Equal(payloads, want) {
		t.Fatalf("dead letters hold %q, want %q", payloads, want)
	}
	if len(created) != 2 || created[""] != nil {
		t.Fatalf("dead letters by stream_created = %v, want two known incarnations (is Record.StreamCreated set by the pull loop?)", created)
	}
	for c, seqs := range created {
		slices.Sort(seqs)
		if !slices.Equal(seqs, []uint64{1, 2, 3}) {
			t.Errorf("incarnation %s holds RESULTS/%v, want 1..3", c, seqs)
		}
	}
}

// forgetSafePoints deletes what fanin keeps of its durables' positions, if this schema keeps
// any, as a database restored from before the durables existed would.
func forgetSafePoints(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'durable_positions'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return
	}
	if _, err := db.Exec(`DELETE FROM durable_positions`); err != nil {
		t.Fatalf("forget safe points: %v", err)
	}
}
