package sink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"fanin/internal/codec"
)

// BenchmarkWriteStarted writes batches of 1,000 fresh started events (random UUID result_ids,
// so inserts land all over the primary key's B-tree) into a table that grows with b.N, with
// the default configuration (Sync full: one fsync per batch). Building and decoding the
// payloads is not timed.
func BenchmarkWriteStarted(b *testing.B) {
	for _, n := range []int{100, 1000, 8000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchmarkWriteStarted(b, n) })
	}
}

func benchmarkWriteStarted(b *testing.B, batch int) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "fanin.db")
	s, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]codec.Record, batch)
	var seq uint64
	b.ReportAllocs()
	rows := 0
	var cpu time.Duration
	var cgo int64 // calls into C: SQLite's API, one crossing each
	for b.Loop() {
		b.StopTimer()
		for i := range recs {
			seq++
			ev := started(randomUUID(rng), fmt.Sprintf("PC-%06d", seq%100_000))
			at := t0.Add(time.Duration(seq) * time.Millisecond)
			recs[i] = rawRecord(codec.KindStarted, seq, "events.started."+ev.ExecID+"."+ev.PCID, mustJSON(b, ev), at)
		}
		b.StartTimer()

		c0, g0 := cpuTime(), runtime.NumCgoCall()
		rep, err := s.Write(context.Background(), recs)
		cpu += cpuTime() - c0
		cgo += runtime.NumCgoCall() - g0
		if err != nil {
			b.Fatal(err)
		}
		if rep.Inserted != batch {
			b.Fatalf("inserted %d of %d", rep.Inserted, batch)
		}
		rows += batch
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(rows), "cpu-µs/row")
	b.ReportMetric(float64(cgo)/float64(rows), "cgo-calls/row")
}

// cpuTime is the CPU time (user and system) the process has used so far, all its threads:
// SQLite's, the garbage collector's and the kernel's work for it too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// randomUUID returns a random version 4 UUID in its text form.
func randomUUID(rng *rand.Rand) string {
	var u [16]byte
	for i := 0; i < 16; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			u[i+j] = byte(v >> (8 * j))
		}
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// BenchmarkWriteResults writes batches of 8,000 results, each finishing a row its started
// event created in an earlier, untimed batch: the lookup-first path (read the rows, merge,
// update), with the executions' counters bumped. Building, decoding and writing the started
// events are not timed.
func BenchmarkWriteResults(b *testing.B) {
	const batch = 8000
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "fanin.db")
	s, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	rng := rand.New(rand.NewPCG(3, 4))
	starts := make([]codec.Record, batch)
	results := make([]codec.Record, batch)
	var seq uint64
	rows := 0
	var cpu time.Duration
	var cgo int64 // calls into C: SQLite's API, one crossing each
	for b.Loop() {
		b.StopTimer()
		for i := range starts {
			seq++
			id, pc := randomUUID(rng), fmt.Sprintf("PC-%06d", seq)
			ev := started(id, pc)
			at := t0.Add(time.Duration(seq) * time.Millisecond)
			starts[i] = rawRecord(codec.KindStarted, seq, "events.started."+ev.ExecID+"."+pc, mustJSON(b, ev), at)
			x := result(id, pc, int(seq%3)/2)
			results[i] = rawRecord(codec.KindResult, seq, "results."+x.ExecID+"."+pc, mustJSON(b, x), at.Add(2*time.Second))
		}
		if _, err := s.Write(context.Background(), starts); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		c0, g0 := cpuTime(), runtime.NumCgoCall()
		rep, err := s.Write(context.Background(), results)
		cpu += cpuTime() - c0
		cgo += runtime.NumCgoCall() - g0
		if err != nil {
			b.Fatal(err)
		}
		if rep.Updated != batch {
			b.Fatalf("updated %d of %d", rep.Updated, batch)
		}
		rows += batch
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(rows), "cpu-µs/row")
	b.ReportMetric(float64(cgo)/float64(rows), "cgo-calls/row")
}
