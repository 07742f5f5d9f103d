package pgsink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"fanin/internal/codec"
)

// BenchmarkWriteStarted writes transactions of 8,000 started events, all new rows: the
// started projection's batch while it is behind.
func BenchmarkWriteStarted(b *testing.B) {
	url := srv.NewDB(b)
	cfg := DefaultConfig()
	cfg.URL = url
	s, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	const n = 8000
	recs := make([]codec.Record, n)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for j := range recs {
			id := fmt.Sprintf("%08x-%04x-4000-8000-%012x", i, j, i*n+j)
			recs[j] = record(codec.KindStarted, uint64(i*n+j+1), startedPayload(id, "exec-1", "PC-"+id[:13]), t0.Add(time.Second))
		}
		b.StartTimer()
		if _, err := s.Write(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
}
