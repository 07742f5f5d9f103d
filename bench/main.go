// Command bench is fanin's benchmark harness. In one run on one machine it measures the
// JetStream ceiling (drain), the SQLite ceiling (sink), the original per-message projector and
// fanin itself on the same preloaded broadcast, and prints ratios between them: absolute numbers
// on shared machines drift by ±40%, ratios from one run hold. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"fanin/internal/batch"
	"fanin/internal/output"
	"fanin/internal/sink"
)

// options is one run's plan.
type options struct {
	PCs          int             `json:"pcs"`          // P: started events preloaded (one per PC)
	Batch        int             `json:"batch"`        // N of the standard modes
	Wait         time.Duration   `json:"wait_ns"`      // T of fanin (and drain's fetch wait)
	Modes        []string        `json:"modes"`        // the standard modes, in order
	SweepBatch   []int           `json:"sweep_batch"`  // N values at which drain, sink and fanin run again
	SweepWait    []time.Duration `json:"sweep_wait"`   // T values at which fanin (or live) runs again
	Sync         string          `json:"sync"`         // sink.SyncFull or sink.SyncNormal
	PerMsgLimit  int             `json:"permsg_limit"` // messages the per-message mode handles
	LiveRate     float64         `json:"live_rate"`    // >0: run the live mode at this many msg/s
	LiveDuration time.Duration   `json:"live_duration_ns"`
	Prefill      int             `json:"prefill"`                // >0: run fanin again on a table holding this many rows
	Results      bool            `json:"results"`                // preload results too, and project both streams
	Tracing      bool            `json:"tracing"`                // also run fanin with tracing on (always sample)
	Litestream   string          `json:"litestream,omitempty"`   // a litestream binary: also run fanin with it replicating the database
	LargeOutput  float64         `json:"large_output,omitempty"` // >0: this fraction of the results name their stdout in the Object Store (fanin-output; implies Results)
	LargeSize    int             `json:"large_size,omitempty"`   // bytes of each such stdout
	Plot         bool            `json:"plot"`
	Out          string          `json:"out"`
	Progress     bool            `json:"progress"`
	InProcess    bool            `json:"in_process"`            // run the NATS server in this process
	CPUProfile   string          `json:"cpuprofile,omitempty"`  // CPU profile of the standard fanin run
	HeapProfile  string          `json:"heapprofile,omitempty"` // heap profile of the standard fanin run, at its peak
	TempDir      string          `json:"temp_dir,omitempty"`    // where the server and databases live ("" = os.TempDir())
	Postgres     string          `json:"-"`                     // -pg: a server for the PostgreSQL modes (a user that may create databases)
	PGWriters    []int           `json:"pg_writers,omitempty"`  // -pg-writers: fanin-postgres's batch.Config.Writers, one run each (0: the store's choice, as ingest run)
}

func defaultOptions() options {
	return options{
		PCs: 200000, Batch: 1000, Wait: 100 * time.Millisecond,
		Modes: []string{modeDrain, modeSink, modeNative, modePerMessage, modeFanin},
		Sync:  sink.SyncFull, PerMsgLimit: 20000, LiveDuration: 20 * time.Second,
		Out: "bench/out", LargeSize: 1 << 20,
	}
}

func (o options) validate() error {
	switch {
	case o.PCs < 1:
		return errors.New("-pcs must be at least 1")
	case o.Batch < 1 || o.Batch > 10000:
		return fmt.Errorf("-batch must be between 1 and 10000, not %d", o.Batch)
	case o.Wait < time.Millisecond:
		return errors.New("-wait must be at least 1ms")
	case o.Sync != sink.SyncFull && o.Sync != sink.SyncNormal:
		return fmt.Errorf("-sync must be %q or %q, not %q", sink.SyncFull, sink.SyncNormal, o.Sync)
	case o.PerMsgLimit < 1:
		return errors.New("-permsg-limit must be at least 1")
	case o.LiveRate < 0 || o.LiveRate > 0 && o.LiveDuration < time.Second:
		return errors.New("-live-rate must not be negative, and -live-duration at least 1s")
	case o.Prefill < 0:
		return errors.New("-prefill must not be negative")
	case o.LargeOutput < 0 || o.LargeOutput > 1:
		return fmt.Errorf("-large-output must be a fraction between 0 and 1, not %g", o.LargeOutput)
	case o.LargeOutput > 0 && largeCount(o.PCs, o.LargeOutput) == 0:
		return fmt.Errorf("-large-output %g of %d PCs is no PC at all", o.LargeOutput, o.PCs)
	// Above the resolver's cap the stored text would be cut and marked, and the check that
	// every large row holds exactly -large-size bytes would not hold.
	case o.LargeOutput > 0 && (o.LargeSize < 1<<10 || int64(o.LargeSize) > output.DefaultConfig().MaxObjectBytes):
		return fmt.Errorf("-large-size must be between 1 KiB and %d bytes, not %d", output.DefaultConfig().MaxObjectBytes, o.LargeSize)
	}
	for _, m := range o.Modes {
		if !slices.Contains([]string{modeDrain, modeSink, modeNative, modePerMessage, modeFanin, modeFaninOutput}, m) && !isPostgresMode(m) {
			return fmt.Errorf("-modes: unknown mode %q (drain, sink, native, per-message, fanin, fanin-output, postgres-native, postgres-sink, fanin-postgres)", m)
		}
		if isPostgresMode(m) && o.Postgres == "" {
			return fmt.Errorf("-modes %s needs -pg (or $FANIN_BENCH_POSTGRES): a PostgreSQL server", m)
		}
		if m == modeFaninOutput && o.LargeOutput == 0 {
			return errors.New("-modes fanin-output needs -large-output, e.g. 0.05")
		}
	}
	for _, w := range o.PGWriters {
		if w < 0 || w > batch.MaxWriters {
			return fmt.Errorf("-pg-writers: %d is not between 0 and %d", w, batch.MaxWriters)
		}
	}
	for _, n := range o.SweepBatch {
		if n < 1 || n > 10000 {
			return fmt.Errorf("-sweep-batch: %d is not between 1 and 10000", n)
		}
	}
	return nil
}

// step is one mode run of the plan.
type step struct {
	mode    string
	n       int
	wait    time.Duration
	prefill int
	profile string
	writers int // fanin-postgres: batch.Config.Writers (0: the store's choice)
	// heapProfile is where the heap profile taken at the mode's heap peak goes ("": none).
	heapProfile string
}

// plan lists the steps of a run: the standard modes at N (and fanin-output, with
// -large-output, when they do not name it), native and fanin on a prefilled table, the batch
// sweep (drain, sink, native, fanin at each other N), the wait sweep, and the live mode.
func (o options) plan() []step {
	var steps []step
	modes := o.Modes
	if o.LargeOutput > 0 && !slices.Contains(modes, modeFaninOutput) {
		modes = append(slices.Clip(modes), modeFaninOutput)
	}
	for _, m := range modes {
		s := step{mode: m, n: o.Batch, wait: o.Wait}
		switch {
		case m == modeFanin:
			s.profile, s.heapProfile = o.CPUProfile, o.HeapProfile
		case m == modeFaninOutput && o.CPUProfile != "":
			s.profile = o.CPUProfile + ".output"
		case m == modeFaninPostgres && len(o.PGWriters) > 0:
			// One run per writers value, the values taking turns in first place from one
			// occurrence of the mode to the next, so neither always runs first.
			k := 0
			for _, p := range steps {
				if p.mode == modeFaninPostgres && p.writers == o.PGWriters[0] {
					k++
				}
			}
			for i := range o.PGWriters {
				s.writers = o.PGWriters[(i+k)%len(o.PGWriters)]
				steps = append(steps, s)
			}
			continue
		}
		steps = append(steps, s)
	}
	if o.Prefill > 0 {
		if slices.Contains(o.Modes, modeNative) {
			steps = append(steps, step{mode: modeNative, n: o.Batch, prefill: o.Prefill})
		}
		steps = append(steps, step{mode: modeFanin, n: o.Batch, wait: o.Wait, prefill: o.Prefill})
	}
	for _, n := range o.SweepBatch {
		for _, m := range []string{modeDrain, modeSink, modeNative, modeFanin} {
			if n == o.Batch && slices.Contains(o.Modes, m) {
				continue // measured above
			}
			steps = append(steps, step{mode: m, n: n, wait: o.Wait})
		}
	}
	for _, w := range o.SweepWait {
		if w == o.Wait {
			continue
		}
		m := modeFanin
		if o.LiveRate > 0 {
			m = modeLive
		}
		steps = append(steps, step{mode: m, n: o.Batch, wait: w})
	}
	if o.LiveRate > 0 {
		steps = append(steps, step{mode: modeLive, n: o.Batch, wait: o.Wait})
	}
	if o.Tracing {
		steps = append(steps, step{mode: modeFaninTraced, n: o.Batch, wait: o.Wait})
	}
	if o.Litestream != "" {
		steps = append(steps, step{mode: modeFaninLitestream, n: o.Batch, wait: o.Wait})
	}
	return steps
}

// run executes the plan and writes the table (stdout), the JSON file and, with -plot, the PNGs.
// Progress goes to stderr. An error means a mode failed or gave a wrong answer.
func run(ctx context.Context, opts options, stdout, stderr io.Writer) (*report, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	// fanin-output is compared with fanin projecting both streams, so both need the results.
	opts.Results = opts.Results || opts.LargeOutput > 0
	dir, err := os.MkdirTemp(opts.TempDir, "fanin-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	rep := &report{Machine: describeMachine(dir), Options: opts, Started: time.Now()}
	printHeader(stdout, rep)

	prog := newProgress(stderr, opts.Progress)
	e, err := startEnv(ctx, opts, dir, stderr, prog)
	if err != nil {
		return rep, err
	}
	defer e.close()
	if err := e.preload(ctx); err != nil {
		return rep, fmt.Errorf("preload: %w", err)
	}

	for _, s := range opts.plan() {
		var (
			res result
			err error
		)
		switch s.mode {
		case modeDrain:
			res, err = drain(ctx, e, s.n)
		case modeSink:
			res, err = sinkOnly(ctx, e, s.n)
		case modeNative:
			res, err = native(ctx, e, s.n, s.prefill)
		case modePerMessage:
			res, err = perMessage(ctx, e, opts.PerMsgLimit)
		case modeFanin, modeFaninTraced, modeFaninOutput, modeFaninLitestream:
			res, err = fanin(ctx, e, s.mode, s.n, s.wait, s.prefill, s.profile, s.heapProfile)
		case modeLive:
			res, err = live(ctx, e, s.n, s.wait, opts.LiveRate, opts.LiveDuration)
		case modePostgresNative:
			res, err = postgresNative(ctx, e)
		case modePostgresSink:
			res, err = postgresSink(ctx, e, s.n)
		case modeFaninPostgres:
			res, err = faninPostgres(ctx, e, s.n, s.wait, s.writers)
		}
		if err != nil {
			prog.finish()
			if len(rep.Rows) > 0 { // what was measured before the failure
				rep.finish()
				rep.printTable(stdout)
			}
			return rep, fmt.Errorf("%s N=%d: %w", s.mode, s.n, err)
		}
		rep.add(res)
	}
	rep.finish()
	rep.printTable(stdout)
	if opts.Out != "" {
		if err := rep.writeJSON(opts.Out); err != nil {
			return rep, err
		}
		if opts.Plot {
			if err := rep.plot(opts.Out); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

func main() {
	if dir := os.Getenv(serverEnv); dir != "" {
		if err := serveNATS(dir); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	opts := defaultOptions()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&opts.PCs, "pcs", opts.PCs, "P: PCs of the broadcast, one started event each, preloaded into the stream")
	fs.IntVar(&opts.Batch, "batch", opts.Batch, "N: batch size of the standard modes")
	fs.DurationVar(&opts.Wait, "wait", opts.Wait, "T: fanin's fetch wait (drain's too)")
	modes := fs.String("modes", strings.Join(opts.Modes, ","), "standard modes to run, in order")
	sweepBatch := fs.String("sweep-batch", "", `N values to run drain, sink and fanin at too, e.g. "100,500,1000,2000,5000,10000"`)
	sweepWait := fs.String("sweep-wait", "", `T values to run fanin (live, with -live-rate) at too, e.g. "20ms,50ms,250ms"`)
	fs.StringVar(&opts.Sync, "sync", opts.Sync, "SQLite synchronous mode of every database: full or normal")
	fs.IntVar(&opts.PerMsgLimit, "permsg-limit", opts.PerMsgLimit, "messages the per-message mode handles (a prefix of the backlog)")
	fs.Float64Var(&opts.LiveRate, "live-rate", 0, ">0: live mode, publishing this many msg/s through fanin, for latency")
	fs.DurationVar(&opts.LiveDuration, "live-duration", opts.LiveDuration, "how long the live mode publishes")
	fs.IntVar(&opts.Prefill, "prefill", 0, ">0: run fanin again on a table already holding this many rows")
	fs.BoolVar(&opts.Results, "results", false, "preload each PC's result too, and project both streams")
	fs.BoolVar(&opts.Tracing, "tracing", false, "also run fanin with tracing on (always sample, one link per message, spans to a no-op exporter) and report the ratio")
	fs.StringVar(&opts.Litestream, "litestream", "", "`path` of a litestream binary (bin/litestream, built by make tools): also run fanin with litestream replicate replicating its database to a file replica, and report the ratio and the longest pause between acks")
	fs.Float64Var(&opts.LargeOutput, "large-output", 0, ">0: this fraction of the results (e.g. 0.05) name a -large-size stdout in the Object Store; runs fanin-output (implies -results) and reports its ratio to fanin")
	fs.IntVar(&opts.LargeSize, "large-size", opts.LargeSize, "bytes of each large output (-large-output)")
	fs.BoolVar(&opts.Plot, "plot", false, "write PNG plots to -out")
	fs.StringVar(&opts.Out, "out", opts.Out, "directory of results.json and the plots")
	fs.BoolVar(&opts.Progress, "progress", false, "draw the progress bar even when stderr is not a terminal")
	fs.BoolVar(&opts.InProcess, "inprocess", false, "run the NATS server in this process (its CPU, heap and writes then count as the ingester's)")
	fs.StringVar(&opts.CPUProfile, "cpuprofile", "", "write a CPU profile of the standard fanin run to this file (and of fanin-output to FILE.output)")
	fs.StringVar(&opts.HeapProfile, "heapprofile", "", "write a heap profile of the standard fanin run, taken at its heap peak, to this file (go tool pprof -sample_index=inuse_space)")
	fs.StringVar(&opts.Postgres, "pg", os.Getenv("FANIN_BENCH_POSTGRES"), "PostgreSQL connection string for the postgres-native, postgres-sink and fanin-postgres modes\n(a user that may create databases; each mode gets its own, dropped after)")
	pgWriters := fs.String("pg-writers", "", `transactions fanin-postgres keeps in flight (batch.Config.Writers, ingest's --db-writers), e.g. "1,2":
fanin-postgres then runs once per value, the values in turn first; unset or 0: the store's choice, as ingest run makes it`)
	fs.StringVar(&opts.TempDir, "tmp", "", "directory for the server's store and the databases (default: the system temp dir)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if opts.HeapProfile != "" {
		// Finer than the default 512 KiB, so that the objects of a message in flight show.
		runtime.MemProfileRate = 64 << 10
	}
	var err error
	opts.Modes = splitList(*modes)
	if opts.SweepBatch, err = parseInts(*sweepBatch); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -sweep-batch:", err)
		os.Exit(2)
	}
	if opts.PGWriters, err = parseInts(*pgWriters); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -pg-writers:", err)
		os.Exit(2)
	}
	if opts.SweepWait, err = parseDurations(*sweepWait); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -sweep-wait:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, opts, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range splitList(s) {
		d, err := time.ParseDuration(f)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
