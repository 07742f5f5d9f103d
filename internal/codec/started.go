package codec

import "time"

// Started is an EventStarted: a PC's agent started the child process of one
// run. Every field is required on the wire, so after a successful decode every
// string is non-empty and StartedAt is set.
type Started struct {
	ResultID, RequestID, ExecID, PCID string
	// StartedAt is the time as parsed, in the payload's offset (UTC for "Z");
	// store it with FormatTime.
	StartedAt  time.Time
	ManifestID string
	Version    string
}

// Member indexes of an EventStarted, in wire order.
const (
	sResultID = iota
	sRequestID
	sExecID
	sPCID
	sStartedAt
	sManifestID
	sVersion
	sFieldCount
)

var startedNames = []string{
	sResultID:   "result_id",
	sRequestID:  "request_id",
	sExecID:     "exec_id",
	sPCID:       "pc_id",
	sStartedAt:  "started_at",
	sManifestID: "manifest_id",
	sVersion:    "version",
}

func startedField(key []byte) int {
	switch string(key) {
	case "result_id":
		return sResultID
	case "request_id":
		return sRequestID
	case "exec_id":
		return sExecID
	case "pc_id":
		return sPCID
	case "started_at":
		return sStartedAt
	case "manifest_id":
		return sManifestID
	case "version":
		return sVersion
	}
	return -1
}

// DecodeStarted parses one EventStarted payload. Any error it returns is a
// *PoisonError (and matches ErrPoison): the payload can never decode.
func DecodeStarted(data []byte) (Started, error) {
	s, _, err := decodeStarted(data, nil)
	return s, err
}

// decodeStarted is DecodeStarted that also returns FormatTime(*recordedAt) (""
// when recordedAt is nil), formatted into the string that holds the event's
// texts: one allocation for all of them.
func decodeStarted(data []byte, recordedAt *time.Time) (Started, string, error) {
	var buf [arenaSize]byte
	arena := buf[:0]
	s := scanner{data: data}
	var (
		seen  uint32
		spans [sFieldCount]span
		at    time.Time
	)
	for {
		key, ok := s.next()
		if !ok {
			break
		}
		f := startedField(key)
		if !s.claim(&seen, f, startedNames) {
			continue
		}
		if f == sStartedAt {
			at = s.time(startedNames[f])
		} else {
			spans[f], arena = s.str(arena, startedNames[f], required)
		}
	}
	if err := s.finish(); err != nil {
		return Started{}, "", err
	}
	if err := missing(seen, 1<<sFieldCount-1, startedNames); err != nil {
		return Started{}, "", err
	}
	end := len(arena)
	if recordedAt != nil {
		arena = appendTime(arena, *recordedAt)
	}
	str := string(arena)
	return Started{
		ResultID:   spans[sResultID].in(str),
		RequestID:  spans[sRequestID].in(str),
		ExecID:     spans[sExecID].in(str),
		PCID:       spans[sPCID].in(str),
		StartedAt:  at,
		ManifestID: spans[sManifestID].in(str),
		Version:    spans[sVersion].in(str),
	}, str[end:], nil
}
