package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"fanin/internal/codec"
	"fanin/internal/natstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// setup starts JetStream with a result_output bucket holding objects.
func setup(t *testing.T, objects map[string]string) (jetstream.JetStream, jetstream.ObjectStore) {
	t.Helper()
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	store, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: Bucket})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range objects {
		if _, err := store.PutBytes(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return js, store
}

// result returns a decoded result record naming the given objects.
func result(id, stdout, stderr, stdoutObject, stderrObject string) codec.Record {
	return codec.Record{Kind: codec.KindResult, Result: &codec.Result{ResultID: id,
		Stdout: stdout, Stderr: stderr, StdoutObject: stdoutObject, StderrObject: stderrObject}}
}

func TestCompleteStoresTheObjectsText(t *testing.T) {
	mib := strings.Repeat("0123456789abcde\n", 1<<16) // 1 MiB
	js, _ := setup(t, map[string]string{
		"q/1/stdout": mib,
		"q/2/stderr": "panic: boom\n",
		"q/3/stdout": "out", "q/3/stderr": "err",
		"q/4/stdout": "bad \xff\xfe bytes \xe2\x82",
		"q/5/stdout": "",
		"q/6/stdout": strings.Repeat("é", 600), // 1200 bytes, cut inside a character at 1001
	})
	cfg := DefaultConfig()
	cfg.MaxObjectBytes = 1001
	small, err := New(js, cfg, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	full, err := New(js, DefaultConfig(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	truncated := strings.Repeat("é", 500) + "\n[fanin] stdout truncated: kept the first 1000 of 1200 bytes of object \"q/6/stdout\" in \"result_output\""
	for _, tc := range []struct {
		name           string
		r              *Resolver
		rec            codec.Record
		stdout, stderr string
		size           int64 // what Sizes reports, without the marker room
	}{
		{"1 MiB stdout lands whole", full, result("1", "cut", "", "q/1/stdout", ""), mib, "", 1 << 20},
		{"stderr object", full, result("2", "inline", "cut", "", "q/2/stderr"), "inline", "panic: boom\n", 12},
		{"both objects", full, result("3", "", "", "q/3/stdout", "q/3/stderr"), "out", "err", 6},
		{"invalid UTF-8 is replaced, not rejected", full, result("4", "", "", "q/4/stdout", ""), "bad \uFFFD\uFFFD bytes \uFFFD", "", 16},
		{"empty object", full, result("5", "inline", "", "q/5/stdout", ""), "", "", 0},
		{"missing object keeps the inline text with a note", full, result("6", "inline", "warn", "q/gone/stdout", ""),
			"inline", "warn\n[fanin] stdout_object \"q/gone/stdout\" not found in object store \"result_output\"; kept the inline stdout", -1},
		{"a note goes after the stderr object's text", full, result("7", "", "", "q/gone/stdout", "q/2/stderr"),
			"", "panic: boom\n[fanin] stdout_object \"q/gone/stdout\" not found in object store \"result_output\"; kept the inline stdout", 12},
		{"cut at the cap, on a character boundary, with a marker", small, result("8", "", "", "q/6/stdout", ""), truncated, "", 1001},
		{"a result naming nothing is left alone", full, result("9", "a", "b", "", ""), "a", "b", -2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			recs := []codec.Record{tc.rec}
			sizes, errs := tc.r.Sizes(ctx, recs)
			if errs != nil {
				t.Fatalf("Sizes: %v", errs)
			}
			switch {
			case tc.size == -2 && sizes != nil:
				t.Fatalf("Sizes = %v, want nil for a batch naming no object", sizes)
			case tc.size == -1 && sizes[0] != 0:
				t.Fatalf("Sizes = %v, want 0 for a missing object", sizes)
			case tc.size >= 0 && (sizes[0] < tc.size || sizes[0] > tc.size+2*markerRoom):
				t.Fatalf("Sizes = %v, want %d plus room for markers", sizes, tc.size)
			}
			if errs := tc.r.Complete(ctx, recs); errs != nil {
				t.Fatalf("Complete: %v", errs)
			}
			if got := recs[0].Result; got.Stdout != tc.stdout || got.Stderr != tc.stderr {
				t.Fatalf("got stdout %q, stderr %q\nwant stdout %q, stderr %q",
					abbrev(got.Stdout), abbrev(got.Stderr), abbrev(tc.stdout), abbrev(tc.stderr))
			}
		})
	}
}

func TestCompleteWithoutTheBucketKeepsTheInlineText(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	r, err := New(js, DefaultConfig(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if found, err := r.Probe(context.Background()); found || err != nil {
		t.Fatalf("Probe without the bucket = %v, %v; want false, nil", found, err)
	}
	recs := []codec.Record{result("1", "inline", "", "q/1/stdout", "")}
	if _, errs := r.Sizes(context.Background(), recs); errs != nil {
		t.Fatalf("Sizes: %v", errs)
	}
	if errs := r.Complete(context.Background(), recs); errs != nil {
		t.Fatalf("a missing bucket is not an error: %v", errs)
	}
	if got := recs[0].Result.Stderr; !strings.Contains(got, `"q/1/stdout" not found`) || recs[0].Result.Stdout != "inline" {
		t.Fatalf("got %+v", recs[0].Result)
	}

	// Created later, the bucket is found: a missing bucket is not remembered.
	store, err := js.CreateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutString(context.Background(), "q/1/stdout", "late"); err != nil {
		t.Fatal(err)
	}
	if found, err := r.Probe(context.Background()); !found || err != nil {
		t.Fatalf("Probe with the bucket = %v, %v; want true, nil", found, err)
	}
	recs = []codec.Record{result("1", "inline", "", "q/1/stdout", "")}
	if errs := r.Complete(context.Background(), recs); errs != nil || recs[0].Result.Stdout != "late" {
		t.Fatalf("after the bucket was created: %v, %+v", errs, recs[0].Result)
	}
}

func TestCompleteReadsConcurrentlyWithinTheLimit(t *testing.T) {
	const objects, concurrency = 50, 8
	objs := map[string]string{}
	for i := range objects {
		objs[fmt.Sprintf("q/%d/stdout", i)] = strings.Repeat(fmt.Sprintf("object %d\n", i), 30000)
	}
	js, _ := setup(t, objs)

	// Each Get waits until `concurrency` are in flight at once (or 10 s): a resolver reading one
	// by one would take 50 × 10 s and fail the test's deadline; one exceeding the limit is seen.
	var inFlight, most atomic.Int64
	var mu sync.Mutex
	full := make(chan struct{})
	gate := func(ctx context.Context, name string) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		mu.Lock()
		if n > most.Load() {
			most.Store(n)
		}
		if n == concurrency {
			select {
			case <-full:
			default:
				close(full)
			}
		}
		mu.Unlock()
		select {
		case <-full:
		case <-time.After(10 * time.Second):
		}
		return nil
	}
	cfg := DefaultConfig()
	cfg.Concurrency = concurrency
	r, err := New(natstest.GateObjectGets(js, gate), cfg, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var recs []codec.Record
	for i := range 1000 {
		if i%20 == 0 {
			k := fmt.Sprintf("q/%d/stdout", i/20)
			recs = append(recs, result(k, "inline", "", k, ""))
		} else {
			recs = append(recs, result(fmt.Sprint(i), "small", "", "", ""))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if errs := r.Complete(ctx, recs); errs != nil {
		t.Fatalf("Complete: %v", firstErr(errs))
	}
	if got := most.Load(); got != concurrency {
		t.Fatalf("at most %d objects were read at once, want exactly %d", got, concurrency)
	}
	for i, rec := range recs {
		want := "small"
		if i%20 == 0 {
			want = objs[rec.Result.StdoutObject]
		}
		if rec.Result.Stdout != want {
			t.Fatalf("record %d: stdout %q, want %q", i, abbrev(rec.Result.Stdout), abbrev(want))
		}
	}
}

func TestTransientFailuresLeaveTheirRecordsUnchanged(t *testing.T) {
	js, _ := setup(t, map[string]string{"q/1/stdout": "one", "q/2/stdout": "two", "q/2/stderr": "two err"})
	gate := func(ctx context.Context, name string) error {
		if name == "q/2/stderr" {
			return fmt.Errorf("get: %w", nats.ErrNoResponders)
		}
		return nil
	}
	r, err := New(natstest.GateObjectGets(js, gate), DefaultConfig(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	recs := []codec.Record{result("1", "", "", "q/1/stdout", ""), result("2", "in", "in err", "q/2/stdout", "q/2/stderr")}
	errs := r.Complete(context.Background(), recs)
	if len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], nats.ErrNoResponders) {
		t.Fatalf("errs = %v, want only record 1 failing with no responders", errs)
	}
	if recs[0].Result.Stdout != "one" {
		t.Fatalf("record 0 not completed: %+v", recs[0].Result)
	}
	if got := recs[1].Result; got.Stdout != "in" || got.Stderr != "in err" {
		t.Fatalf("a record with a failure must be left unchanged, got %+v", got)
	}

	// Health follows the latest read: failing until one reaches the store again.
	r.Complete(context.Background(), []codec.Record{result("2", "", "", "", "q/2/stderr")})
	if err := r.Healthy(); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("Healthy after a failed read = %v, want no responders", err)
	}
	r.Complete(context.Background(), []codec.Record{result("3", "", "", "q/missing", "")})
	if err := r.Healthy(); err != nil {
		t.Fatalf("Healthy after a read the store answered (not found) = %v", err)
	}
}

func TestMetricsCountEachOutcome(t *testing.T) {
	js, _ := setup(t, map[string]string{"q/1/stdout": "0123456789", "q/2/stdout": "x"})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := DefaultConfig()
	cfg.MaxObjectBytes = 4
	r, err := New(js, cfg, mp, quiet)
	if err != nil {
		t.Fatal(err)
	}
	recs := []codec.Record{result("1", "", "", "q/1/stdout", "q/gone/stderr"), result("2", "", "", "q/2/stdout", "")}
	if errs := r.Complete(context.Background(), recs); errs != nil {
		t.Fatal(errs)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				outcome, _ := dp.Attributes.Value(OutcomeKey)
				field, _ := dp.Attributes.Value(FieldKey)
				got[m.Name+"/"+outcome.AsString()+"/"+field.AsString()] += dp.Value
			}
		}
	}
	want := map[string]int64{
		"fanin.output.objects/truncated/stdout": 1,
		"fanin.output.objects/fetched/stdout":   1,
		"fanin.output.objects/missing/stderr":   1,
		"fanin.output.bytes//stdout":            5, // 4 kept of the first, 1 of the second
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func abbrev(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s…(%d bytes)", s[:80], len(s))
	}
	return s
}

func TestAnObjectNamedTwiceInABatchIsReadOnce(t *testing.T) {
	js, _ := setup(t, map[string]string{"q/1/stdout": "once"})
	var gets atomic.Int64
	r, err := New(natstest.GateObjectGets(js, func(context.Context, string) error { gets.Add(1); return nil }), DefaultConfig(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	recs := []codec.Record{result("1", "", "", "q/1/stdout", ""), result("1", "", "", "q/1/stdout", ""),
		result("2", "", "", "q/gone", ""), result("2", "", "", "q/gone", "")}
	if errs := r.Complete(context.Background(), recs); errs != nil {
		t.Fatal(errs)
	}
	if n := gets.Load(); n != 2 {
		t.Fatalf("%d reads for two distinct objects", n)
	}
	for i, rec := range recs {
		if want := []string{"once", "once", "", ""}[i]; rec.Result.Stdout != want {
			t.Errorf("record %d: stdout %q, want %q", i, rec.Result.Stdout, want)
		}
		if i >= 2 && strings.Count(rec.Result.Stderr, "not found") != 1 {
			t.Errorf("record %d: stderr %q, want one note", i, rec.Result.Stderr)
		}
	}
}

func TestALinkIsFollowedAndReservedAtTheCap(t *testing.T) {
	js, store := setup(t, map[string]string{"q/real": "linked text"})
	ctx := context.Background()
	info, err := store.GetInfo(ctx, "q/real")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddLink(ctx, "q/link", info); err != nil {
		t.Fatal(err)
	}
	r, err := New(js, DefaultConfig(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	recs := []codec.Record{result("1", "", "", "q/link", "")}
	sizes, errs := r.Sizes(ctx, recs)
	if errs != nil || sizes[0] < DefaultConfig().MaxObjectBytes {
		t.Fatalf("Sizes of a link = %v, %v; want the cap reserved", sizes, errs)
	}
	if errs := r.Complete(ctx, recs); errs != nil || recs[0].Result.Stdout != "linked text" {
		t.Fatalf("Complete through a link: %v, %+v", errs, recs[0].Result)
	}
}

func TestNotFoundIsConfirmedWithTheStreamLeader(t *testing.T) {
	js, store := setup(t, map[string]string{"q/1/stdout": "uploaded", "q/2/stdout": "soon deleted"})
	ctx := context.Background()
	if err := store.Delete(ctx, "q/2/stdout"); err != nil {
		t.Fatal(err)
	}
	// A replica that has not applied the upload yet answers the lookup "not found", once.
	var stale atomic.Bool
	stale.Store(true)
	gate := func(ctx context.Context, name string) error {
		if name == "q/1/stdout" && stale.CompareAndSwap(true, false) {
			return jetstream.ErrObjectNotFound
		}
		return nil
	}
	r, err := New(natstest.GateObjectGets(js, gate), DefaultConfig(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	recs := []codec.Record{result("1", "inline", "", "q/1/stdout", ""), result("2", "inline", "", "q/2/stdout", ""),
		result("3", "inline", "", "q/never/stdout", "")}
	errs := r.Complete(ctx, recs)
	if len(errs) != 3 || !errors.Is(errs[0], errReplicaBehind) || errs[1] != nil || errs[2] != nil {
		t.Fatalf("errs = %v; want the stale lookup retried, the deleted and the never-uploaded objects noted", errs)
	}
	if got := recs[0].Result; got.Stdout != "inline" || got.Stderr != "" {
		t.Fatalf("a stale not-found stored %+v: the output would be lost", got)
	}
	for _, i := range []int{1, 2} {
		if !strings.Contains(recs[i].Result.Stderr, "not found") {
			t.Errorf("record %d: stderr %q, want the note", i, recs[i].Result.Stderr)
		}
	}
	// Retried once the replica has caught up, it lands.
	if errs := r.Complete(ctx, recs[:1]); errs != nil || recs[0].Result.Stdout != "uploaded" {
		t.Fatalf("retry: %v, %+v", errs, recs[0].Result)
	}
}

func TestAPIPrefixFollowsTheDomain(t *testing.T) {
	srv := natstest.Run(t)
	nc, _ := natstest.Connect(t, srv.ClientURL())
	plain, err1 := jetstream.New(nc)
	domain, err2 := jetstream.NewWithDomain(nc, "hub")
	prefixed, err3 := jetstream.NewWithAPIPrefix(nc, "$JS.acc.API")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		js   jetstream.JetStream
		want string
	}{{plain, "$JS.API."}, {domain, "$JS.hub.API."}, {prefixed, "$JS.acc.API."}} {
		r, err := New(tc.js, DefaultConfig(), nil, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.apiPrefix(); got != tc.want {
			t.Errorf("apiPrefix = %q, want %q", got, tc.want)
		}
	}
}
