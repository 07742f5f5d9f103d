package codec

import (
	"errors"
	"strconv"
)

// ErrPoison is matched by errors.Is for every error DecodeStarted and
// DecodeResult return: the payload can never decode, so redelivering it is
// pointless. The caller dead-letters it and terminates the message.
var ErrPoison = errors.New("poison payload")

// PoisonError says why a payload can never decode. It is always returned as a
// *PoisonError and matches ErrPoison under errors.Is.
//
// Field is the wire name of the offending field ("exit_code"), or "" when the
// payload as a whole is wrong (empty, not JSON, not an object, nesting too
// deep, or text that is not valid Unicode outside any known member's value:
// reason "payload: invalid UTF-8" or "payload: lone surrogate \ud800"). Reason
// is short, human-readable and safe to store: any payload text it quotes is
// clipped to a few dozen bytes (and valid UTF-8). Reasons of syntax errors
// start with "not JSON: " and end with " at offset N", N a byte offset into
// the payload.
type PoisonError struct {
	Field  string
	Reason string
}

// Error returns "<field>: <reason>", or just "<reason>" when Field is empty,
// e.g. `exit_code: 1.5 is not an int32` or `empty payload`.
func (e *PoisonError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Is reports whether target is ErrPoison.
func (e *PoisonError) Is(target error) bool { return target == ErrPoison }

// Permanent reports true: the payload can never decode (see package fault).
func (e *PoisonError) Permanent() bool { return true }

// Reasons shared by the decoders.
const (
	reasonMissing   = "missing"
	reasonEmpty     = "must not be empty"
	reasonDuplicate = "duplicated field"
	reasonEmptyLoad = "empty payload"
	reasonTooDeep   = "nesting too deep"

	// A string that is not valid Unicode text, as serde_json rejects it.
	reasonBadUTF8       = "invalid UTF-8"
	reasonLoneSurrogate = "lone surrogate " // followed by the escape, e.g. \ud800
)

// clipLen bounds how much payload text a Reason quotes.
const clipLen = 48

// quoteClip quotes b as a Go string literal, clipped to clipLen bytes.
func quoteClip(b []byte) string {
	if len(b) <= clipLen {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:clipLen])) + "..."
}

// rawClip returns b (a number literal, so ASCII) clipped to clipLen bytes.
func rawClip(b []byte) string {
	if len(b) <= clipLen {
		return string(b)
	}
	return string(b[:clipLen]) + "..."
}

// quoteChar formats the byte c for a syntax error as encoding/json does: a
// printable ASCII byte between single quotes (the single quote itself
// backslash-escaped), anything else as a \xNN escape between single quotes.
func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c >= 0x20 && c < 0x7f:
		return "'" + string(rune(c)) + "'"
	}
	const hex = "0123456789abcdef"
	return `'\x` + string(hex[c>>4]) + string(hex[c&0xf]) + "'"
}
