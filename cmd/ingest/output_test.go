package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/batch"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
	"fanin/internal/output"
)

// resultWithObject is a result whose stdout is in the object store under "<id>/stdout".
func resultWithObject(id, inline string) []byte {
	return fmt.Appendf(nil, `{"result_id":%q,"request_id":"q","pc_id":"pc-%s","exit_code":1,"stdout":%q,"stderr":"","started_at":"2026-05-20T12:00:00Z","finished_at":"2026-05-20T12:00:01Z","stdout_object":"%s/stdout"}`,
		id, id, inline, id)
}

// bigText returns n bytes of log lines naming id.
func bigText(id string, n int) string {
	line := fmt.Sprintf("%s: a line of output from a long, failing run\n", id)
	return strings.Repeat(line, n/len(line)+1)[:n]
}

func createBucket(t *testing.T, js jetstream.JetStream) jetstream.ObjectStore {
	t.Helper()
	store, err := js.CreateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: output.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func publishTo(t *testing.T, js jetstream.JetStream, payloads ...[]byte) {
	t.Helper()
	for _, p := range payloads {
		if _, err := js.Publish(context.Background(), "results.q", p); err != nil {
			t.Fatal(err)
		}
	}
}

// column returns one text column of one execution_results row.
func column(t *testing.T, path, col, resultID string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(`SELECT `+col+` FROM execution_results WHERE result_id = ?`, resultID).Scan(&v); err != nil {
		t.Fatalf("%s of %s: %v", col, resultID, err)
	}
	return v
}

func TestLargeOutputIsReadFromTheObjectStore(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	ctx := context.Background()
	store := createBucket(t, js)
	big := bigText("big", 1<<20-5) + "\xff\xfe end" // 1 MiB, with bytes that are not UTF-8
	if _, err := store.PutString(ctx, "big/stdout", big); err != nil {
		t.Fatal(err)
	}
	r := startApp(t, cfg)
	publishTo(t, js, resultWithObject("big", "cut at 256 KiB"), resultWithObject("gone", "inline"))
	fleettest.WaitDrained(t, js, 30*time.Second)

	if got, want := column(t, cfg.DB.Path, "stdout", "big"), bigText("big", 1<<20-5)+"\uFFFD\uFFFD end"; got != want {
		t.Fatalf("stdout from the object store: %d bytes, want %d", len(got), len(want))
	}
	gone := column(t, cfg.DB.Path, "stdout || '|' || stderr", "gone")
	if want := `inline|[fanin] stdout_object "gone/stdout" not found in object store "result_output"; kept the inline stdout`; gone != want {
		t.Fatalf("missing object: got %q, want %q", gone, want)
	}
	fams := scrape(t, "http://"+r.server.Addr()+"/metrics")
	for outcome, want := range map[string]float64{"fetched": 1, "missing": 1} {
		if got, _ := series(fams, "fanin_output_objects_total", map[string]string{"fanin_output_outcome": outcome}); got != want {
			t.Errorf("fanin_output_objects_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	for name, want := range map[string]float64{"fanin_output_bytes_total": float64(len(big)), "fanin_output_read_duration_seconds": 2, "fanin_output_held_bytes": 0} {
		if got, found := series(fams, name, nil); !found || got != want {
			t.Errorf("%s = %v (found: %v), want %v", name, got, found, want)
		}
	}

	// Redelivered after its object is gone, the result changes nothing: the text stays.
	if err := store.Delete(ctx, "big/stdout"); err != nil {
		t.Fatal(err)
	}
	publishTo(t, js, resultWithObject("big", "cut at 256 KiB"))
	fleettest.WaitDrained(t, js, 30*time.Second)
	r.stop()
	if got := column(t, cfg.DB.Path, "stdout || stderr", "big"); got != bigText("big", 1<<20-5)+"\uFFFD\uFFFD end" {
		t.Fatalf("a redelivery after the object was deleted changed the stored text: now %d bytes, ending %q",
			len(got), got[max(0, len(got)-120):])
	}
}

func TestFiftyLargeOutputsAmongAThousandLandInOneTransaction(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	cfg.Results.BatchSize = 1000
	// The 1000 are all in the stream before the loop starts: a fetch returns as soon as it has
	// them, but a loaded machine may take longer than the usual 50 ms to deliver them all.
	cfg.Results.MaxWait, cfg.Results.AckWait = 2*time.Second, 10*time.Second
	ctx := context.Background()
	natstest.CreateStream(t, js, cfg.Results.Stream, "results.>")
	store := createBucket(t, js)
	var payloads [][]byte
	for i := range 1000 {
		id := fmt.Sprintf("r-%04d", i)
		if i%20 == 0 {
			if _, err := store.PutString(ctx, id+"/stdout", bigText(id, 1<<20)); err != nil {
				t.Fatal(err)
			}
			payloads = append(payloads, resultWithObject(id, "inline"))
			continue
		}
		payloads = append(payloads, fmt.Appendf(nil, `{"result_id":%q,"request_id":"q","pc_id":"pc-%d","exit_code":0,"stdout":"ok","stderr":"","started_at":"2026-05-20T12:00:00Z","finished_at":"2026-05-20T12:00:01Z"}`, id, i))
	}
	for _, p := range payloads {
		if _, err := js.PublishAsync("results.q", p); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()

	// Each read waits until --output-concurrency of them are under way at once (or 10 s).
	var inFlight, most atomic.Int64
	var mu sync.Mutex
	all := make(chan struct{})
	gate := func() {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		mu.Lock()
		most.Store(max(most.Load(), n))
		if n == int64(cfg.Output.Concurrency) && most.Load() == n {
			select {
			case <-all:
			default:
				close(all)
			}
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
	}
	r := startGated(t, cfg, gate)
	fleettest.WaitDrained(t, js, time.Minute)
	if got := most.Load(); got != int64(cfg.Output.Concurrency) {
		t.Errorf("at most %d objects were read at once, want --output-concurrency (%d)", got, cfg.Output.Concurrency)
	}
	results := r.loops[1]
	if got, _ := series(gather(t, r), "fanin_batch_size", map[string]string{"projection": "result"}); got != 1 {
		t.Fatalf("the 1000 results took %v transactions, want 1", got)
	}
	if got := results.Stats.Acked.Load(); got != 1000 {
		t.Fatalf("acked %d, want 1000", got)
	}
	r.stop()
	db, err := sql.Open("sqlite3", "file:"+cfg.DB.Path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var large, small int
	if err := db.QueryRow(`SELECT count(*) FILTER (WHERE length(stdout) = 1048576), count(*) FILTER (WHERE stdout = 'ok')
		FROM execution_results`).Scan(&large, &small); err != nil {
		t.Fatal(err)
	}
	if large != 50 || small != 950 {
		t.Fatalf("%d rows with their 1 MiB output and %d small ones, want 50 and 950", large, small)
	}
	for i := 0; i < 1000; i += 20 {
		id := fmt.Sprintf("r-%04d", i)
		if column(t, cfg.DB.Path, "stdout", id) != bigText(id, 1<<20) {
			t.Fatalf("%s: stdout is not its object's content", id)
		}
	}
}

// startGated starts the app like startApp, its results projection reading objects through a
// store whose Get calls gate first.
func startGated(t *testing.T, cfg *config, gate func()) *running {
	t.Helper()
	return startPrepared(t, cfg, func(a *app) {
		js := natstest.GateObjectGets(a.js, func(context.Context, string) error { gate(); return nil })
		res, err := output.New(js, cfg.Output, nil, quiet)
		if err != nil {
			t.Fatal(err)
		}
		a.loops[1] = batch.New(cfg.Results, a.js, a.db, batch.WithLogger(quiet), batch.WithCompleter(res),
			batch.WithMeterProvider(a.tel.MeterProvider))
		a.health.output.Store(res)
	})
}

func TestObjectStoreLostMidBatchNaksThenLands(t *testing.T) {
	srv := natstest.Run(t)
	port := srv.Addr().(*net.TCPAddr).Port
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	ctx := context.Background()
	natstest.CreateStream(t, js, cfg.Results.Stream, "results.>")
	store := createBucket(t, js)
	const n = 20
	for i := range n {
		id := fmt.Sprintf("r-%02d", i)
		if _, err := store.PutString(ctx, id+"/stdout", bigText(id, 512<<10)); err != nil {
			t.Fatal(err)
		}
		publishTo(t, js, resultWithObject(id, "inline"))
	}

	// The first object read waits until the server is down: the batch is mid-way, its
	// objects looked up, its reads failing.
	midBatch, serverDown := make(chan struct{}), make(chan struct{})
	var once sync.Once
	gate := func() {
		once.Do(func() {
			close(midBatch)
			<-serverDown
		})
	}
	r := startGated(t, cfg, gate)
	results := r.loops[1]

	select {
	case <-midBatch:
	case <-time.After(30 * time.Second):
		t.Fatal("no object was read")
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	close(serverDown)
	natstest.Eventually(t, 30*time.Second, "the batch's results naked", func() bool { return results.Stats.Naked.Load() > 0 })
	readyz := "http://" + r.server.Addr() + "/readyz"
	if code, body := probe(t, readyz); code != 503 || !strings.Contains(body, "output: last object read failed") {
		t.Errorf("/readyz while the object store is lost: %d %q, want 503 naming the output", code, body)
	}
	if got := results.Stats.Acked.Load(); got != 0 {
		t.Fatalf("%d results acked while their output could not be read", got)
	}

	srv = natstest.RunAt(t, srv.Dir, port)
	_, js = natstest.Connect(t, srv.ClientURL())
	fleettest.WaitDrained(t, js, time.Minute)
	natstest.Eventually(t, 10*time.Second, "/readyz 200 again", func() bool {
		code, _ := probe(t, readyz)
		return code == 200
	})
	for i := range n {
		id := fmt.Sprintf("r-%02d", i)
		if got := column(t, cfg.DB.Path, "stdout || stderr", id); got != bigText(id, 512<<10) {
			t.Fatalf("%s: stdout is %d bytes (%q…), want its object's %d", id, len(got), got[:min(len(got), 60)], 512<<10)
		}
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
