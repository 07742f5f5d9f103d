package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressEvery is how often the bar is redrawn at most.
const progressEvery = 200 * time.Millisecond

// progress is a one-line bar on stderr, redrawn in place with \r. It starts no goroutine: the
// mode's own loop calls update, which costs a clock read unless a redraw is due.
type progress struct {
	w       io.Writer // nil: disabled
	label   string
	total   uint64
	started time.Time
	last    time.Time
}

// newProgress returns a bar writing to w when w is a terminal or force is set; otherwise a bar
// that draws nothing.
func newProgress(w io.Writer, force bool) *progress {
	if !force && !isTerminal(w) {
		return &progress{}
	}
	return &progress{w: w}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// start begins a new task of total units.
func (p *progress) start(label string, total uint64) {
	if p.w == nil {
		return
	}
	p.label, p.total = label, total
	p.started = time.Now()
	p.last = time.Time{}
	p.draw(0)
}

// update redraws the bar if it is due.
func (p *progress) update(done uint64) {
	if p.w == nil {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.draw(done)
	}
}

// finish clears the line.
func (p *progress) finish() {
	if p.w == nil {
		return
	}
	fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 100))
}

func (p *progress) draw(done uint64) {
	const width = 30
	frac := 0.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	fill := int(frac * width)
	rate := 0.0
	if el := time.Since(p.started).Seconds(); el > 0 {
		rate = float64(done) / el
	}
	fmt.Fprintf(p.w, "\r%-24.24s [%s%s] %5.1f%% %9d/%-9d %8.0f/s ",
		p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), 100*frac, done, p.total, rate)
}
