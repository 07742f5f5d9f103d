package codec

import (
	"math"
	"strconv"
	"time"
)

// span locates one decoded string value in a scanner's arena.
type span struct{ start, end int }

func (p span) in(s string) string { return s[p.start:p.end] }
func (p span) empty() bool        { return p.start == p.end }

// strRule says what a string member may hold.
type strRule uint8

const (
	required           strRule = iota // a non-empty string
	requiredMayBeEmpty                // a string, "" allowed (stdout, stderr)
	optional                          // a string or null; null and "" mean absent
	optionalDiscard                   // as optional, but the value is not kept
)

// claim marks field f (an index into names, or -1 for an unknown member) as
// seen and reports whether its value is for the caller to read. It skips the
// value itself for an unknown member and for a duplicated known one, which it
// records as a field error.
func (s *scanner) claim(seen *uint32, f int, names []string) bool {
	if f < 0 {
		s.skipValue(1)
		return false
	}
	bit := uint32(1) << f
	if *seen&bit != 0 {
		s.fail(names[f], reasonDuplicate)
		s.skipValue(1)
		return false
	}
	*seen |= bit
	return true
}

// missing returns the error for the first of the fields in want (a bit set of
// indexes into names) that seen lacks, or nil.
func missing(seen, want uint32, names []string) error {
	for f, name := range names {
		if want&(1<<f) != 0 && seen&(1<<f) == 0 {
			return &PoisonError{Field: name, Reason: reasonMissing}
		}
	}
	return nil
}

// fail records a field error unless an earlier one is already recorded.
func (s *scanner) fail(field, reason string) {
	if s.field == nil {
		s.field = &PoisonError{Field: field, Reason: reason}
	}
}

// wrongType skips the value at s.pos and records that it is not of the
// expected type (a phrase like "a string"), naming what it is instead.
func (s *scanner) wrongType(field, expected string) {
	kind := kindOf(s.data[s.pos])
	if kind == "" {
		s.syntax(s.pos, "looking for beginning of value")
		return
	}
	s.fail(field, "expected "+expected+", got "+kind) // before anything skipValue finds inside
	s.skipValue(1)
}

// str reads the string member field under rule, appending its decoded value
// to arena. An absent (null, or "" when optional) value yields an empty span.
func (s *scanner) str(arena []byte, field string, rule strRule) (span, []byte) {
	if s.pos == len(s.data) {
		s.syntax(s.pos, "looking for beginning of value")
		return span{}, arena
	}
	switch s.data[s.pos] {
	case '"':
	case 'n':
		if rule == optional || rule == optionalDiscard {
			s.literal("null")
			return span{}, arena
		}
		s.wrongType(field, "a string")
		return span{}, arena
	default:
		s.wrongType(field, "a string")
		return span{}, arena
	}
	if rule == optionalDiscard {
		s.skipString(field)
		return span{}, arena
	}
	start := len(arena)
	arena = s.appendString(arena, field)
	v := span{start, len(arena)}
	if rule == required && v.empty() && s.fatal == nil {
		s.fail(field, reasonEmpty)
	}
	return v, arena
}

// time reads the required time member field: a string that
// time.Parse(time.RFC3339Nano, ·) accepts and that falls, converted to UTC,
// within years 0000–9999 (see inTimeRange).
func (s *scanner) time(field string) time.Time {
	if s.pos == len(s.data) {
		s.syntax(s.pos, "looking for beginning of value")
		return time.Time{}
	}
	if s.data[s.pos] != '"' {
		s.wrongType(field, "a string")
		return time.Time{}
	}
	var buf [40]byte
	b := s.appendString(buf[:0], field)
	if s.fatal != nil {
		return time.Time{}
	}
	t, ok := parseTime(b)
	switch {
	case !ok:
		s.fail(field, quoteClip(b)+" is not an RFC 3339 time")
	case !inTimeRange(t):
		s.fail(field, quoteClip(b)+" is year "+strconv.Itoa(t.UTC().Year())+" in UTC, outside 0000-9999")
	}
	return t
}

// int32 reads the required member field: an integer literal (no fraction, no
// exponent; "-0" is 0) within int32.
func (s *scanner) int32(field string) int32 {
	if s.pos == len(s.data) {
		s.syntax(s.pos, "looking for beginning of value")
		return 0
	}
	if c := s.data[s.pos]; c != '-' && !isDigit(c) {
		s.wrongType(field, "an integer")
		return 0
	}
	start := s.pos
	integer := s.number()
	if s.fatal != nil {
		return 0
	}
	lit := s.data[start:s.pos]
	digits, neg := lit, lit[0] == '-'
	if neg {
		digits = lit[1:]
	}
	var v int64
	// More than 10 digits is out of range; no leading zeros, by the grammar.
	if integer && len(digits) <= 10 {
		for _, c := range digits {
			v = v*10 + int64(c-'0')
		}
		if neg {
			v = -v
		}
		if v >= math.MinInt32 && v <= math.MaxInt32 {
			return int32(v)
		}
	}
	s.fail(field, rawClip(lit)+" is not an int32")
	return 0
}

// bool reads the optional boolean member field; null means false.
func (s *scanner) bool(field string) bool {
	if s.pos == len(s.data) {
		s.syntax(s.pos, "looking for beginning of value")
		return false
	}
	switch s.data[s.pos] {
	case 't':
		s.literal("true")
		return s.fatal == nil
	case 'f':
		s.literal("false")
		return false
	case 'n':
		s.literal("null")
		return false
	}
	s.wrongType(field, "a boolean")
	return false
}
