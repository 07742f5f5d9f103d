package codec

import (
	"errors"
	"strings"
	"testing"
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
