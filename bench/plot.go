package main

import (
	"fmt"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plot writes throughput.png (msg/s against N for drain, sink and fanin) and, when the live
// mode ran, latency.png (the distribution of publish → committed) to dir.
func (r *report) plot(dir string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Throughput vs batch size (P=%d, sync=%s, T=%s)", r.Options.PCs, r.Options.Sync, r.Options.Wait)
	p.X.Label.Text = "batch size N"
	p.Y.Label.Text = "messages/s"
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, n := range r.batchSizes() {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: fmt.Sprint(n)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Add(plotter.NewGrid())
	var lines []any
	for _, mode := range []string{modeDrain, modeSink, modeFanin} {
		var pts plotter.XYs
		for _, rw := range r.Rows {
			if rw.Mode == mode && rw.Prefill == 0 && (mode != modeFanin || rw.WaitMS == r.waitMS()) {
				pts = append(pts, plotter.XY{X: float64(rw.N), Y: rw.Rate})
			}
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int { return int(a.X - b.X) })
		if len(pts) > 0 {
			lines = append(lines, mode, pts)
		}
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return fmt.Errorf("plot throughput: %w", err)
	}
	p.Y.Min = 0
	p.Legend.Left = true
	if err := p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, "throughput.png")); err != nil {
		return fmt.Errorf("plot throughput: %w", err)
	}

	if len(r.lat) == 0 {
		return nil
	}
	lp := plot.New()
	p50, p99, p999 := quantile(r.lat, 0.5), quantile(r.lat, 0.99), quantile(r.lat, 0.999)
	lp.Title.Text = fmt.Sprintf("Publish → committed at %.0f msg/s (N=%d, T=%s): p50 %.1f, p99 %.1f, p999 %.1f ms",
		r.Options.LiveRate, r.Options.Batch, r.Options.Wait, p50, p99, p999)
	lp.X.Label.Text = "latency (ms)"
	lp.Y.Label.Text = "messages"
	h, err := plotter.NewHist(plotter.Values(r.lat), 60)
	if err != nil {
		return fmt.Errorf("plot latency: %w", err)
	}
	lp.Add(h)
	if err := lp.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, "latency.png")); err != nil {
		return fmt.Errorf("plot latency: %w", err)
	}
	return nil
}

// batchSizes returns the distinct N of the drain, sink and fanin rows, in order.
func (r *report) batchSizes() []int {
	var ns []int
	for _, rw := range r.Rows {
		if rw.Mode == modeDrain || rw.Mode == modeSink || rw.Mode == modeFanin {
			ns = append(ns, rw.N)
		}
	}
	slices.Sort(ns)
	return slices.Compact(ns)
}
