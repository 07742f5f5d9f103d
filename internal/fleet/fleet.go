// Package fleet simulates a PC fleet answering one broadcast: every PC's EventStarted and
// ExecResult, with the duplicates and poison a real fleet produces. The demo, the tests and the
// benchmark harness publish what it generates.
package fleet

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"fanin/internal/codec"
)

// Broadcast describes one command sent to a fleet.
type Broadcast struct {
	ExecID, RequestID, ManifestID, Version string
	PCs                                    int       // fleet size
	Start                                  time.Time // when the command went out
	Seed                                   uint64    // same seed, same messages
	// FailureRate is the share of PCs whose command exits non-zero (0..1).
	FailureRate float64
	// DuplicateRate is the share of messages an agent publishes twice (0..1).
	DuplicateRate float64
	// Poison is how many malformed messages ride along on each stream.
	Poison int
	// LegacyResults is the share of results sent without result_id, as old agents do (0..1).
	LegacyResults float64
}

// Message is one message to publish.
type Message struct {
	Kind    codec.Kind
	Subject string
	Payload []byte
	// At is when, after the broadcast started, the agent publishes it.
	At time.Duration
	// Poison marks a malformed message, which must end in dead_letters.
	Poison bool
	// ResultID is the run this message belongs to ("" for poison).
	ResultID string
	// Failed marks a result with a non-zero exit code.
	Failed bool
}

// Messages returns every message of the broadcast: for each PC a started event and, later, its
// result, plus duplicates and poison, sorted by publish time. Each PC starts within the first
// two seconds and runs 0.1–3 s.
func (b Broadcast) Messages() []Message {
	rng := rand.New(rand.NewPCG(b.Seed, 0x9e3779b97f4a7c15))
	start := b.Start
	if start.IsZero() {
		start = time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)
	}
	msgs := make([]Message, 0, 2*b.PCs+2*b.Poison)
	for i := range b.PCs {
		pc := fmt.Sprintf("PC-%05d", i)
		rid := uuidV4(rng)
		startAt := time.Duration(rng.Int64N(int64(2 * time.Second)))
		runFor := 100*time.Millisecond + time.Duration(rng.Int64N(int64(2900*time.Millisecond)))
		startedAt := start.Add(startAt)
		s := codecStarted{
			ResultID: rid, RequestID: b.RequestID, ExecID: b.ExecID, PCID: pc,
			StartedAt: startedAt.Format(time.RFC3339Nano), ManifestID: b.ManifestID, Version: b.Version,
		}
		failed := rng.Float64() < b.FailureRate
		exit := 0
		stderr := ""
		if failed {
			exit, stderr = 1, "collector: access denied"
		}
		r := codecResult{
			RequestID: b.RequestID, ExecID: b.ExecID, PCID: pc, ExitCode: exit,
			Stdout: fmt.Sprintf("hostname=%s cpu=4 ram=16GiB", pc), Stderr: stderr,
			StartedAt: startedAt.Format(time.RFC3339Nano), FinishedAt: startedAt.Add(runFor).Format(time.RFC3339Nano),
			ManifestID: b.ManifestID,
		}
		resultID := rid
		if rng.Float64() < b.LegacyResults {
			resultID = codec.LegacyResultID(b.RequestID, pc)
			s.ResultID = resultID
		} else {
			r.ResultID = rid
		}
		sm := Message{Kind: codec.KindStarted, Subject: "events.started." + b.ExecID + "." + pc,
			Payload: mustJSON(s), At: startAt, ResultID: resultID}
		rm := Message{Kind: codec.KindResult, Subject: "results." + b.RequestID,
			Payload: mustJSON(r), At: startAt + runFor, ResultID: resultID, Failed: failed}
		msgs = append(msgs, sm, rm)
		for _, m := range []Message{sm, rm} {
			if rng.Float64() < b.DuplicateRate {
				m.At += time.Duration(rng.Int64N(int64(time.Second))) // the outbox retries
				msgs = append(msgs, m)
			}
		}
	}
	for i := range b.Poison {
		at := time.Duration(rng.Int64N(int64(3 * time.Second)))
		msgs = append(msgs,
			Message{Kind: codec.KindStarted, Subject: fmt.Sprintf("events.started.%s.BAD-%d", b.ExecID, i),
				Payload: poisonPayloads[i%len(poisonPayloads)], At: at, Poison: true},
			Message{Kind: codec.KindResult, Subject: "results." + b.RequestID,
				Payload: poisonPayloads[(i+1)%len(poisonPayloads)], At: at, Poison: true})
	}
	sortByTime(msgs)
	return msgs
}

// poisonPayloads are messages that can never be projected, one per kind of fault.
var poisonPayloads = [][]byte{
	[]byte(`{"result_id":"x","request_id":`), // truncated JSON
	[]byte(`not json at all`),                // not JSON
	[]byte(``),                               // empty
	[]byte(`{"request_id":"r","pc_id":"p","exit_code":1.5,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z","result_id":"q","exec_id":"e","manifest_id":"m"}`), // exit_code 1.5; no version
	[]byte(`{"result_id":"r","request_id":"q","exec_id":"e","pc_id":"p","started_at":"yesterday","finished_at":"yesterday","manifest_id":"m","version":"1","exit_code":0,"stdout":"","stderr":""}`),
}

type codecStarted struct {
	ResultID   string `json:"result_id"`
	RequestID  string `json:"request_id"`
	ExecID     string `json:"exec_id"`
	PCID       string `json:"pc_id"`
	StartedAt  string `json:"started_at"`
	ManifestID string `json:"manifest_id"`
	Version    string `json:"version"`
}

type codecResult struct {
	ResultID   string `json:"result_id,omitempty"`
	RequestID  string `json:"request_id"`
	ExecID     string `json:"exec_id,omitempty"`
	PCID       string `json:"pc_id"`
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	StartedAt  string `json:"started_at"`
	FinishedAt string `json:"finished_at"`
	ManifestID string `json:"manifest_id,omitempty"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the types above always marshal
	}
	return b
}

func uuidV4(rng *rand.Rand) string {
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
