package codec

import "time"

// Result is an ExecResult: a run finished, was skipped, refused or killed.
//
// After a successful decode ResultID, RequestID and PCID are non-empty and
// both times are set. Optional strings are "" when absent on the wire
// (missing, null or ""). StartedAt and FinishedAt are as parsed, in the
// payload's offset; store them with FormatTime.
type Result struct {
	ResultID       string // never empty after decode: derived with LegacyResultID when absent
	RequestID      string
	ExecID         string // "" = absent (ad-hoc run)
	ParentResultID string // "" = absent
	PCID           string
	ExitCode       int32 // -1 = killed or timed out; 121–127 are agent outcomes
	Skipped        bool  // false when absent or null
	// Stdout and Stderr may be "" (but are required on the wire). When the
	// output exceeded 256 KiB they are truncated and StdoutObject /
	// StderrObject name the full text in the Object Store.
	Stdout, Stderr             string
	StartedAt, FinishedAt      time.Time
	StdoutObject, StderrObject string // "" = absent
	ManifestID                 string // "" = absent; stored in column job_id
}

// Member indexes of an ExecResult, in wire order.
const (
	rResultID = iota
	rRequestID
	rExecID
	rParentResultID
	rPCID
	rExitCode
	rSkipped
	rStdout
	rStderr
	rStartedAt
	rFinishedAt
	rStdoutObject
	rStderrObject
	rManifestID
	rCollectObject
	rFieldCount
)

var resultNames = []string{
	rResultID:       "result_id",
	rRequestID:      "request_id",
	rExecID:         "exec_id",
	rParentResultID: "parent_result_id",
	rPCID:           "pc_id",
	rExitCode:       "exit_code",
	rSkipped:        "skipped",
	rStdout:         "stdout",
	rStderr:         "stderr",
	rStartedAt:      "started_at",
	rFinishedAt:     "finished_at",
	rStdoutObject:   "stdout_object",
	rStderrObject:   "stderr_object",
	rManifestID:     "manifest_id",
	rCollectObject:  "collect_object",
}

// resultRequired is the set of members an ExecResult must carry.
const resultRequired = 1<<rRequestID | 1<<rPCID | 1<<rExitCode |
	1<<rStdout | 1<<rStderr | 1<<rStartedAt | 1<<rFinishedAt

// resultRules gives the rule of each string member.
var resultRules = [rFieldCount]strRule{
	rResultID:       optional,
	rRequestID:      required,
	rExecID:         optional,
	rParentResultID: optional,
	rPCID:           required,
	rStdout:         requiredMayBeEmpty,
	rStderr:         requiredMayBeEmpty,
	rStdoutObject:   optional,
	rStderrObject:   optional,
	rManifestID:     optional,
	rCollectObject:  optionalDiscard,
}

func resultField(key []byte) int {
	switch string(key) {
	case "result_id":
		return rResultID
	case "request_id":
		return rRequestID
	case "exec_id":
		return rExecID
	case "parent_result_id":
		return rParentResultID
	case "pc_id":
		return rPCID
	case "exit_code":
		return rExitCode
	case "skipped":
		return rSkipped
	case "stdout":
		return rStdout
	case "stderr":
		return rStderr
	case "started_at":
		return rStartedAt
	case "finished_at":
		return rFinishedAt
	case "stdout_object":
		return rStdoutObject
	case "stderr_object":
		return rStderrObject
	case "manifest_id":
		return rManifestID
	case "collect_object":
		return rCollectObject
	}
	return -1
}

// DecodeResult parses one ExecResult payload. Any error it returns is a
// *PoisonError (and matches ErrPoison): the payload can never decode. A
// result_id that is absent, null or "" is derived with LegacyResultID from
// request_id and pc_id.
func DecodeResult(data []byte) (Result, error) {
	r, _, err := decodeResult(data, nil)
	return r, err
}

// decodeResult is DecodeResult that also returns FormatTime(*recordedAt) (""
// when recordedAt is nil), formatted into the string that holds the result's
// texts: one allocation for all of them.
func decodeResult(data []byte, recordedAt *time.Time) (Result, string, error) {
	var buf [arenaSize]byte
	arena := buf[:0]
	s := scanner{data: data}
	var (
		seen  uint32
		spans [rFieldCount]span
		r     Result
	)
	for {
		key, ok := s.next()
		if !ok {
			break
		}
		f := resultField(key)
		if !s.claim(&seen, f, resultNames) {
			continue
		}
		switch name := resultNames[f]; f {
		case rExitCode:
			r.ExitCode = s.int32(name)
		case rSkipped:
			r.Skipped = s.bool(name)
		case rStartedAt:
			r.StartedAt = s.time(name)
		case rFinishedAt:
			r.FinishedAt = s.time(name)
		default:
			spans[f], arena = s.str(arena, name, resultRules[f])
		}
	}
	if err := s.finish(); err != nil {
		return Result{}, "", err
	}
	if err := missing(seen, resultRequired, resultNames); err != nil {
		return Result{}, "", err
	}
	if spans[rResultID].empty() {
		start := len(arena)
		req, pc := spans[rRequestID], spans[rPCID]
		arena = appendLegacyResultID(arena, arena[req.start:req.end], arena[pc.start:pc.end])
		spans[rResultID] = span{start, len(arena)}
	}
	end := len(arena)
	if recordedAt != nil {
		arena = appendTime(arena, *recordedAt)
	}
	str := string(arena)
	r.ResultID = spans[rResultID].in(str)
	r.RequestID = spans[rRequestID].in(str)
	r.ExecID = spans[rExecID].in(str)
	r.ParentResultID = spans[rParentResultID].in(str)
	r.PCID = spans[rPCID].in(str)
	r.Stdout = spans[rStdout].in(str)
	r.Stderr = spans[rStderr].in(str)
	r.StdoutObject = spans[rStdoutObject].in(str)
	r.StderrObject = spans[rStderrObject].in(str)
	r.ManifestID = spans[rManifestID].in(str)
	return r, str[end:], nil
}
