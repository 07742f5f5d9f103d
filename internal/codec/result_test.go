package codec

import (
	"strings"
	"testing"
	"time"
)

// smallestLegacy is the smallest legacy ExecResult domain.md says must decode.
const smallestLegacy = `{"request_id":"r","pc_id":"x","exit_code":0,"stdout":"","stderr":"","started_at":"2026-05-16T00:00:00Z","finished_at":"2026-05-16T00:00:00Z"}`

// legacyRX is the UUID v5 (OID namespace) of
// "kanade-issue-19/legacy-result-id:r:x", computed independently with
// python3 -c 'import uuid; print(uuid.uuid5(uuid.NAMESPACE_OID, "kanade-issue-19/legacy-result-id:r:x"))'.
const legacyRX = "0fa0310d-c039-5679-ac84-9f227050a1bb"

var (
	t0 = time.Date(2026, 5, 16, 0, 0, 0, 0, time.UTC)
	t1 = time.Date(2026, 5, 16, 0, 0, 1, 500000000, time.UTC)
)

// fullResult is a result with every member set, in the base form the table
// below varies.
var fullResult = []member{
	{"result_id", `"res-1"`},
	{"request_id", `"r"`},
	{"exec_id", `"exec-1"`},
	{"parent_result_id", `"parent-1"`},
	{"pc_id", `"x"`},
	{"exit_code", `3`},
	{"skipped", `true`},
	{"stdout", `"out"`},
	{"stderr", `"err"`},
	{"started_at", `"2026-05-16T00:00:00Z"`},
	{"finished_at", `"2026-05-16T00:00:01.5Z"`},
	{"stdout_object", `"obj-out"`},
	{"stderr_object", `"obj-err"`},
	{"manifest_id", `"inventory-hw"`},
	{"collect_object", `"obj-collect"`},
}

var fullWant = Result{
	ResultID: "res-1", RequestID: "r", ExecID: "exec-1", ParentResultID: "parent-1", PCID: "x",
	ExitCode: 3, Skipped: true, Stdout: "out", Stderr: "err", StartedAt: t0, FinishedAt: t1,
	StdoutObject: "obj-out", StderrObject: "obj-err", ManifestID: "inventory-hw",
}

// legacyBase is smallestLegacy as members.
var legacyBase = []member{
	{"request_id", `"r"`},
	{"pc_id", `"x"`},
	{"exit_code", `0`},
	{"stdout", `""`},
	{"stderr", `""`},
	{"started_at", `"2026-05-16T00:00:00Z"`},
	{"finished_at", `"2026-05-16T00:00:00Z"`},
}

var legacyWant = Result{ResultID: legacyRX, RequestID: "r", PCID: "x", StartedAt: t0, FinishedAt: t0}

// edit returns a copy of want changed by f.
func edit(want Result, f func(*Result)) Result {
	f(&want)
	return want
}

func sameResult(got, want Result) bool {
	if !got.StartedAt.Equal(want.StartedAt) || !got.FinishedAt.Equal(want.FinishedAt) {
		return false
	}
	got.StartedAt, got.FinishedAt = want.StartedAt, want.FinishedAt
	return got == want
}

func TestDecodeResultAccepts(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    Result
	}{
		{"smallest legacy result", []byte(smallestLegacy), legacyWant},
		{"every member set", object(fullResult...), fullWant},
		{"members in any order", object(append(fullResult[8:], fullResult[:8]...)...), fullWant},
		{"whitespace everywhere", []byte(" \t\r\n{ \"request_id\" : \"r\" , \"pc_id\":\"x\",\"exit_code\" :0,\"stdout\":\"\",\"stderr\":\"\",\"started_at\":\"2026-05-16T00:00:00Z\",\"finished_at\":\"2026-05-16T00:00:00Z\"\n}\n\t "), legacyWant},

		{"result_id empty derives legacy id", object(with(legacyBase, "result_id", `""`)...), legacyWant},
		{"result_id null derives legacy id", object(with(legacyBase, "result_id", `null`)...), legacyWant},
		{"legacy id of other names", object(with(with(legacyBase, "request_id", `"req-1"`), "pc_id", `"minipc"`)...),
			edit(legacyWant, func(r *Result) {
				r.RequestID, r.PCID, r.ResultID = "req-1", "minipc", "722f75c0-00a3-5b49-9373-14e030183bcc"
			})},

		{"exec_id null is absent", object(with(fullResult, "exec_id", `null`)...), edit(fullWant, func(r *Result) { r.ExecID = "" })},
		{"exec_id empty is absent", object(with(fullResult, "exec_id", `""`)...), edit(fullWant, func(r *Result) { r.ExecID = "" })},
		{"parent_result_id null is absent", object(with(fullResult, "parent_result_id", `null`)...), edit(fullWant, func(r *Result) { r.ParentResultID = "" })},
		{"stdout_object null is absent", object(with(fullResult, "stdout_object", `null`)...), edit(fullWant, func(r *Result) { r.StdoutObject = "" })},
		{"stderr_object empty is absent", object(with(fullResult, "stderr_object", `""`)...), edit(fullWant, func(r *Result) { r.StderrObject = "" })},
		{"manifest_id null is absent", object(with(fullResult, "manifest_id", `null`)...), edit(fullWant, func(r *Result) { r.ManifestID = "" })},
		{"collect_object null", object(with(fullResult, "collect_object", `null`)...), fullWant},
		{"collect_object absent", object(without(fullResult, "collect_object")...), fullWant},

		{"skipped false", object(with(fullResult, "skipped", `false`)...), edit(fullWant, func(r *Result) { r.Skipped = false })},
		{"skipped null", object(with(fullResult, "skipped", `null`)...), edit(fullWant, func(r *Result) { r.Skipped = false })},

		{"exit_code -1", object(with(legacyBase, "exit_code", `-1`)...), edit(legacyWant, func(r *Result) { r.ExitCode = -1 })},
		{"exit_code min int32", object(with(legacyBase, "exit_code", `-2147483648`)...), edit(legacyWant, func(r *Result) { r.ExitCode = -2147483648 })},
		{"exit_code max int32", object(with(legacyBase, "exit_code", `2147483647`)...), edit(legacyWant, func(r *Result) { r.ExitCode = 2147483647 })},
		{"exit_code -0 is 0", object(with(legacyBase, "exit_code", `-0`)...), legacyWant},
		{"exit_code 127", object(with(legacyBase, "exit_code", `127`)...), edit(legacyWant, func(r *Result) { r.ExitCode = 127 })},

		{"unknown members ignored", object(plus(legacyBase, member{"agent", `{"a":[1,2.5e-3,{"b":null}],"c":"\u00e9"}`}, member{"n", `-0.0E+12`})...), legacyWant},
		{"unknown member duplicated", object(plus(legacyBase, member{"zz", `1`}, member{"zz", `[true,false]`})...), legacyWant},
		{"keys are case-sensitive", object(plus(legacyBase, member{"Result_ID", `"ignored"`}, member{"EXIT_CODE", `"x"`}, member{"Skipped", `true`})...), legacyWant},
		{"escaped key matches", object(plus(legacyBase, member{`result\u005fid`, `"res-9"`}, member{`\u0073kipped`, `true`})...),
			edit(legacyWant, func(r *Result) { r.ResultID, r.Skipped = "res-9", true })},
		{"escaped key with escaped long name is unknown", object(plus(legacyBase, member{`a-very-long-unknown-member-name-\u00e9-beyond-the-key-buffer`, `1`})...), legacyWant},

		{"string escapes", object(with(legacyBase, "stdout", `"a\nb\t\"\\\/\b\f\r\u00e9\u20AC"`)...),
			edit(legacyWant, func(r *Result) { r.Stdout = "a\nb\t\"\\/\b\f\ré€" })},
		{"surrogate pair joined", object(with(legacyBase, "stdout", `"\ud83d\ude00!"`)...), edit(legacyWant, func(r *Result) { r.Stdout = "😀!" })},
		{"surrogate pair in upper case", object(with(legacyBase, "stdout", `"\uD83D\uDE00"`)...), edit(legacyWant, func(r *Result) { r.Stdout = "😀" })},
		{"surrogate pairs back to back", object(with(legacyBase, "stdout", `"\ud83d\ude00\ud83d\ude01"`)...), edit(legacyWant, func(r *Result) { r.Stdout = "😀😁" })},
		{"U+FFFD itself kept, escaped or not", object(with(legacyBase, "stdout", `"\ufffd�"`)...), edit(legacyWant, func(r *Result) { r.Stdout = "\uFFFD\uFFFD" })},
		{"valid UTF-8 kept", object(with(legacyBase, "pc_id", `"PC-日本"`)...),
			edit(legacyWant, func(r *Result) { r.PCID, r.ResultID = "PC-日本", LegacyResultID("r", "PC-日本") })},
		{"four-byte UTF-8 up to U+10FFFF kept", object(with(legacyBase, "stdout", "\"😀\xf4\x8f\xbf\xbf\"")...), edit(legacyWant, func(r *Result) { r.Stdout = "😀\U0010FFFF" })},
		{"non-ASCII unknown member name", object(plus(legacyBase, member{"日本", `"é"`}, member{`\u00e9\ud83d\ude00`, `1`})...), legacyWant},
		{"surrogate pair in an unknown value", object(plus(legacyBase, member{"zz", `["\ud83d\ude00"]`})...), legacyWant},
		{"large stdout", object(with(legacyBase, "stdout", `"`+strings.Repeat("0123456789abcdef", 20000)+`"`)...),
			edit(legacyWant, func(r *Result) { r.Stdout = strings.Repeat("0123456789abcdef", 20000) })},

		{"time with offset", object(with(legacyBase, "finished_at", `"2026-05-16T09:00:01.5+09:00"`)...), edit(legacyWant, func(r *Result) { r.FinishedAt = t1 })},
		{"time with nine fraction digits", object(with(legacyBase, "finished_at", `"2026-05-16T00:00:01.500000000Z"`)...), edit(legacyWant, func(r *Result) { r.FinishedAt = t1 })},
		{"time with escaped characters", object(with(legacyBase, "finished_at", `"2026-05-16T00:00:01.5\u005a"`)...), edit(legacyWant, func(r *Result) { r.FinishedAt = t1 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeResult(tt.payload)
			if err != nil {
				t.Fatalf("DecodeResult(%s): %v", tt.payload, err)
			}
			if !sameResult(got, tt.want) {
				t.Fatalf("DecodeResult(%.200s)\n got %+v\nwant %+v", tt.payload, got, tt.want)
			}
		})
	}
}

func TestDecodeResultRejects(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    string // the exact Error()
	}{
		{"zero bytes", []byte{}, "empty payload"},
		{"only whitespace", []byte(" \r\n\t"), "empty payload"},
		{"not JSON", []byte("nope"), "not JSON: invalid character 'o' in literal null (expecting 'u') at offset 1"},
		{"not a value", []byte("<xml/>"), "not JSON: invalid character '<' looking for beginning of value at offset 0"},
		{"truncated", []byte(smallestLegacy[:12]), "not JSON: unexpected end of input at offset 12"},
		{"truncated inside a literal", []byte(`{"skipped":tr`), "not JSON: unexpected end of input at offset 13"},
		{"trailing garbage", []byte(smallestLegacy + " x"), "not JSON: invalid character 'x' after top-level value at offset 142"},
		{"two objects", []byte(smallestLegacy + "{}"), "not JSON: invalid character '{' after top-level value at offset 141"},
		{"trailing comma", []byte(`{"pc_id":"x",}`), `not JSON: invalid character '}' looking for beginning of object key string at offset 13`},
		{"single quotes", []byte(`{'pc_id':"x"}`), `not JSON: invalid character '\'' looking for beginning of object key string at offset 1`},
		{"top level array", []byte(` [1, 2]`), "not a JSON object: top level is an array at offset 1"},
		{"top level string", []byte(`"x"`), "not a JSON object: top level is a string at offset 0"},
		{"top level null", []byte(`null`), "not a JSON object: top level is null at offset 0"},
		{"top level invalid array", []byte(`[1,]`), "not JSON: invalid character ']' looking for beginning of value at offset 3"},
		{"byte order mark", []byte("\xef\xbb\xbf" + smallestLegacy), `not JSON: invalid character '\xef' looking for beginning of value at offset 0`},
		{"raw control character in string", object(with(legacyBase, "stdout", "\"a\nb\"")...), `not JSON: invalid character '\x0a' in string literal at offset 55`},
		{"bad escape", object(with(legacyBase, "stdout", `"\x41"`)...), `not JSON: invalid character 'x' in string escape code at offset 55`},
		{"bad unicode escape", object(with(legacyBase, "stdout", `"\u12G4"`)...), `not JSON: invalid character 'G' in \u hexadecimal character escape at offset 58`},
		{"leading zero", object(with(legacyBase, "exit_code", `01`)...), "not JSON: invalid character '1' after object key:value pair at offset 43"},
		{"plus sign", object(with(legacyBase, "exit_code", `+1`)...), "not JSON: invalid character '+' looking for beginning of value at offset 42"},
		{"syntax error beats field error", []byte(`{"exit_code":1.5,`), "not JSON: unexpected end of input at offset 17"},
		{"nesting too deep", object(plus(legacyBase, member{"deep", strings.Repeat("[", 1000) + strings.Repeat("]", 1000)})...), "nesting too deep at offset 1147"},

		{"exit_code fraction", object(with(legacyBase, "exit_code", `1.5`)...), "exit_code: 1.5 is not an int32"},
		{"exit_code 1.0", object(with(legacyBase, "exit_code", `1.0`)...), "exit_code: 1.0 is not an int32"},
		{"exit_code exponent", object(with(legacyBase, "exit_code", `1e2`)...), "exit_code: 1e2 is not an int32"},
		{"exit_code 1e10", object(with(legacyBase, "exit_code", `1e10`)...), "exit_code: 1e10 is not an int32"},
		{"exit_code above int32", object(with(legacyBase, "exit_code", `2147483648`)...), "exit_code: 2147483648 is not an int32"},
		{"exit_code below int32", object(with(legacyBase, "exit_code", `-2147483649`)...), "exit_code: -2147483649 is not an int32"},
		{"exit_code huge", object(with(legacyBase, "exit_code", strings.Repeat("9", 100))...), "exit_code: " + strings.Repeat("9", 48) + "... is not an int32"},
		{"exit_code string", object(with(legacyBase, "exit_code", `"1"`)...), "exit_code: expected an integer, got string"},
		{"exit_code null", object(with(legacyBase, "exit_code", `null`)...), "exit_code: expected an integer, got null"},
		{"exit_code boolean", object(with(legacyBase, "exit_code", `true`)...), "exit_code: expected an integer, got boolean"},

		{"request_id missing", object(without(legacyBase, "request_id")...), "request_id: missing"},
		{"pc_id missing", object(without(legacyBase, "pc_id")...), "pc_id: missing"},
		{"exit_code missing", object(without(legacyBase, "exit_code")...), "exit_code: missing"},
		{"stdout missing", object(without(legacyBase, "stdout")...), "stdout: missing"},
		{"stderr missing", object(without(legacyBase, "stderr")...), "stderr: missing"},
		{"started_at missing", object(without(legacyBase, "started_at")...), "started_at: missing"},
		{"finished_at missing", object(without(legacyBase, "finished_at")...), "finished_at: missing"},
		{"empty object", []byte(`{}`), "request_id: missing"},
		{"case-mismatched key is not the field", object(plus(without(legacyBase, "pc_id"), member{"PC_ID", `"x"`})...), "pc_id: missing"},

		{"request_id empty", object(with(legacyBase, "request_id", `""`)...), "request_id: must not be empty"},
		{"pc_id empty", object(with(legacyBase, "pc_id", `""`)...), "pc_id: must not be empty"},
		{"request_id null", object(with(legacyBase, "request_id", `null`)...), "request_id: expected a string, got null"},
		{"stdout null", object(with(legacyBase, "stdout", `null`)...), "stdout: expected a string, got null"},
		{"stderr number", object(with(legacyBase, "stderr", `0`)...), "stderr: expected a string, got number"},
		{"pc_id object", object(with(legacyBase, "pc_id", `{"a":1}`)...), "pc_id: expected a string, got object"},

		{"skipped string", object(with(legacyBase, "skipped", `"yes"`)...), "skipped: expected a boolean, got string"},
		{"skipped number", object(with(legacyBase, "skipped", `1`)...), "skipped: expected a boolean, got number"},
		{"result_id number", object(with(legacyBase, "result_id", `7`)...), "result_id: expected a string, got number"},
		{"exec_id boolean", object(with(legacyBase, "exec_id", `false`)...), "exec_id: expected a string, got boolean"},
		{"parent_result_id array", object(with(legacyBase, "parent_result_id", `[]`)...), "parent_result_id: expected a string, got array"},
		{"stdout_object number", object(with(legacyBase, "stdout_object", `1`)...), "stdout_object: expected a string, got number"},
		{"stderr_object object", object(with(legacyBase, "stderr_object", `{}`)...), "stderr_object: expected a string, got object"},
		{"manifest_id number", object(with(legacyBase, "manifest_id", `1`)...), "manifest_id: expected a string, got number"},
		{"collect_object object", object(with(legacyBase, "collect_object", `{"k":"v"}`)...), "collect_object: expected a string, got object"},

		{"exec_id duplicated", object(plus(legacyBase, member{"exec_id", `"a"`}, member{"exec_id", `"b"`})...), "exec_id: duplicated field"},
		{"duplicate with equal values", object(plus(legacyBase, member{"pc_id", `"x"`})...), "pc_id: duplicated field"},
		{"duplicate nulls", object(plus(legacyBase, member{"skipped", `null`}, member{"skipped", `null`})...), "skipped: duplicated field"},
		{"duplicate through an escape", object(plus(legacyBase, member{`pc\u005fid`, `"x"`})...), "pc_id: duplicated field"},
		{"collect_object duplicated", object(plus(legacyBase, member{"collect_object", `"a"`}, member{"collect_object", `"a"`})...), "collect_object: duplicated field"},

		{"time words", object(with(legacyBase, "started_at", `"yesterday"`)...), `started_at: "yesterday" is not an RFC 3339 time`},
		{"time date only", object(with(legacyBase, "started_at", `"2026-05-16"`)...), `started_at: "2026-05-16" is not an RFC 3339 time`},
		{"time no zone", object(with(legacyBase, "finished_at", `"2026-05-16T00:00:00"`)...), `finished_at: "2026-05-16T00:00:00" is not an RFC 3339 time`},
		{"time space separator", object(with(legacyBase, "finished_at", `"2026-05-16 00:00:00Z"`)...), `finished_at: "2026-05-16 00:00:00Z" is not an RFC 3339 time`},
		{"time lowercase z", object(with(legacyBase, "finished_at", `"2026-05-16T00:00:00z"`)...), `finished_at: "2026-05-16T00:00:00z" is not an RFC 3339 time`},
		{"time Feb 30", object(with(legacyBase, "finished_at", `"2026-02-30T00:00:00Z"`)...), `finished_at: "2026-02-30T00:00:00Z" is not an RFC 3339 time`},
		{"time empty", object(with(legacyBase, "finished_at", `""`)...), `finished_at: "" is not an RFC 3339 time`},
		{"time null", object(with(legacyBase, "finished_at", `null`)...), `finished_at: expected a string, got null`},
		{"time number", object(with(legacyBase, "started_at", `1747353600`)...), `started_at: expected a string, got number`},
		{"time long junk clipped", object(with(legacyBase, "started_at", `"`+strings.Repeat("x", 100)+`"`)...), `started_at: "` + strings.Repeat("x", 48) + `"... is not an RFC 3339 time`},

		{"pc_id invalid UTF-8", object(with(legacyBase, "pc_id", "\"PC-\xc3\x28\"")...), "pc_id: invalid UTF-8"},
		{"stderr invalid bytes", object(with(legacyBase, "stderr", "\"a\xff\xfeb\"")...), "stderr: invalid UTF-8"},
		{"stdout sequence cut at the end", object(with(legacyBase, "stdout", "\"ok \xe2\x82\"")...), "stdout: invalid UTF-8"},
		{"stdout UTF-8 of a surrogate", object(with(legacyBase, "stdout", "\"\xed\xa0\x80\"")...), "stdout: invalid UTF-8"},
		{"stdout overlong encoding", object(with(legacyBase, "stdout", "\"\xc0\xaf\"")...), "stdout: invalid UTF-8"},
		{"stdout beyond U+10FFFF", object(with(legacyBase, "stdout", "\"\xf4\x90\x80\x80\"")...), "stdout: invalid UTF-8"},
		{"request_id invalid UTF-8 after an escape", object(with(legacyBase, "request_id", "\"r\\n\xff\"")...), "request_id: invalid UTF-8"},
		{"optional exec_id invalid UTF-8", object(with(legacyBase, "exec_id", "\"\x80\"")...), "exec_id: invalid UTF-8"},
		{"discarded collect_object invalid UTF-8", object(with(legacyBase, "collect_object", "\"c/\xff\"")...), "collect_object: invalid UTF-8"},
		{"time invalid UTF-8", object(with(legacyBase, "finished_at", "\"2026-05-16T00:00:00Z\xff\"")...), "finished_at: invalid UTF-8"},
		{"unknown value invalid UTF-8", object(plus(legacyBase, member{"agent", "\"\xff\""})...), "payload: invalid UTF-8"},
		{"invalid UTF-8 deep in an unknown value", object(plus(legacyBase, member{"agent", "{\"a\":[1,{\"b\":\"\xfe\"}]}"})...), "payload: invalid UTF-8"},
		{"invalid UTF-8 in a nested name", object(plus(legacyBase, member{"agent", "{\"\xff\":1}"})...), "payload: invalid UTF-8"},
		{"invalid UTF-8 in a member name", object(plus(legacyBase, member{"pc_id\xff", `"y"`})...), "payload: invalid UTF-8"},
		{"invalid UTF-8 in an escaped member name", object(plus(legacyBase, member{"\\u0041\xff", `1`})...), "payload: invalid UTF-8"},
		{"invalid UTF-8 in a duplicated unknown member", object(plus(legacyBase, member{"zz", `1`}, member{"zz", "\"\xff\""})...), "payload: invalid UTF-8"},

		{"lone high surrogate", object(with(legacyBase, "stdout", `"a\ud83db"`)...), `stdout: lone surrogate \ud83d`},
		{"lone high surrogate at the end", object(with(legacyBase, "pc_id", `"x\ud800"`)...), `pc_id: lone surrogate \ud800`},
		{"lone low surrogate", object(with(legacyBase, "pc_id", `"\udc00"`)...), `pc_id: lone surrogate \udc00`},
		{"lone surrogate quoted as written", object(with(legacyBase, "stderr", `"\uDBFF"`)...), `stderr: lone surrogate \uDBFF`},
		{"reversed pair", object(with(legacyBase, "stdout", `"\ude00\ud83d"`)...), `stdout: lone surrogate \ude00`},
		{"high surrogate then non-surrogate escape", object(with(legacyBase, "stdout", `"\ud83d\u0041"`)...), `stdout: lone surrogate \ud83d`},
		{"high surrogate then another escape", object(with(legacyBase, "stdout", `"\ud83d\n"`)...), `stdout: lone surrogate \ud83d`},
		{"two high surrogates then a low one", object(with(legacyBase, "stdout", `"\ud800\ud800\udc00"`)...), `stdout: lone surrogate \ud800`},
		{"pair then lone low", object(with(legacyBase, "stdout", `"\ud83d\ude00\ude00"`)...), `stdout: lone surrogate \ude00`},
		{"lone surrogate in optional result_id", object(with(legacyBase, "result_id", `"\ud800"`)...), `result_id: lone surrogate \ud800`},
		{"lone surrogate in discarded collect_object", object(with(legacyBase, "collect_object", `"\udfff"`)...), `collect_object: lone surrogate \udfff`},
		{"lone surrogate in a time", object(with(legacyBase, "started_at", `"\ud800"`)...), `started_at: lone surrogate \ud800`},
		{"lone surrogate in an unknown value", object(plus(legacyBase, member{"agent", `{"a":["\ud800"]}`})...), `payload: lone surrogate \ud800`},
		{"lone surrogate in a member name", object(plus(legacyBase, member{`\udc00`, `1`})...), `payload: lone surrogate \udc00`},

		{"wrong type reported before bad text inside", object(with(legacyBase, "pc_id", "[\"\xff\"]")...), "pc_id: expected a string, got array"},
		{"duplicate reported before bad text inside", object(plus(legacyBase, member{"pc_id", "\"\xff\""})...), "pc_id: duplicated field"},
		{"bad text in payload order with other field errors", object(plus(with(legacyBase, "exit_code", `1.5`), member{"zz", "\"\xff\""})...), "exit_code: 1.5 is not an int32"},
		{"bad text before a later field error", object(append([]member{{"zz", "\"\xff\""}}, with(legacyBase, "exit_code", `1.5`)...)...), "payload: invalid UTF-8"},
		{"bad text reported before missing", object(with(without(legacyBase, "pc_id"), "stdout", "\"\xff\"")...), "stdout: invalid UTF-8"},
		{"syntax error beats invalid UTF-8", []byte("{\"pc_id\":\"\xff\","), "not JSON: unexpected end of input at offset 13"},
		{"syntax error beats lone surrogate", []byte(`{"pc_id":"\ud800\u12G4"}`), `not JSON: invalid character 'G' in \u hexadecimal character escape at offset 20`},
		{"not an object beats bad text", []byte("\"\xff\""), "not a JSON object: top level is a string at offset 0"},

		{"time in year 10000 in UTC", object(with(legacyBase, "finished_at", `"9999-12-31T23:59:59-23:59"`)...),
			`finished_at: "9999-12-31T23:59:59-23:59" is year 10000 in UTC, outside 0000-9999`},
		{"time in year -1 in UTC", object(with(legacyBase, "started_at", `"0000-01-01T00:00:00+01:00"`)...),
			`started_at: "0000-01-01T00:00:00+01:00" is year -1 in UTC, outside 0000-9999`},

		{"first field error in payload order wins", object(with(with(legacyBase, "skipped", `1`), "exit_code", `1.5`)...), "exit_code: 1.5 is not an int32"},
		{"field error beats missing", object(with(without(legacyBase, "pc_id"), "stdout", `1`)...), "stdout: expected a string, got number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeResult(tt.payload)
			if got := poison(t, err).Error(); got != tt.want {
				t.Fatalf("DecodeResult(%.200s) error\n got %s\nwant %s", tt.payload, got, tt.want)
			}
		})
	}
}

func TestPoisonErrorFieldAndReason(t *testing.T) {
	_, err := DecodeResult(object(with(legacyBase, "exit_code", `1.5`)...))
	pe := poison(t, err)
	if pe.Field != "exit_code" || pe.Reason != "1.5 is not an int32" {
		t.Fatalf("got Field %q Reason %q", pe.Field, pe.Reason)
	}
	_, err = DecodeResult(nil)
	if pe := poison(t, err); pe.Field != "" || pe.Error() != "empty payload" {
		t.Fatalf("got Field %q Error %q", pe.Field, pe.Error())
	}
}

func TestLegacyResultID(t *testing.T) {
	tests := []struct{ requestID, pcID, want string }{
		{"r", "x", legacyRX},
		{"req-1", "minipc", "722f75c0-00a3-5b49-9373-14e030183bcc"},
		{"é", "PC-日本", "571b78c6-697a-52cc-8914-d6ecf2b21259"},
		{strings.Repeat("r", 200), "x", LegacyResultID(strings.Repeat("r", 200), "x")}, // longer than the stack buffer
	}
	for _, tt := range tests {
		if got := LegacyResultID(tt.requestID, tt.pcID); got != tt.want {
			t.Fatalf("LegacyResultID(%q, %q) = %s, want %s", tt.requestID, tt.pcID, got, tt.want)
		}
		if got := LegacyResultID(tt.requestID, tt.pcID); len(got) != 36 || got[14] != '5' || strings.ToLower(got) != got {
			t.Fatalf("LegacyResultID(%q, %q) = %s: not a lowercase v5 UUID", tt.requestID, tt.pcID, got)
		}
	}
}
