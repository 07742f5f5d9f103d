package codec

import (
	"testing"
	"time"
)

// realStarted is a realistic EventStarted as an agent publishes it.
const realStarted = `{"result_id":"5f0c7a51-3a5c-4c57-9a51-1c2b5d9f0e11","request_id":"req-20260520-0001","exec_id":"9a7f3c2e-8d41-4b6a-a0f3-5e9d7c1b2a44","pc_id":"PC-0001","started_at":"2026-05-20T12:00:00.123456Z","manifest_id":"inventory-hw","version":"1.0.0"}`

var startedBase = []member{
	{"result_id", `"result-uuid-1"`},
	{"request_id", `"req-1"`},
	{"exec_id", `"exec-uuid-1"`},
	{"pc_id", `"minipc"`},
	{"started_at", `"2026-05-20T12:00:00Z"`},
	{"manifest_id", `"inventory-hw"`},
	{"version", `"1.0.0"`},
}

var startedWant = Started{
	ResultID: "result-uuid-1", RequestID: "req-1", ExecID: "exec-uuid-1", PCID: "minipc",
	StartedAt: time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC), ManifestID: "inventory-hw", Version: "1.0.0",
}

// editStarted returns a copy of startedWant changed by f.
func editStarted(f func(*Started)) Started {
	want := startedWant
	f(&want)
	return want
}

func sameStarted(got, want Started) bool {
	if !got.StartedAt.Equal(want.StartedAt) {
		return false
	}
	got.StartedAt = want.StartedAt
	return got == want
}

func TestDecodeStartedAccepts(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    Started
	}{
		{"domain example", object(startedBase...), startedWant},
		{"realistic", []byte(realStarted), Started{
			ResultID: "5f0c7a51-3a5c-4c57-9a51-1c2b5d9f0e11", RequestID: "req-20260520-0001",
			ExecID: "9a7f3c2e-8d41-4b6a-a0f3-5e9d7c1b2a44", PCID: "PC-0001",
			StartedAt:  time.Date(2026, 5, 20, 12, 0, 0, 123456000, time.UTC),
			ManifestID: "inventory-hw", Version: "1.0.0",
		}},
		{"reversed order", object(startedBase[6], startedBase[5], startedBase[4], startedBase[3], startedBase[2], startedBase[1], startedBase[0]), startedWant},
		{"unknown members ignored", object(plus(startedBase, member{"agent_version", `"2.0"`}, member{"Version", `9`}, member{"x", `{"y":[{},[]]}`}, member{"x", `null`})...), startedWant},
		{"offset converted instant", object(with(startedBase, "started_at", `"2026-05-20T21:00:00+09:00"`)...), startedWant},
		{"negative zero offset", object(with(startedBase, "started_at", `"2026-05-20T12:00:00-00:00"`)...), startedWant},
		{"escaped value and key", object(plus(without(startedBase, "version"), member{`v\u0065rsion`, `"1.0\u002e0"`})...), startedWant},
		{"host name kept verbatim", object(with(startedBase, "pc_id", `"MiniPC.Local"`)...), func() Started { w := startedWant; w.PCID = "MiniPC.Local"; return w }()},
		{"non-ASCII host name kept verbatim", object(with(startedBase, "pc_id", `"Büro-PC-日本"`)...), editStarted(func(s *Started) { s.PCID = "Büro-PC-日本" })},
		{"surrogate pair in a host name", object(with(startedBase, "pc_id", `"pc-\ud83d\ude00"`)...), editStarted(func(s *Started) { s.PCID = "pc-😀" })},
		{"time at the end of year 9999 in UTC", object(with(startedBase, "started_at", `"9999-12-31T23:59:59.999999999Z"`)...),
			editStarted(func(s *Started) { s.StartedAt = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC) })},
		{"time at the start of year 0000 in UTC", object(with(startedBase, "started_at", `"0000-01-01T00:00:00Z"`)...),
			editStarted(func(s *Started) { s.StartedAt = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeStarted(tt.payload)
			if err != nil {
				t.Fatalf("DecodeStarted(%s): %v", tt.payload, err)
			}
			if !sameStarted(got, tt.want) {
				t.Fatalf("DecodeStarted(%s)\n got %+v\nwant %+v", tt.payload, got, tt.want)
			}
		})
	}
}

// rejectCase is a payload and the exact Error() its decode must return.
type rejectCase struct {
	name    string
	payload []byte
	want    string
}

func TestDecodeStartedRejects(t *testing.T) {
	tests := []rejectCase{
		{"empty payload", nil, "empty payload"},
		{"not JSON", []byte(realStarted[:40]), "not JSON: unexpected end of input at offset 40"},
		{"top level array", []byte(`[` + realStarted + `]`), "not a JSON object: top level is an array at offset 0"},
		{"legacy result is not a started event", []byte(smallestLegacy), "result_id: missing"},
		{"case-mismatched key", object(plus(without(startedBase, "result_id"), member{"Result_id", `"a"`})...), "result_id: missing"},
		{"duplicated field", object(plus(startedBase, member{"version", `"1.0.0"`})...), "version: duplicated field"},
		{"wrong type", object(with(startedBase, "version", `1.0`)...), "version: expected a string, got number"},
		{"bad time", object(with(startedBase, "started_at", `"2026-05-20T12:00:00+0900"`)...), `started_at: "2026-05-20T12:00:00+0900" is not an RFC 3339 time`},
		{"trailing garbage", []byte(realStarted + `,`), "not JSON: invalid character ',' after top-level value at offset 242"},
		{"host name not UTF-8", object(with(startedBase, "pc_id", "\"PC-\xc3\x28\"")...), "pc_id: invalid UTF-8"},
		{"host name Latin-1", object(with(startedBase, "pc_id", "\"B\xfcro\"")...), "pc_id: invalid UTF-8"},
		{"host name with a lone surrogate", object(with(startedBase, "pc_id", `"pc-\ud800"`)...), `pc_id: lone surrogate \ud800`},
		{"version with a lone low surrogate", object(with(startedBase, "version", `"1\udc00"`)...), `version: lone surrogate \udc00`},
		{"unknown member not UTF-8", object(plus(startedBase, member{"agent_version", "\"2.\xff\""})...), "payload: invalid UTF-8"},
		{"time in year 10000 in UTC", object(with(startedBase, "started_at", `"9999-12-31T23:59:59-23:59"`)...),
			`started_at: "9999-12-31T23:59:59-23:59" is year 10000 in UTC, outside 0000-9999`},
		{"time in year -1 in UTC", object(with(startedBase, "started_at", `"0000-01-01T00:00:00+01:00"`)...),
			`started_at: "0000-01-01T00:00:00+01:00" is year -1 in UTC, outside 0000-9999`},
	}
	// Every member is required, not null, and (being a string) not empty.
	for _, m := range startedBase {
		empty := m.key + ": must not be empty"
		if m.key == "started_at" {
			empty = `started_at: "" is not an RFC 3339 time`
		}
		tests = append(tests,
			rejectCase{m.key + " missing", object(without(startedBase, m.key)...), m.key + ": missing"},
			rejectCase{m.key + " null", object(with(startedBase, m.key, `null`)...), m.key + ": expected a string, got null"},
			rejectCase{m.key + " empty", object(with(startedBase, m.key, `""`)...), empty},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeStarted(tt.payload)
			if got := poison(t, err).Error(); got != tt.want {
				t.Fatalf("DecodeStarted(%s) error\n got %s\nwant %s", tt.payload, got, tt.want)
			}
		})
	}
}
