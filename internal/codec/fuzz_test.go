package codec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzSeeds are payloads for both fuzz targets: real-looking, truncated, huge,
// invalid UTF-8 and lone surrogates (in known and unknown members), out-of-range
// numbers, nested junk, duplicated keys, odd but valid RFC 3339 forms, times
// that leave years 0000–9999 in UTC. testdata/fuzz holds them as seed-NN.
func fuzzSeeds() [][]byte {
	seeds := []string{
		realStarted,
		smallestLegacy,
		string(object(fullResult...)),
		string(object(startedBase...)),
		realStarted[:100],
		smallestLegacy[:len(smallestLegacy)-1],
		"",
		"   ",
		"{}",
		"[]",
		"null",
		`{"result_id":"a","result_id":"a"}`,
		string(object(plus(legacyBase, member{"exit_code", "1"})...)),
		string(object(with(legacyBase, "exit_code", "2147483648")...)),
		string(object(with(legacyBase, "exit_code", "-2147483648")...)),
		string(object(with(legacyBase, "exit_code", "1e2")...)),
		string(object(with(legacyBase, "exit_code", "1.0")...)),
		string(object(with(legacyBase, "exit_code", "-0")...)),
		string(object(with(legacyBase, "exit_code", "01")...)),
		string(object(with(legacyBase, "stdout", "\"\xff\xfe\xed\xa0\x80\"")...)),
		string(object(with(legacyBase, "stdout", `"\ud83d\ude00\ud83d\u0041\ude00"`)...)),
		string(object(with(legacyBase, "stdout", `"`+strings.Repeat("é\\n", 5000)+`"`)...)),
		string(object(plus(legacyBase, member{"junk", `{"a":[1,{"b":[null,true,false,"\u0000"]}],"a":-1.5e-7}`})...)),
		string(object(plus(legacyBase, member{"deep", strings.Repeat("[", 999) + strings.Repeat("]", 999)})...)),
		string(object(plus(legacyBase, member{"deep", strings.Repeat("[", 1001) + strings.Repeat("]", 1001)})...)),
		string(object(plus(legacyBase, member{`result\u005fid`, `"r1"`}, member{"Result_ID", `"r2"`})...)),
		string(object(with(legacyBase, "finished_at", `"2026-05-16T09:00:00.123456789+09:00"`)...)),
		string(object(with(legacyBase, "finished_at", `"2026-05-16T00:00:00,5Z"`)...)),
		string(object(with(legacyBase, "finished_at", `"2026-05-16T1:00:00Z"`)...)),
		string(object(with(legacyBase, "finished_at", `"2026-05-16T00:00:00+24:00"`)...)),
		string(object(with(legacyBase, "finished_at", `"2026-05-16t00:00:00z"`)...)),
		string(object(with(startedBase, "started_at", `"2026-05-20T12:00:00.1234567891234Z"`)...)),
		string(object(with(legacyBase, "skipped", `"yes"`)...)),
		string(object(with(legacyBase, "collect_object", `null`)...)),
		string(object(with(legacyBase, "pc_id", `"x\ud800"`)...)),
		string(object(with(startedBase, "pc_id", "\"PC-\xc3\x28\"")...)),
		string(object(plus(legacyBase, member{"zz\xff", `1`})...)),
		string(object(plus(startedBase, member{"junk", `{"a":["\udc00"]}`})...)),
		string(object(with(startedBase, "pc_id", `"pc-\ud83d\ude00"`)...)),
		string(object(with(legacyBase, "finished_at", `"9999-12-31T23:59:59-23:59"`)...)),
		string(object(with(startedBase, "started_at", `"0000-01-01T00:00:00+01:00"`)...)),
	}
	out := make([][]byte, len(seeds))
	for i, s := range seeds {
		out[i] = []byte(s)
	}
	return out
}

// checkVerdict holds a decode error to json.Valid: a syntax error iff the
// input is not JSON; any other error only for valid JSON — but for "nesting
// too deep", which the scanner reports the moment it sees it.
func checkVerdict(t *testing.T, data []byte, err error) {
	t.Helper()
	valid := json.Valid(data)
	if err == nil {
		if !valid {
			t.Fatalf("decoded %q, which is not valid JSON", data)
		}
		return
	}
	if !errors.Is(err, ErrPoison) {
		t.Fatalf("error %v does not match ErrPoison", err)
	}
	var pe *PoisonError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *PoisonError", err)
	}
	if strings.HasPrefix(pe.Reason, reasonTooDeep) {
		return // reported as soon as seen, before any later syntax error
	}
	if isSyntax(err) == valid {
		t.Fatalf("%q: error %v, but json.Valid = %v", data, err, valid)
	}
}

// checkText holds a decode error to textProblem, the oracle for text: valid
// JSON whose strings are not all valid Unicode text never decodes, and an error
// about text is reported only when some string is not.
func checkText(t *testing.T, data []byte, err error) {
	t.Helper()
	if !json.Valid(data) {
		return
	}
	problem := textProblem(data)
	if err == nil {
		if problem != "" {
			t.Fatalf("decoded %q, but its text has %s", data, problem)
		}
		return
	}
	var pe *PoisonError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *PoisonError", err)
	}
	reason := strings.TrimPrefix(pe.Reason, "payload: ")
	if (reason == reasonBadUTF8 || strings.HasPrefix(reason, reasonLoneSurrogate)) && problem == "" {
		t.Fatalf("%q: error %v, but every string in it is valid text", data, err)
	}
}

// stdFields decodes data with encoding/json, keys kept verbatim.
func stdFields(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", data, err)
	}
	return m
}

// wantString checks that an optional or required string field matches what
// encoding/json read for the member.
func wantString(t *testing.T, m map[string]any, key, got string) {
	t.Helper()
	want, _ := m[key].(string) // absent and null both read as ""
	if got != want {
		t.Fatalf("%s: got %q, encoding/json %q", key, got, want)
	}
}

func wantTime(t *testing.T, m map[string]any, key string, got time.Time) {
	t.Helper()
	s, _ := m[key].(string)
	want, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !got.Equal(want) {
		t.Fatalf("%s: got %v, time.Parse(%q) = %v, %v", key, got, s, want, err)
	}
}

func FuzzDecodeStarted(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeStarted(data)
		checkVerdict(t, data, err)
		checkText(t, data, err)
		if err != nil {
			return
		}
		for name, v := range map[string]string{"result_id": s.ResultID, "request_id": s.RequestID,
			"exec_id": s.ExecID, "pc_id": s.PCID, "manifest_id": s.ManifestID, "version": s.Version} {
			if v == "" {
				t.Fatalf("%s empty after decoding %q", name, data)
			}
		}
		m := stdFields(t, data)
		wantString(t, m, "result_id", s.ResultID)
		wantString(t, m, "request_id", s.RequestID)
		wantString(t, m, "exec_id", s.ExecID)
		wantString(t, m, "pc_id", s.PCID)
		wantString(t, m, "manifest_id", s.ManifestID)
		wantString(t, m, "version", s.Version)
		wantTime(t, m, "started_at", s.StartedAt)
	})
}

func FuzzDecodeResult(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeResult(data)
		checkVerdict(t, data, err)
		checkText(t, data, err)
		if err != nil {
			return
		}
		if r.ResultID == "" || r.RequestID == "" || r.PCID == "" {
			t.Fatalf("required string empty after decoding %q: %+v", data, r)
		}
		m := stdFields(t, data)
		if id, _ := m["result_id"].(string); id == "" {
			if want := LegacyResultID(r.RequestID, r.PCID); r.ResultID != want {
				t.Fatalf("result_id: got %q, want legacy id %q", r.ResultID, want)
			}
		} else {
			wantString(t, m, "result_id", r.ResultID)
		}
		wantString(t, m, "request_id", r.RequestID)
		wantString(t, m, "exec_id", r.ExecID)
		wantString(t, m, "parent_result_id", r.ParentResultID)
		wantString(t, m, "pc_id", r.PCID)
		wantString(t, m, "stdout", r.Stdout)
		wantString(t, m, "stderr", r.Stderr)
		wantString(t, m, "stdout_object", r.StdoutObject)
		wantString(t, m, "stderr_object", r.StderrObject)
		wantString(t, m, "manifest_id", r.ManifestID)
		if code, ok := m["exit_code"].(float64); !ok || code != float64(r.ExitCode) {
			t.Fatalf("exit_code: got %d, encoding/json %v", r.ExitCode, m["exit_code"])
		}
		if skipped, _ := m["skipped"].(bool); skipped != r.Skipped {
			t.Fatalf("skipped: got %v, encoding/json %v", r.Skipped, m["skipped"])
		}
		wantTime(t, m, "started_at", r.StartedAt)
		wantTime(t, m, "finished_at", r.FinishedAt)
	})
}
