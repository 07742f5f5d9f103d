package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

	want := []string{"drain/1000", "sink/1000", "native/1000", "per-message/1", "fanin/1000", "native/1000+",
		"fanin/1000+", "drain/500", "sink/500", "native/500", "fanin/500", "live/1000"}
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
	if len(rep.Bars) != 6 {
		t.Errorf("%d bars judged, want 6: %+v", len(rep.Bars), rep.Bars)
	}
	for _, r := range rep.Rows {
		if (r.Mode == modeFanin || r.Mode == modeNative) && r.XNative <= 0 {
			t.Errorf("%s +%d rows: no ×native", r.Mode, r.Prefill)
		}
	}
	for _, s := range []string{"×drain", "×native", "per-message*", "fanin +1000 rows", "native +1000 rows",
		"fanin ≥ 0.5 × drain", "fanin ≥ 0.8 × native", "full table ≥ 0.8 × native", "live p99"} {
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

// TestTinyLargeOutputPlanStoresEveryObject runs fanin and fanin-output (added by -large-output
// alone) at a tiny size: fanin-output must store every object's text whole and report its
// ratio to fanin, without a verdict.
func TestTinyLargeOutputPlanStoresEveryObject(t *testing.T) {
	opts := defaultOptions()
	opts.PCs, opts.Sync, opts.Wait = 2000, sink.SyncNormal, 20*time.Millisecond
	opts.Modes = []string{modeFanin}
	opts.LargeOutput, opts.LargeSize = 0.05, 64<<10
	opts.Out, opts.TempDir = t.TempDir(), t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	rep, err := run(ctx, opts, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}

	if len(rep.Rows) != 2 || rep.Rows[0].Mode != modeFanin || rep.Rows[1].Mode != modeFaninOutput {
		t.Fatalf("rows = %+v, want fanin then fanin-output", rep.Rows)
	}
	for _, r := range rep.Rows {
		if r.Msgs != 4000 || r.Rate <= 0 {
			t.Errorf("%s: %d messages at %.0f msg/s, want 4000 (started + results)", r.Mode, r.Msgs, r.Rate)
		}
	}
	if rep.Rows[0].OutputMBps != 0 || rep.Rows[1].OutputMBps <= 0 {
		t.Errorf("output MB/s: fanin %v, fanin-output %v", rep.Rows[0].OutputMBps, rep.Rows[1].OutputMBps)
	}
	var info *bar
	for i := range rep.Bars {
		if rep.Bars[i].Verdict == "INFO" {
			info = &rep.Bars[i]
		}
	}
	if want := rep.Rows[1].Rate / rep.Rows[0].Rate; info == nil || info.Measured != want {
		t.Errorf("INFO bar = %+v, want the ratio %v", info, want)
	}
	for _, s := range []string{"INFO  large output (5%) ÷ fanin with results", "100 of 2000 results name a 64 KiB stdout", "out MB/s"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
		}
	}
}

func TestLargeOutputsAreEvenlySpreadAndExact(t *testing.T) {
	var large []int
	for i := 1; i <= 100; i++ {
		if hasLargeOutput(i, 0.05) {
			large = append(large, i)
		}
	}
	if want := []int{20, 40, 60, 80, 100}; !slices.Equal(large, want) {
		t.Errorf("PCs with a large output among 100 at 0.05: %v, want %v", large, want)
	}
	for _, f := range []float64{0.05, 0.3, 0.07, 1} {
		n := 0
		for i := 1; i <= 1000; i++ {
			if hasLargeOutput(i, f) {
				n++
			}
		}
		if n != largeCount(1000, f) {
			t.Errorf("fraction %g: %d PCs of 1000, largeCount says %d", f, n, largeCount(1000, f))
		}
	}
	for _, size := range []int{1 << 10, 1000, 1 << 20} {
		out := appendOutput([]byte("x"), []byte("PC-0000020"), size)
		if len(out) != size+1 || !utf8.Valid(out) || !bytes.Contains(out, []byte("PC-0000020 inventory-hw[")) {
			t.Errorf("appendOutput(%d): %d bytes, valid UTF-8 %v", size, len(out)-1, utf8.Valid(out))
		}
	}
}

func TestLargeOutputOptionsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*options)
	}{
		{"fraction above 1", func(o *options) { o.LargeOutput = 1.5 }},
		{"fraction of no PC", func(o *options) { o.PCs, o.LargeOutput = 10, 0.05 }},
		{"size above the resolver's cap", func(o *options) { o.LargeOutput, o.LargeSize = 0.05, 32<<20 }},
		{"mode without the fraction", func(o *options) { o.Modes = []string{modeFaninOutput} }},
	} {
		o := defaultOptions()
		tc.change(&o)
		if err := o.validate(); err == nil {
			t.Errorf("%s: validated", tc.name)
		}
	}
}

// TestTinyMixedPlanComparesWithNativeResults runs native and fanin on started events and their
// results: native must finish every row, as fanin does, and the mixed bar is judged.
func TestTinyMixedPlanComparesWithNativeResults(t *testing.T) {
	opts := defaultOptions()
	opts.PCs, opts.Sync, opts.Wait = 2000, sink.SyncNormal, 20*time.Millisecond
	opts.Modes = []string{modeNative, modeFanin}
	opts.Results = true
	opts.Out, opts.TempDir = t.TempDir(), t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	rep, err := run(ctx, opts, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if len(rep.Rows) != 2 || rep.Rows[0].Mode != modeNative || rep.Rows[0].Msgs != 4000 {
		t.Fatalf("rows = %+v, want native (4000 messages) then fanin", rep.Rows)
	}
	if !strings.Contains(stdout.String(), "mixed: fanin ≥ 0.7 × native") {
		t.Errorf("stdout lacks the mixed bar:\n%s", stdout.String())
	}
}

// TestPGWritersTakeTurnsRunningFirst: with -pg-writers 1,2, each fanin-postgres of -modes
// runs once per value, and the values take turns in first place.
func TestPGWritersTakeTurnsRunningFirst(t *testing.T) {
	opts := defaultOptions()
	opts.Modes = []string{modePostgresNative, modeFaninPostgres, modePostgresNative, modeFaninPostgres}
	opts.PGWriters = []int{1, 2}
	var got []string
	for _, s := range opts.plan() {
		got = append(got, s.mode+"/"+strconv.Itoa(s.writers))
	}
	want := []string{"postgres-native/0", "fanin-postgres/1", "fanin-postgres/2", "postgres-native/0", "fanin-postgres/2", "fanin-postgres/1"}
	if !slices.Equal(got, want) {
		t.Fatalf("plan %q, want %q", got, want)
	}
}
