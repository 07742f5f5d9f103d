package codec

import "strconv"

// maxDepth caps how many containers may nest, the top-level object counting
// as one. encoding/json allows 10000; 1000 is ample for any agent and keeps
// the recursive skip of unknown values shallow.
const maxDepth = 1000

// arenaSize is the stack-allocated capacity of a decoder's string arena, big
// enough that a typical ~200-byte payload never spills to the heap.
const arenaSize = 512

// scanner is a strict, single-pass JSON (RFC 8259) reader specialised for one
// top-level object whose members are read by name.
//
// It keeps two kinds of error apart. fatal is a syntax error (or too deep a
// nesting, or an empty payload): scanning stops at once. field is the first
// error about a member's meaning (wrong type, duplicate, bad time, a string
// that is not valid Unicode text); scanning goes on so that a payload which is
// also not JSON is reported as not JSON.
//
// Decoded string values go to an arena that the decoder owns and threads
// through the value readers (see appendString); at the end it turns the arena
// into one string and hands out substrings of it.
type scanner struct {
	data   []byte
	pos    int // offset of the next unread byte
	open   bool
	fatal  *PoisonError
	field  *PoisonError
	keyBuf [32]byte // room to unescape a member name
}

// next advances to the next member of the top-level object and reports
// whether there is one. On true, key is the member's unescaped name (valid
// until the next call) and s.pos is at the first byte of its value, which the
// caller must consume with exactly one value reader (claim skips it for
// unknown and duplicated members).
func (s *scanner) next() (key []byte, ok bool) {
	if s.fatal != nil {
		return nil, false
	}
	s.skipWS()
	if !s.open {
		if s.pos == len(s.data) {
			s.fatal = &PoisonError{Reason: reasonEmptyLoad}
			return nil, false
		}
		if s.data[s.pos] != '{' {
			s.notObject()
			return nil, false
		}
		s.open = true
		s.pos++
		s.skipWS()
		if s.pos < len(s.data) && s.data[s.pos] == '}' {
			s.pos++
			return nil, false
		}
	} else {
		if s.pos == len(s.data) {
			s.syntax(s.pos, "after object key:value pair")
			return nil, false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipWS()
		case '}':
			s.pos++
			return nil, false
		default:
			s.syntax(s.pos, "after object key:value pair")
			return nil, false
		}
	}
	if s.pos == len(s.data) || s.data[s.pos] != '"' {
		s.syntax(s.pos, "looking for beginning of object key string")
		return nil, false
	}
	if key, ok = s.readKey(); !ok {
		return nil, false
	}
	s.skipWS()
	if s.pos == len(s.data) || s.data[s.pos] != ':' {
		s.syntax(s.pos, "after object key")
		return nil, false
	}
	s.pos++
	s.skipWS()
	return key, true
}

// finish checks that nothing but whitespace follows the top-level object and
// returns the error to report, if any: the syntax error first, then the first
// field error. It must be called once next has returned false.
func (s *scanner) finish() *PoisonError {
	if s.fatal == nil {
		s.skipWS()
		if s.pos != len(s.data) {
			s.syntax(s.pos, "after top-level value")
		}
	}
	if s.fatal != nil {
		return s.fatal
	}
	return s.field
}

// notObject reports a top-level value that is not an object: as not JSON if
// it is not valid JSON either, else as not an object.
func (s *scanner) notObject() {
	start := s.pos
	kind := kindOf(s.data[start])
	if kind == "" {
		s.syntax(start, "looking for beginning of value")
		return
	}
	s.skipValue(0)
	if s.fatal != nil {
		return
	}
	s.skipWS()
	if s.pos != len(s.data) {
		s.syntax(s.pos, "after top-level value")
		return
	}
	s.fatal = &PoisonError{Reason: "not a JSON object: top level is " + article(kind) + " at offset " + strconv.Itoa(start)}
}

// syntax records a syntax error at offset i: an unexpected end of input when
// i is past the data, else the unexpected byte and what was being looked for.
func (s *scanner) syntax(i int, context string) {
	if i >= len(s.data) {
		s.fatal = &PoisonError{Reason: "not JSON: unexpected end of input at offset " + strconv.Itoa(len(s.data))}
		return
	}
	s.fatal = &PoisonError{Reason: "not JSON: invalid character " + quoteChar(s.data[i]) + " " + context + " at offset " + strconv.Itoa(i)}
}

func (s *scanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// kindOf names the JSON type of the value that starts with c, or returns ""
// when no value can start with c.
func kindOf(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || ('0' <= c && c <= '9'):
		return "number"
	}
	return ""
}

func article(kind string) string {
	switch kind {
	case "null":
		return kind
	case "object", "array":
		return "an " + kind
	}
	return "a " + kind
}

// skipValue validates and skips the value at s.pos; depth is the nesting
// depth of the container holding it.
func (s *scanner) skipValue(depth int) {
	if s.pos == len(s.data) {
		s.syntax(s.pos, "looking for beginning of value")
		return
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		s.skipString("")
	case c == '{' || c == '[':
		s.skipContainer(depth + 1)
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		s.number()
	default:
		s.syntax(s.pos, "looking for beginning of value")
	}
}

func (s *scanner) tooDeep(depth int) bool {
	if depth <= maxDepth {
		return false
	}
	s.fatal = &PoisonError{Reason: reasonTooDeep + " at offset " + strconv.Itoa(s.pos)}
	return true
}

// skipContainer validates and skips the object or array at s.pos; depth is
// its own nesting depth.
func (s *scanner) skipContainer(depth int) {
	if s.tooDeep(depth) {
		return
	}
	object := s.data[s.pos] == '{'
	closer, after := byte(']'), "after array element"
	if object {
		closer, after = '}', "after object key:value pair"
	}
	s.pos++ // '{' or '['
	s.skipWS()
	if s.pos < len(s.data) && s.data[s.pos] == closer {
		s.pos++
		return
	}
	for {
		if object {
			if s.pos == len(s.data) || s.data[s.pos] != '"' {
				s.syntax(s.pos, "looking for beginning of object key string")
				return
			}
			if s.skipString(""); s.fatal != nil {
				return
			}
			s.skipWS()
			if s.pos == len(s.data) || s.data[s.pos] != ':' {
				s.syntax(s.pos, "after object key")
				return
			}
			s.pos++
			s.skipWS()
		}
		if s.skipValue(depth); s.fatal != nil {
			return
		}
		s.skipWS()
		if s.pos == len(s.data) {
			s.syntax(s.pos, after)
			return
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipWS()
		case closer:
			s.pos++
			return
		default:
			s.syntax(s.pos, after)
			return
		}
	}
}

// literal consumes lit ("true", "false" or "null"), whose first byte is
// already known to be at s.pos.
func (s *scanner) literal(lit string) {
	for k := 1; k < len(lit); k++ {
		i := s.pos + k
		if i >= len(s.data) || s.data[i] != lit[k] {
			s.syntax(i, "in literal "+lit+" (expecting "+quoteChar(lit[k])+")")
			return
		}
	}
	s.pos += len(lit)
}

// number consumes a number per the RFC 8259 grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and reports whether it is an
// integer literal (no fraction, no exponent).
func (s *scanner) number() (integer bool) {
	d, i := s.data, s.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	default:
		s.syntax(i, "in numeric literal")
		return false
	}
	integer = true
	if i < len(d) && d[i] == '.' {
		integer = false
		i++
		if i == len(d) || !isDigit(d[i]) {
			s.syntax(i, "after decimal point in numeric literal")
			return false
		}
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		integer = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i == len(d) || !isDigit(d[i]) {
			s.syntax(i, "in exponent of numeric literal")
			return false
		}
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	s.pos = i
	return integer
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
