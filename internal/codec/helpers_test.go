package codec

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// member is one "key":value pair of a test payload; key is written between
// quotes verbatim (so it may hold escapes) and raw is the value's JSON text.
type member struct{ key, raw string }

// object renders members as a JSON object, in order.
func object(ms ...member) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + m.key + `":` + m.raw)
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// with returns base with key's value replaced by raw, or with the member
// appended when base lacks key.
func with(base []member, key, raw string) []member {
	out := append([]member(nil), base...)
	for i := range out {
		if out[i].key == key {
			out[i].raw = raw
			return out
		}
	}
	return append(out, member{key, raw})
}

// without returns base minus key.
func without(base []member, key string) []member {
	var out []member
	for _, m := range base {
		if m.key != key {
			out = append(out, m)
		}
	}
	return out
}

// plus returns base with extra members appended.
func plus(base []member, extra ...member) []member {
	return append(append([]member(nil), base...), extra...)
}

// poison asserts err is a *PoisonError matching ErrPoison and returns it.
func poison(t *testing.T, err error) *PoisonError {
	t.Helper()
	if err == nil {
		t.Fatal("decode succeeded, want a poison error")
	}
	var pe *PoisonError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *PoisonError", err, err)
	}
	if !errors.Is(err, ErrPoison) {
		t.Fatalf("error %v does not match ErrPoison", err)
	}
	return pe
}

// isSyntax reports whether a decode error says the payload is not JSON at
// all (an empty payload being the degenerate case).
func isSyntax(err error) bool {
	var pe *PoisonError
	return errors.As(err, &pe) && pe.Field == "" &&
		(strings.HasPrefix(pe.Reason, "not JSON: ") || pe.Reason == reasonEmptyLoad)
}

// textProblem is an oracle independent of the scanner: for valid JSON text d
// it returns what makes the first offending string in d not valid Unicode
// text — "invalid UTF-8", or "lone surrogate " and the escape as written —
// or "" when every string is valid. Valid JSON has backslashes only inside
// strings, each starting a two-byte escape or a \uXXXX one, so a plain walk
// over the bytes sees every escape.
func textProblem(d []byte) string {
	hex := func(i int) uint64 { // the \uXXXX at d[i], or 0 if there is none
		if i+6 > len(d) || d[i] != '\\' || d[i+1] != 'u' {
			return 0
		}
		v, _ := strconv.ParseUint(string(d[i+2:i+6]), 16, 32)
		return v
	}
	for i := 0; i < len(d); {
		if d[i] != '\\' {
			r, n := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && n == 1 {
				return "invalid UTF-8"
			}
			i += n
			continue
		}
		if d[i+1] != 'u' {
			i += 2
			continue
		}
		switch v := hex(i); {
		case 0xd800 <= v && v < 0xdc00:
			if lo := hex(i + 6); 0xdc00 <= lo && lo < 0xe000 {
				i += 12
				continue
			}
			return "lone surrogate " + string(d[i:i+6])
		case 0xdc00 <= v && v < 0xe000:
			return "lone surrogate " + string(d[i:i+6])
		}
		i += 6
	}
	return ""
}
