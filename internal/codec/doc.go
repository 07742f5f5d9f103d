// Package codec turns the JSON payload of one JetStream message into a typed
// event — [Started] (stream EVENTS) or [Result] (stream RESULTS) — or into a
// [*PoisonError] that says which field is wrong and why.
//
// The wire contract is docs/contract.md ("Wire format" and "Precise
// meanings"). In short:
//
//   - Keys match case-sensitively; `Result_ID` is an unknown field.
//   - A known field that appears twice is poison, even with equal values.
//     Unknown fields are validated as JSON and ignored, duplicated or not.
//   - Required means present, not null, of the right JSON type and, for
//     strings other than stdout/stderr, not empty.
//   - In optional fields `null` and `""` mean absent; a wrong type is poison.
//   - exit_code is an integer literal within int32 (`1.0` and `1e2` are not).
//   - A time is valid iff time.Parse(time.RFC3339Nano, s) accepts it and,
//     converted to UTC, it falls within years 0000–9999, where its stored
//     text (TimeLayout) is fixed-width: "9999-12-31T23:59:59-23:59" (year
//     10000 in UTC) and "0000-01-01T00:00:00+01:00" (year -1) are poison.
//   - The payload must be valid Unicode text: invalid UTF-8 in any string —
//     a known member's value, a member name, anything inside an unknown
//     member's value — is poison, and so is a lone surrogate escape
//     ("\ud800", or a high surrogate not followed at once by a low one).
//     serde_json (the original decoder) rejects both in every string it
//     decodes; it skips unknown values unchecked, which this decoder does not.
//     The reason names the member when the string is a known member's value
//     ("pc_id: invalid UTF-8", "pc_id: lone surrogate \ud800"), else the
//     payload ("payload: invalid UTF-8").
//
// The decoder is a hand-written strict JSON scanner (RFC 8259) rather than
// encoding/json, which matches keys case-insensitively and lets a duplicated
// key overwrite the first. It allocates once per successful decode: every
// string a decoded event holds is a substring of one backing string, so
// keeping any one field keeps all of that event's strings alive (never the
// payload itself). Strings are unescaped as encoding/json does it, a
// surrogate pair escape ("\ud83d\ude00") joined into its one code point; but
// where encoding/json would put U+FFFD in place of invalid UTF-8 or a lone
// surrogate — changing a host name that is stored verbatim — the payload is
// poison. Such text is a field error, not a syntax error (encoding/json and
// json.Valid accept it), so it is reported in payload order with the others.
//
// Syntax is checked before meaning: a payload that is not valid JSON is
// always reported as such (reason prefixed "not JSON"), whatever else is wrong
// with it; otherwise the first field error in payload order is reported, then
// missing fields. The one exception: nesting deeper than 1000 containers is
// rejected the moment it is seen ("nesting too deep at offset N"), valid JSON
// or not, so a hostile payload cannot exhaust the stack. There is no size
// limit: the transport caps payload size.
package codec
