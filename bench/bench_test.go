package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fanin/internal/sink"
)

// TestMain serves JetStream instead of testing when the harness starts this binary as its
// server's child process.
func TestMain(m *testing.M) {
	if dir := os.Getenv(serverEnv); dir != "" {
		if err := serveNATS(dir); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTinyPlanRunsEveryModeAndVerifiesIt runs the whole plan — every mode, the prefilled
// table, a batch sweep and the live mode — at a tiny size, so CI proves the harness works.
func TestTinyPlanRunsEveryModeAndVerifiesIt(t *testing.T) {
	opts := defaultOptions()
	opts.PCs, opts.PerMsgLimit, opts.Sync = 2000, 500, sink.SyncNormal
	opts.Wait = 20 * time.Millisecond
	opts.SweepBatch = []int{500}
	opts.Prefill = 1000
	opts.LiveRate, opts.LiveDuration = 400, time.Second
	opts.Plot, opts.Out, opts.TempDir = true, t.TempDir(), t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	rep, err := run(ctx, opts, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}

	want := []string{"drain/1000", "sink/1000", "per-message/1", "fanin/1000", "fanin/1000+", "drain/500",
		"sink/500", "fanin/500", "live/1000"}
	var got []string
	for _, r := range rep.Rows {
		key := r.Mode + "/" + strconv.Itoa(r.N)
		if r.Prefill > 0 {
			key += "+"
		}
		got = append(got, key)
		if r.Msgs == 0 || r.Rate <= 0 || r.HeapPeakMiB <= 0 || r.CPUPct <= 0 {
			t.Errorf("%s: empty measurement %+v", key, r)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rows = %v, want %v", got, want)
	}
	if live := rep.Rows[len(rep.Rows)-1]; live.P99MS <= 0 || live.P50MS > live.P99MS || live.P99MS > live.P999MS {
		t.Errorf("live latencies p50 %v p99 %v p999 %v", live.P50MS, live.P99MS, live.P999MS)
	}
	if len(rep.Bars) != 5 {
		t.Errorf("%d bars judged, want 5: %+v", len(rep.Bars), rep.Bars)
	}
	for _, s := range []string{"×drain", "per-message*", "fanin +1000 rows", "fanin ≥ 0.5 × drain", "live p99"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
		}
	}

	b, err := os.ReadFile(filepath.Join(opts.Out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(back.Rows) != len(rep.Rows) || back.Machine.Cores == 0 {
		t.Errorf("results.json holds %d rows and %d cores", len(back.Rows), back.Machine.Cores)
	}
	for _, f := range []string{"throughput.png", "latency.png"} {
		if fi, err := os.Stat(filepath.Join(opts.Out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
