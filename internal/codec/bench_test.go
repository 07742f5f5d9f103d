package codec

import (
	"encoding/json"
	"testing"
	"time"
)

// realResult is a realistic ~300-byte ExecResult.
const realResult = `{"result_id":"5f0c7a51-3a5c-4c57-9a51-1c2b5d9f0e11","request_id":"req-20260520-0001","exec_id":"9a7f3c2e-8d41-4b6a-a0f3-5e9d7c1b2a44","pc_id":"PC-0001","exit_code":0,"skipped":false,"stdout":"cpu=4 mem=16384\n","stderr":"","started_at":"2026-05-20T12:00:00.123456Z","finished_at":"2026-05-20T12:00:01.654321Z","manifest_id":"inventory-hw"}`

func BenchmarkDecodeStarted(b *testing.B) {
	data := []byte(realStarted)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeStarted(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeResult(b *testing.B) {
	data := []byte(realResult)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeResult(data); err != nil {
			b.Fatal(err)
		}
	}
}

// unknownContainers is realResult with a member fanin does not know holding
// nested objects and arrays, which the decoder validates and skips.
var unknownContainers = `{"agent":{"name":"fleet-agent","build":{"os":"windows","arch":"amd64","tags":["x",["y","z"],{}]},"plugins":[{"id":1,"on":true},{"id":2,"on":false,"opts":{"a":[],"b":null}}]},` + realResult[1:]

func BenchmarkDecodeResultUnknownContainers(b *testing.B) {
	data := []byte(unknownContainers)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeResult(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeResultLegacy(b *testing.B) {
	data := []byte(smallestLegacy)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeResult(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeStartedStdlib is the reference: encoding/json into a struct
// of the same shape (and without the contract's checks).
func BenchmarkDecodeStartedStdlib(b *testing.B) {
	data := []byte(realStarted)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			ResultID   string    `json:"result_id"`
			RequestID  string    `json:"request_id"`
			ExecID     string    `json:"exec_id"`
			PCID       string    `json:"pc_id"`
			StartedAt  time.Time `json:"started_at"`
			ManifestID string    `json:"manifest_id"`
			Version    string    `json:"version"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeResultStdlib(b *testing.B) {
	data := []byte(realResult)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			ResultID       string    `json:"result_id"`
			RequestID      string    `json:"request_id"`
			ExecID         *string   `json:"exec_id"`
			ParentResultID *string   `json:"parent_result_id"`
			PCID           string    `json:"pc_id"`
			ExitCode       int32     `json:"exit_code"`
			Skipped        *bool     `json:"skipped"`
			Stdout         string    `json:"stdout"`
			Stderr         string    `json:"stderr"`
			StartedAt      time.Time `json:"started_at"`
			FinishedAt     time.Time `json:"finished_at"`
			StdoutObject   *string   `json:"stdout_object"`
			StderrObject   *string   `json:"stderr_object"`
			ManifestID     *string   `json:"manifest_id"`
			CollectObject  *string   `json:"collect_object"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFormatTime compares FormatTime with the standard library's Format it stands for.
func BenchmarkFormatTime(b *testing.B) {
	tm := time.Date(2026, time.May, 20, 12, 0, 1, 123_456_789, time.UTC)
	b.Run("FormatTime", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = FormatTime(tm)
		}
	})
	b.Run("time.Format", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = tm.UTC().Format(TimeLayout)
		}
	})
}

// BenchmarkRecordDecode decodes records as the fetch stage does: the event, and the
// recorded_at text. B/op is what a record in flight holds besides the Record itself.
func BenchmarkRecordDecode(b *testing.B) {
	published := time.Date(2026, 5, 20, 12, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name    string
		kind    Kind
		payload string
	}{{"started", KindStarted, realStarted}, {"result", KindResult, realResult}} {
		b.Run(tc.name, func(b *testing.B) {
			payload := []byte(tc.payload)
			b.ReportAllocs()
			for b.Loop() {
				r := Record{Kind: tc.kind, Payload: payload, Published: published}
				r.Decode()
				if r.Poison != nil {
					b.Fatal(r.Poison)
				}
			}
		})
	}
}
