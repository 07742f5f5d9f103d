package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"
)

// The bars of the issue, as ratios within one run.
const (
	barDrainRatio   = 0.5 // fanin ≥ 0.5 × drain
	barPerMsgRatio  = 20  // fanin ≥ 20 × per-message
	barHeapMiB      = 64  // Go heap in use at N=1000
	barNativeRatio  = 0.8 // fanin ≥ 0.8 × native (SQLite's own speed), empty table and full
	barMixedRatio   = 0.7 // with -results: fanin ≥ 0.7 × native's started-and-results run
	barTracingRatio = 0.9 // fanin traced (always sample) ≥ 0.9 × untraced: "the overhead must be small"
	barLatencySlack = 50 * time.Millisecond
)

// report is one run: the machine, the plan, a row per mode and a verdict per bar.
type report struct {
	Machine machine   `json:"machine"`
	Options options   `json:"options"`
	Started time.Time `json:"started"`
	Rows    []row     `json:"rows"`
	Bars    []bar     `json:"bars"`

	lat []float64 // the standard live run's latencies, ms, for the plot
}

// row is one mode's measurement.
type row struct {
	Mode         string  `json:"mode"`
	N            int     `json:"batch"`
	WaitMS       float64 `json:"wait_ms,omitempty"`
	Prefill      int     `json:"prefill,omitempty"`
	Msgs         int     `json:"msgs"`
	Seconds      float64 `json:"seconds"`
	Rate         float64 `json:"msgs_per_s"`
	XDrain       float64 `json:"x_drain,omitempty"`
	XPerMsg      float64 `json:"x_per_message,omitempty"`
	XNative      float64 `json:"x_native,omitempty"` // against native at the same N and prefill
	CPUPct       float64 `json:"cpu_pct"`            // this process (the ingester, and the server with -inprocess)
	ServerCPUPct float64 `json:"server_cpu_pct"`     // the NATS server's child process
	HeapBaseMiB  float64 `json:"heap_base_mib"`      // heap in use after a GC just before the mode
	HeapPeakMiB  float64 `json:"heap_peak_mib"`      // peak heap in use while it ran, whole process
	AllocsPerMsg float64 `json:"allocs_per_msg"`
	MsgsPerTx    float64 `json:"msgs_per_tx,omitempty"` // messages per transaction (sink, native, fanin)
	BytesPerRow  float64 `json:"db_bytes_per_row,omitempty"`
	BytesFromSz  bool    `json:"db_bytes_from_file_size,omitempty"`
	P50MS        float64 `json:"p50_ms,omitempty"`
	P99MS        float64 `json:"p99_ms,omitempty"`
	P999MS       float64 `json:"p999_ms,omitempty"`
	OutputMBps   float64 `json:"output_mb_per_s,omitempty"`    // fanin-output: MB (10⁶ bytes) of Object Store output stored per second
	PauseMS      float64 `json:"max_pause_ms,omitempty"`       // fanin: the longest time no message was acked, between the first ack and the last
	SideCPUPct   float64 `json:"litestream_cpu_pct,omitempty"` // fanin-litestream: litestream's CPU over the mode's wall time
	Writers      int     `json:"writers,omitempty"`            // fanin-postgres: transactions in flight (batch.Config.Writers)
	PGCPUPct     float64 `json:"pg_cpu_pct,omitempty"`         // PostgreSQL modes: the server's processes, when it runs on this machine
}

// bar is one of the targets and how the run fared against it, or (INFO) a ratio the
// run reports without a target.
type bar struct {
	Name     string  `json:"name"`
	Verdict  string  `json:"verdict"` // PASS, FAIL, SKIP or INFO
	Measured float64 `json:"measured"`
	Target   float64 `json:"target"`
	Detail   string  `json:"detail"`
}

// add records a mode's result.
func (r *report) add(res result) {
	secs := res.M.Wall.Seconds()
	rw := row{
		Mode: res.Mode, N: res.N, Prefill: res.Prefill, Msgs: res.Msgs, Seconds: secs,
		HeapBaseMiB: float64(res.M.HeapBase) / (1 << 20),
		HeapPeakMiB: float64(res.M.HeapPeak) / (1 << 20),
	}
	if res.Wait > 0 {
		rw.WaitMS = float64(res.Wait) / float64(time.Millisecond)
	}
	if secs > 0 {
		rw.Rate = float64(res.Msgs) / secs
		rw.CPUPct = 100 * res.M.CPU.Seconds() / secs
		rw.ServerCPUPct = 100 * res.M.ServerCPU.Seconds() / secs
		rw.SideCPUPct = 100 * res.SideCPU.Seconds() / secs
		rw.PGCPUPct = 100 * res.PGCPU.Seconds() / secs
	}
	if res.Output > 0 && secs > 0 {
		rw.OutputMBps = float64(res.Output) / 1e6 / secs
	}
	rw.PauseMS = float64(res.Pause) / float64(time.Millisecond)
	rw.Writers = res.Writers
	if res.Msgs > 0 {
		rw.AllocsPerMsg = float64(res.M.Allocs) / float64(res.Msgs)
	}
	if res.Txs > 0 {
		rw.MsgsPerTx = float64(res.Msgs) / float64(res.Txs)
	}
	if res.Rows > 0 {
		rw.BytesPerRow = float64(res.M.Written) / float64(res.Rows-res.Prefill)
		rw.BytesFromSz = res.M.WrittenFromSize
	}
	if len(res.Lat) > 0 {
		ms := make([]float64, len(res.Lat))
		for i, d := range res.Lat {
			ms[i] = float64(d) / float64(time.Millisecond)
		}
		slices.Sort(ms)
		rw.P50MS, rw.P99MS, rw.P999MS = quantile(ms, 0.50), quantile(ms, 0.99), quantile(ms, 0.999)
		if res.Wait == r.Options.Wait {
			r.lat = ms
		}
	}
	r.Rows = append(r.Rows, rw)
}

// quantile returns the q-quantile of sorted values (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// findNative returns the native row at N on a table that held prefill rows.
func (r *report) findNative(n, prefill int) *row {
	for i := range r.Rows {
		if rw := &r.Rows[i]; rw.Mode == modeNative && rw.N == n && rw.Prefill == prefill {
			return rw
		}
	}
	return nil
}

// find returns the first row of mode at N (any N when n is 0) without prefill.
func (r *report) find(mode string, n int) *row {
	for i := range r.Rows {
		rw := &r.Rows[i]
		if rw.Mode == mode && (n == 0 || rw.N == n) && rw.Prefill == 0 && (mode != modeFanin || rw.WaitMS == r.waitMS()) {
			return rw
		}
	}
	return nil
}

func (r *report) waitMS() float64 { return float64(r.Options.Wait) / float64(time.Millisecond) }

// finish computes the ratios and judges the bars.
func (r *report) finish() {
	perMsg := r.find(modePerMessage, 0)
	for i := range r.Rows {
		rw := &r.Rows[i]
		if rw.Mode == modeLive {
			continue
		}
		d := r.find(modeDrain, rw.N)
		if d == nil || rw.Mode == modePerMessage {
			d = r.find(modeDrain, r.Options.Batch)
		}
		if d != nil && d.Rate > 0 {
			rw.XDrain = rw.Rate / d.Rate
		}
		if perMsg != nil && perMsg.Rate > 0 {
			rw.XPerMsg = rw.Rate / perMsg.Rate
		}
		if nt := r.findNative(rw.N, rw.Prefill); nt != nil && nt.Rate > 0 && rw.Mode != modeDrain {
			rw.XNative = rw.Rate / nt.Rate
		}
	}

	f := r.find(modeFanin, r.Options.Batch)
	d := r.find(modeDrain, r.Options.Batch)
	switch {
	case f == nil || d == nil:
		r.skip("fanin ≥ 0.5 × drain", barDrainRatio, "needs the fanin and drain modes")
	default:
		r.judge("fanin ≥ 0.5 × drain", f.XDrain, barDrainRatio, true,
			fmt.Sprintf("%.0f vs %.0f msg/s at N=%d", f.Rate, d.Rate, f.N))
	}
	switch {
	case f == nil || perMsg == nil:
		r.skip("fanin ≥ 20 × per-message", barPerMsgRatio, "needs the fanin and per-message modes")
	default:
		r.judge("fanin ≥ 20 × per-message", f.XPerMsg, barPerMsgRatio, true,
			fmt.Sprintf("%.0f vs %.0f msg/s", f.Rate, perMsg.Rate))
	}
	if h := r.find(modeFanin, 1000); h == nil {
		r.skip("heap ≤ 64 MiB at N=1000", barHeapMiB, "needs a fanin run at N=1000")
	} else {
		r.judge("heap ≤ 64 MiB at N=1000", h.HeapPeakMiB, barHeapMiB, false,
			fmt.Sprintf("peak heap in use (base %.1f MiB), backlog %d, %s", h.HeapBaseMiB, r.Options.PCs, r.serverWhere()))
	}
	if tr := r.find(modeFaninTraced, r.Options.Batch); tr != nil && f != nil {
		r.judge("tracing on ≥ 0.9 × off", tr.Rate/f.Rate, barTracingRatio, true,
			fmt.Sprintf("%.0f msg/s traced (always sample) vs %.0f untraced", tr.Rate, f.Rate))
	}
	r.largeOutput(f)
	if ls := r.find(modeFaninLitestream, r.Options.Batch); ls != nil && f != nil {
		r.inform("fanin with litestream ÷ without", ls.Rate/f.Rate,
			fmt.Sprintf("%.0f vs %.0f msg/s; longest pause between acks %.0f vs %.0f ms; litestream's CPU %.0f%%", ls.Rate, f.Rate, ls.PauseMS, f.PauseMS, ls.SideCPUPct))
	}
	r.postgresBar()
	nativeBar, nativeTarget := "fanin ≥ 0.8 × native", barNativeRatio
	if r.Options.Results {
		nativeBar, nativeTarget = "mixed: fanin ≥ 0.7 × native", barMixedRatio
	}
	if nt := r.find(modeNative, r.Options.Batch); f == nil || nt == nil {
		r.skip(nativeBar, nativeTarget, "needs the fanin and native modes")
	} else {
		r.judge(nativeBar, f.XNative, nativeTarget, true,
			fmt.Sprintf("%.0f vs %.0f msg/s, transactions of up to %d", f.Rate, nt.Rate, groupSize(f.N)))
	}
	var full *row
	for i := range r.Rows {
		if r.Rows[i].Mode == modeFanin && r.Rows[i].Prefill > 0 {
			full = &r.Rows[i]
		}
	}
	if full == nil || full.XNative == 0 {
		r.skip("full table ≥ 0.8 × native", barNativeRatio, "needs -prefill and the native mode (the bar is at 1000000)")
	} else {
		r.judge("full table ≥ 0.8 × native", full.XNative, barNativeRatio, true,
			fmt.Sprintf("%.0f vs %.0f msg/s with %d rows already (%.2f × fanin on an empty table)", full.Rate,
				full.Rate/full.XNative, full.Prefill, ratioOf(full, f)))
	}
	var lv *row
	for i := range r.Rows {
		if r.Rows[i].Mode == modeLive && r.Rows[i].WaitMS == r.waitMS() {
			lv = &r.Rows[i]
		}
	}
	limit := float64(r.Options.Wait+barLatencySlack) / float64(time.Millisecond)
	if lv == nil {
		r.skip("live p99 ≤ T + 50 ms", limit, "needs -live-rate (the bar is at 2000)")
	} else {
		r.judge("live p99 ≤ T + 50 ms", lv.P99MS, limit, false,
			fmt.Sprintf("p99 %.1f ms at %.0f msg/s, T=%s", lv.P99MS, r.Options.LiveRate, r.Options.Wait))
	}
}

// largeOutput reports, when fanin-output ran, its rate as a fraction of fanin's (f) with
// results: what results naming large outputs cost. The issue sets no target for it.
func (r *report) largeOutput(f *row) {
	lo := r.find(modeFaninOutput, r.Options.Batch)
	if lo == nil {
		return
	}
	name := fmt.Sprintf("large output (%.3g%%) ÷ fanin with results", 100*r.Options.LargeOutput)
	if f == nil {
		r.skip(name, 0, "needs the fanin mode")
		return
	}
	r.inform(name, lo.Rate/f.Rate, fmt.Sprintf("%.0f vs %.0f msg/s at N=%d; %d of %d results name a %s stdout, %.1f MB/s of it stored",
		lo.Rate, f.Rate, lo.N, largeCount(r.Options.PCs, r.Options.LargeOutput), r.Options.PCs,
		sizeName(r.Options.LargeSize), lo.OutputMBps))
}

func (r *report) judge(name string, measured, target float64, atLeast bool, detail string) {
	v := "FAIL"
	if atLeast && measured >= target || !atLeast && measured <= target {
		v = "PASS"
	}
	r.Bars = append(r.Bars, bar{Name: name, Verdict: v, Measured: measured, Target: target, Detail: detail})
}

func (r *report) inform(name string, measured float64, detail string) {
	r.Bars = append(r.Bars, bar{Name: name, Verdict: "INFO", Measured: measured, Detail: detail})
}

func (r *report) skip(name string, target float64, why string) {
	r.Bars = append(r.Bars, bar{Name: name, Verdict: "SKIP", Target: target, Detail: why})
}

// printHeader prints the machine and the plan.
func printHeader(w io.Writer, r *report) {
	m := r.Machine
	fmt.Fprintf(w, "fanin bench — %s\n", r.Started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "machine: %d cores, %s, %s %s/%s\n", m.Cores, m.CPU, m.GoVersion, m.GOOS, m.GOARCH)
	fmt.Fprintf(w, "disk:    %s\n", m.Disk)
	o := r.Options
	fmt.Fprintf(w, "plan:    P=%d started events", o.PCs)
	if o.Results {
		fmt.Fprintf(w, " + %d results", o.PCs)
	}
	if o.LargeOutput > 0 {
		fmt.Fprintf(w, " (+ the same on %s, %d of them naming a %s stdout in the Object Store)",
			largeStream, largeCount(o.PCs, o.LargeOutput), sizeName(o.LargeSize))
	}
	fmt.Fprintf(w, ", N=%d, T=%s, sync=%s, embedded JetStream (file storage, %s), fresh durable and database per mode\n\n",
		o.Batch, o.Wait, o.Sync, r.serverWhere())
}

// printTable prints a row per mode, the footnotes and a line per bar.
func (r *report) printTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tN\tmsgs\tseconds\tmsg/s\t×drain\t×per-msg\t×native\tCPU%\tsrv CPU%\tpg CPU%\theap base MiB\theap peak MiB\tallocs/msg\tmsgs/tx\tDB bytes/row\tp50 ms\tp99 ms\tp999 ms\tout MB/s\t")
	for _, rw := range r.Rows {
		mode := rw.Mode
		switch {
		case rw.Prefill > 0:
			mode = fmt.Sprintf("%s +%d rows", mode, rw.Prefill)
		case rw.WaitMS > 0 && rw.WaitMS != r.waitMS():
			mode = fmt.Sprintf("%s T=%gms", mode, rw.WaitMS)
		case rw.Mode == modePerMessage:
			mode += "*"
		case rw.Mode == modeFaninPostgres && len(r.Options.PGWriters) > 1:
			mode = fmt.Sprintf("%s W=%d", mode, rw.Writers)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.0f\t%s\t%s\t%s\t%.0f\t%.0f\t%s\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			mode, rw.N, rw.Msgs, rw.Seconds, rw.Rate, ratio(rw.XDrain), ratio(rw.XPerMsg), ratio(rw.XNative), rw.CPUPct, rw.ServerCPUPct, pct(rw.PGCPUPct),
			rw.HeapBaseMiB, rw.HeapPeakMiB, rw.AllocsPerMsg, perTx(rw.MsgsPerTx), bytesPerRow(rw), ms(rw.P50MS), ms(rw.P99MS), ms(rw.P999MS),
			mbPerS(rw.OutputMBps))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n* per-message runs on the first %d messages of the backlog only (it is slow); its rate is what it\n", r.Options.PerMsgLimit)
	if r.Options.InProcess {
		fmt.Fprintln(w, "  sustained there. The NATS server runs in this process: CPU%, heap, allocations and bytes")
		fmt.Fprintln(w, "  written include it (compare with drain). sink times decode + write only.")
	} else {
		fmt.Fprintln(w, "  sustained there. The NATS server runs in a child process (srv CPU%): CPU%, heap, allocations")
		fmt.Fprintln(w, "  and bytes written are the ingester's (the harness's) alone. sink times decode + write only.")
		fmt.Fprintf(w, "  native is SQLite alone on the same rows, one statement per transaction of %d (fanin's size behind).\n", groupSize(r.Options.Batch))
	}
	if r.Options.Sync != "full" {
		fmt.Fprintln(w, "  NOTE: the bars are defined at sync=full; this run used sync="+r.Options.Sync+".")
	}
	fmt.Fprintln(w)
	for _, b := range r.Bars {
		switch b.Verdict {
		case "SKIP":
			fmt.Fprintf(w, "SKIP  %-26s %s\n", b.Name, b.Detail)
			continue
		case "INFO":
			fmt.Fprintf(w, "INFO  %-26s %.2f (no target) — %s\n", b.Name, b.Measured, b.Detail)
			continue
		}
		fmt.Fprintf(w, "%s  %-26s %.2f (target %g) — %s\n", b.Verdict, b.Name, b.Measured, b.Target, b.Detail)
	}
}

// ratioOf is a's rate over b's, 0 when b is missing.
func ratioOf(a, b *row) float64 {
	if a == nil || b == nil || b.Rate == 0 {
		return 0
	}
	return a.Rate / b.Rate
}

func ratio(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x)
}

func pct(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", x)
}

func perTx(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", x)
}

func ms(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", x)
}

func mbPerS(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", x)
}

func bytesPerRow(rw row) string {
	if rw.BytesPerRow == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.0f", rw.BytesPerRow)
	if rw.BytesFromSz {
		s += "†" // the files' growth: /proc/self/io was unavailable
	}
	return s
}

// sizeName names a size in bytes the way the flags are usually given: 1 MiB, 64 KiB.
func sizeName(b int) string {
	switch {
	case b%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", b>>20)
	case b%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%d-byte", b)
}

// writeJSON writes the report to dir/results.json.
func (r *report) writeJSON(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output dir: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func (r *report) serverWhere() string {
	if r.Options.InProcess {
		return "in this process"
	}
	return "in a child process"
}
