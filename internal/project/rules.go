// Package project holds the projection rules (docs/contract.md §5): how a record merges into
// its execution_results row and what it owes its execution's counters, for one record and for
// a whole batch. It knows no database: every store (SQLite, PostgreSQL) reads the rows a batch
// touches, merges the batch with these rules, and writes back the rows that changed and the
// counters owed, so that all stores give the same tables.
package project

import "fanin/internal/codec"

// Row is one execution_results row as the projection rules see it. Empty strings stand for
// NULL in the nullable text columns (codec already maps "" to absent).
type Row struct {
	ResultID  string
	RequestID string
	ExecID    string
	PCID      string
	ExitCode  int32
	Finished  bool // finished_at and exit_code are set
	// Stdout and Stderr are never read back from the database (they can be megabytes); they
	// hold the text to write when TextSet says this merge set the outcome.
	Stdout, Stderr string
	TextSet        bool
	StartedAt      string
	FinishedAt     string
	RecordedAt     string
	JobID          string
	Version        string
	Reaped         bool
	ParentResultID string
	Skipped        bool
}

// Counted reports whether the row's outcome is in its execution's counters: the invariant is
// that a run is counted exactly when both its exec_id and its outcome are known (the reaper
// counts the rows it closes, which are always started ones with an exec_id).
func (r *Row) Counted() bool { return r.Finished && r.ExecID != "" }

// Outcome is a counter bump owed to one execution.
type Outcome struct {
	ExecID  string
	Success bool
}

// ApplyStarted merges started event s, published at recordedAt, into cur (nil: no row yet).
// It returns the new row, whether it differs from cur, and the counter bump it owes, if any.
func ApplyStarted(cur *Row, s *codec.Started, recordedAt string) (next Row, changed bool, bump *Outcome) {
	if cur == nil {
		return Row{
			ResultID:   s.ResultID,
			RequestID:  s.RequestID,
			ExecID:     s.ExecID,
			PCID:       s.PCID,
			StartedAt:  codec.FormatTime(s.StartedAt),
			RecordedAt: recordedAt,
			JobID:      s.ManifestID,
			Version:    s.Version,
		}, true, nil
	}
	next = *cur
	fill(&next.Version, s.Version)
	fill(&next.ExecID, s.ExecID)
	fill(&next.JobID, s.ManifestID)
	next.RecordedAt = earlier(next.RecordedAt, recordedAt)
	// Filling the exec_id of a finished row completes the pair: count it now, as its result
	// would have been counted had it carried the exec_id. A reaped row was counted by the reaper.
	if !cur.Counted() && next.Counted() && !next.Reaped {
		bump = &Outcome{ExecID: next.ExecID, Success: next.ExitCode == 0}
	}
	return next, next != *cur, bump
}

// ApplyResult merges result x, published at recordedAt, into cur (nil: no row yet).
func ApplyResult(cur *Row, x *codec.Result, recordedAt string) (next Row, changed bool, bump *Outcome) {
	if cur == nil {
		next = Row{
			ResultID:       x.ResultID,
			RequestID:      x.RequestID,
			ExecID:         x.ExecID,
			PCID:           x.PCID,
			StartedAt:      codec.FormatTime(x.StartedAt),
			RecordedAt:     recordedAt,
			JobID:          x.ManifestID,
			ParentResultID: x.ParentResultID,
		}
		setOutcome(&next, x)
		if next.Counted() {
			bump = &Outcome{ExecID: next.ExecID, Success: next.ExitCode == 0}
		}
		return next, true, bump
	}
	next = *cur
	next.RecordedAt = earlier(next.RecordedAt, recordedAt)
	if cur.Finished && !cur.Reaped {
		// A redelivery or a duplicate: the outcome is settled.
		return next, next != *cur, nil
	}
	setOutcome(&next, x)
	next.Reaped = false
	next.RequestID = x.RequestID
	fill(&next.JobID, x.ManifestID)
	fill(&next.ExecID, x.ExecID)
	fill(&next.ParentResultID, x.ParentResultID)
	// A reaped row was counted (as a failure) by the reaper: overwriting it bumps nothing.
	if !cur.Reaped && next.Counted() {
		bump = &Outcome{ExecID: next.ExecID, Success: next.ExitCode == 0}
	}
	return next, next != *cur, bump
}

func setOutcome(r *Row, x *codec.Result) {
	r.Finished = true
	r.TextSet = true
	r.ExitCode = x.ExitCode
	r.Stdout = x.Stdout
	r.Stderr = x.Stderr
	r.FinishedAt = codec.FormatTime(x.FinishedAt)
	r.Skipped = x.Skipped
}

// fill sets *dst to v when *dst is still NULL: the first value written is kept.
func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// earlier returns the earlier of two timestamps in codec.TimeLayout, whose text order is
// time order.
func earlier(a, b string) string {
	if b < a {
		return b
	}
	return a
}
