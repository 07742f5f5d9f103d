package sink

import "fanin/internal/codec"

// row is one execution_results row as the projection rules see it. Empty strings stand for
// NULL in the nullable text columns (codec already maps "" to absent).
type row struct {
	resultID  string
	requestID string
	execID    string
	pcID      string
	exitCode  int32
	finished  bool // finished_at and exit_code are set
	// stdout and stderr are never read back from the database (they can be megabytes); they
	// hold the text to write when textSet says this merge set the outcome.
	stdout, stderr string
	textSet        bool
	startedAt      string
	finishedAt     string
	recordedAt     string
	jobID          string
	version        string
	reaped         bool
	parentResultID string
	skipped        bool
}

// counted reports whether the row's outcome is in its execution's counters: the invariant is
// that a run is counted exactly when both its exec_id and its outcome are known (the reaper
// counts the rows it closes, which are always started ones with an exec_id).
func (r *row) counted() bool { return r.finished && r.execID != "" }

// outcome is a counter bump owed to one execution.
type outcome struct {
	execID  string
	success bool
}

// applyStarted merges started event s, published at recordedAt, into cur (nil: no row yet).
// It returns the new row, whether it differs from cur, and the counter bump it owes, if any.
func applyStarted(cur *row, s *codec.Started, recordedAt string) (next row, changed bool, bump *outcome) {
	if cur == nil {
		return row{
			resultID:   s.ResultID,
			requestID:  s.RequestID,
			execID:     s.ExecID,
			pcID:       s.PCID,
			startedAt:  codec.FormatTime(s.StartedAt),
			recordedAt: recordedAt,
			jobID:      s.ManifestID,
			version:    s.Version,
		}, true, nil
	}
	next = *cur
	fill(&next.version, s.Version)
	fill(&next.execID, s.ExecID)
	fill(&next.jobID, s.ManifestID)
	next.recordedAt = earlier(next.recordedAt, recordedAt)
	// Filling the exec_id of a finished row completes the pair: count it now, as its result
	// would have been counted had it carried the exec_id. A reaped row was counted by the reaper.
	if !cur.counted() && next.counted() && !next.reaped {
		bump = &outcome{execID: next.execID, success: next.exitCode == 0}
	}
	return next, next != *cur, bump
}

// applyResult merges result x, published at recordedAt, into cur (nil: no row yet).
func applyResult(cur *row, x *codec.Result, recordedAt string) (next row, changed bool, bump *outcome) {
	if cur == nil {
		next = row{
			resultID:       x.ResultID,
			requestID:      x.RequestID,
			execID:         x.ExecID,
			pcID:           x.PCID,
			startedAt:      codec.FormatTime(x.StartedAt),
			recordedAt:     recordedAt,
			jobID:          x.ManifestID,
			parentResultID: x.ParentResultID,
		}
		setOutcome(&next, x)
		if next.counted() {
			bump = &outcome{execID: next.execID, success: next.exitCode == 0}
		}
		return next, true, bump
	}
	next = *cur
	next.recordedAt = earlier(next.recordedAt, recordedAt)
	if cur.finished && !cur.reaped {
		// A redelivery or a duplicate: the outcome is settled.
		return next, next != *cur, nil
	}
	setOutcome(&next, x)
	next.reaped = false
	next.requestID = x.RequestID
	fill(&next.jobID, x.ManifestID)
	fill(&next.execID, x.ExecID)
	fill(&next.parentResultID, x.ParentResultID)
	// A reaped row was counted (as a failure) by the reaper: overwriting it bumps nothing.
	if !cur.reaped && next.counted() {
		bump = &outcome{execID: next.execID, success: next.exitCode == 0}
	}
	return next, next != *cur, bump
}

func setOutcome(r *row, x *codec.Result) {
	r.finished = true
	r.textSet = true
	r.exitCode = x.ExitCode
	r.stdout = x.Stdout
	r.stderr = x.Stderr
	r.finishedAt = codec.FormatTime(x.FinishedAt)
	r.skipped = x.Skipped
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
