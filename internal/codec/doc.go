// Package codec turns the JSON payload of one JetStream message into a typed
// event — [Started] (stream EVENTS) or [Result] (stream RESULTS) — or into a
// [*PoisonError] that says which field is wrong and why.
//
// The wire contract is /work/shared/domain.md ("Wire format" and "Precise
// meanings"). In short:
//
//   - Keys match case-sensitively; `Result_ID` is an unknown field.
//   - A known field that appears twice is poison, even with equal values.
//     Unknown fields are validated as JSON and ignored, duplicated or not.
//   - Required means present, not null, of the right JSON type and, for
//     strings other than stdout/stderr, not empty.
//   - In optional fields `null` and `""` mean absent; a wrong type is poison.
//   - exit_code is an integer literal within int32 (`1.0` and `1e2` are not).
//   - A time is valid iff time.Parse(time.RFC3339Nano, s) accepts it.
//
// The decoder is a hand-written strict JSON scanner (RFC 8259) rather than
// encoding/json, which matches keys case-insensitively and lets a duplicated
// key overwrite the first. It allocates once per successful decode: every
// string a decoded event holds is a substring of one backing string, so
// keeping any one field keeps all of that event's strings alive (never the
// payload itself). Strings are unescaped exactly as encoding/json does it:
// invalid UTF-8 bytes and lone surrogates become U+FFFD.
//
// Syntax is checked before meaning: a payload that is not valid JSON is
// always reported as such (reason prefixed "not JSON"), whatever else is wrong
// with it; otherwise the first field error in payload order is reported, then
// missing fields. The one exception: nesting deeper than 1000 containers is
// rejected the moment it is seen ("nesting too deep at offset N"), valid JSON
// or not, so a hostile payload cannot exhaust the stack. There is no size
// limit: the transport caps payload size.
package codec
