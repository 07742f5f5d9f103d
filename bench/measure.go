package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Runtime metrics the meter reads.
const (
	metricHeapObjects = "/memory/classes/heap/objects:bytes" // heap in use, live and not yet swept
	metricAllocs      = "/gc/heap/allocs:objects"            // objects allocated since start
)

// heapSampleEvery is how often the heap sampler reads the heap size.
const heapSampleEvery = 20 * time.Millisecond

// measurement is what a meter saw over a mode's timed spans. Everything is process-wide: the
// embedded NATS server runs in this process, so its CPU, heap, allocations and writes count too.
type measurement struct {
	Wall time.Duration
	CPU  time.Duration // user + system
	// ServerCPU is the NATS server's, when it runs in a child process (else it is in CPU).
	ServerCPU time.Duration
	HeapBase  uint64 // bytes, heap in use after a GC just before the mode started
	HeapPeak  uint64 // bytes, the highest heap-in-use sample while it ran
	Allocs    uint64 // objects allocated
	Written   int64  // bytes written to storage (/proc/self/io), or the files' growth
	// WrittenFromSize says Written is the growth of the database files, /proc/self/io being
	// unavailable.
	WrittenFromSize bool
}

// meter measures one mode. Call begin and end around each timed span (most modes have one; the
// sink mode excludes regenerating its payloads), then stop. The heap sampler is the only
// goroutine it starts, and the spans allocate nothing per message.
type meter struct {
	srv   *natsServer
	files []string // the database files, for the size fallback

	m measurement

	// State of the open span.
	t0      time.Time
	ru0     syscall.Rusage
	srvCPU0 time.Duration
	allocs0 uint64
	io0     int64
	size0   int64

	samples []metrics.Sample
	peak    atomic.Uint64
	// heapProfile, when set, holds the heap profile the sampler took nearest the peak.
	heapProfile atomic.Pointer[bytes.Buffer]
	quit        chan struct{}
	wg          sync.WaitGroup
}

// startMeter collects garbage (so one mode's garbage does not count against the next), then
// starts the heap sampler. files are the database files whose growth stands in for bytes
// written when /proc/self/io is unavailable; srv's CPU is measured when it is a child process.
func startMeter(srv *natsServer, files ...string) *meter {
	runtime.GC()
	m := &meter{
		srv:     srv,
		files:   files,
		samples: []metrics.Sample{{Name: metricAllocs}},
		quit:    make(chan struct{}),
	}
	s := []metrics.Sample{{Name: metricHeapObjects}}
	metrics.Read(s)
	m.m.HeapBase = s[0].Value.Uint64()
	m.wg.Add(1)
	go m.sampleHeap()
	return m
}

// profileHeap has the sampler take a heap profile each time the heap grows 1 MiB past the
// last one it took; after stop, heapProfileBytes returns the last.
func (m *meter) profileHeap() { m.heapProfile.Store(new(bytes.Buffer)) }

// heapProfileBytes returns the heap profile taken nearest the peak, or nil. Call it after stop.
func (m *meter) heapProfileBytes() []byte {
	if b := m.heapProfile.Load(); b != nil {
		return b.Bytes()
	}
	return nil
}

func (m *meter) sampleHeap() {
	defer m.wg.Done()
	s := []metrics.Sample{{Name: metricHeapObjects}}
	t := time.NewTicker(heapSampleEvery)
	defer t.Stop()
	var profiled uint64
	for {
		metrics.Read(s)
		if v := s[0].Value.Uint64(); v > m.peak.Load() {
			m.peak.Store(v) // only this goroutine stores
			if b := m.heapProfile.Load(); b != nil && v > profiled+1<<20 {
				// The profile's in-use figures are those of the last collection: what was
				// live as the heap grew towards this peak.
				b.Reset()
				pprof.Lookup("heap").WriteTo(b, 0)
				profiled = v
			}
		}
		select {
		case <-m.quit:
			return
		case <-t.C:
		}
	}
}

// begin opens a timed span.
func (m *meter) begin() {
	metrics.Read(m.samples)
	m.allocs0 = m.samples[0].Value.Uint64()
	m.io0 = writeBytes()
	if m.io0 < 0 {
		m.size0 = filesSize(m.files)
	}
	m.srvCPU0 = m.srv.cpu()
	syscall.Getrusage(syscall.RUSAGE_SELF, &m.ru0)
	m.t0 = time.Now()
}

// end closes the timed span and adds it to the measurement.
func (m *meter) end() {
	wall := time.Since(m.t0)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	metrics.Read(m.samples)
	m.m.Wall += wall
	m.m.CPU += cpuTime(&ru) - cpuTime(&m.ru0)
	m.m.ServerCPU += m.srv.cpu() - m.srvCPU0
	m.m.Allocs += m.samples[0].Value.Uint64() - m.allocs0
	if m.io0 >= 0 {
		if w := writeBytes(); w >= 0 {
			m.m.Written += w - m.io0
		}
	} else {
		m.m.Written += filesSize(m.files) - m.size0
		m.m.WrittenFromSize = true
	}
}

// stop ends the heap sampler and returns the measurement. Call it once, after the last end.
func (m *meter) stop() measurement {
	close(m.quit)
	m.wg.Wait()
	m.m.HeapPeak = m.peak.Load()
	return m.m
}

func cpuTime(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeBytes returns the process's write_bytes from /proc/self/io, or -1 when unavailable.
func writeBytes() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("write_bytes: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// filesSize adds up the sizes of the database files and their -wal and -shm companions.
func filesSize(files []string) int64 {
	var n int64
	for _, f := range files {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if fi, err := os.Stat(f + suffix); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}
