package codec

import (
	"unicode/utf16"
	"unicode/utf8"
)

// Byte classes inside a JSON string.
const (
	plainASCII = iota // copied as is
	special           // '"', '\\' or a control character (< 0x20)
	highByte          // >= 0x80: part of a UTF-8 sequence, maybe invalid
)

var strClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c < 0x20 || c == '"' || c == '\\':
			t[c] = special
		case c >= utf8.RuneSelf:
			t[c] = highByte
		}
	}
	return t
}()

// skipString validates and skips the string at s.pos without decoding it.
// Invalid UTF-8 is valid JSON here, as for encoding/json.
func (s *scanner) skipString() {
	d := s.data
	for i := s.pos + 1; i < len(d); {
		if strClass[d[i]] != special {
			i++
			continue
		}
		switch d[i] {
		case '"':
			s.pos = i + 1
			return
		case '\\':
			n := s.escapeLen(i)
			if n == 0 {
				return
			}
			i += n
		default:
			s.syntax(i, "in string literal")
			return
		}
	}
	s.syntax(len(d), "")
}

// escapeLen validates the escape sequence at d[i] == '\\' and returns its
// length, or 0 after recording a syntax error.
func (s *scanner) escapeLen(i int) int {
	d := s.data
	if i+1 >= len(d) {
		s.syntax(i+1, "")
		return 0
	}
	switch d[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		for k := i + 2; k < i+6; k++ {
			if k >= len(d) || hexVal(d[k]) < 0 {
				s.syntax(k, `in \u hexadecimal character escape`)
				return 0
			}
		}
		return 6
	}
	s.syntax(i+1, "in string escape code")
	return 0
}

func hexVal(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// u4 decodes the \uXXXX escape at d[i], or returns -1 if there is none.
func u4(d []byte, i int) rune {
	if i+6 > len(d) || d[i] != '\\' || d[i+1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range d[i+2 : i+6] {
		v := hexVal(c)
		if v < 0 {
			return -1
		}
		r = r<<4 | v
	}
	return r
}

// readKey reads the member name at s.pos. A name without escapes aliases the
// payload (it is compared, never kept, so invalid UTF-8 in it cannot matter: no
// known name has a non-ASCII byte); a name with escapes is decoded into
// s.keyBuf, or onto the heap if it is longer.
func (s *scanner) readKey() ([]byte, bool) {
	d := s.data
	start := s.pos + 1
	for i := start; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return d[start:i], true
		case c == '\\':
			key := s.appendString(s.keyBuf[:0])
			return key, s.fatal == nil
		case c < 0x20:
			s.syntax(i, "in string literal")
			return nil, false
		}
	}
	s.syntax(len(d), "")
	return nil, false
}

// appendString decodes the string at s.pos onto dst exactly as encoding/json
// unquotes: escapes resolved, a valid surrogate pair joined, a lone surrogate
// and each invalid UTF-8 byte replaced by U+FFFD. On a syntax error it records
// s.fatal and returns dst with part of the string appended.
//
// dst is threaded through by value, not kept in the scanner, so that a
// stack-allocated arena stays on the stack.
func (s *scanner) appendString(dst []byte) []byte {
	d := s.data
	i := s.pos + 1
	run := i // start of bytes not yet copied
	for i < len(d) {
		switch strClass[d[i]] {
		case plainASCII:
			i++
			continue
		case highByte:
			if r, size := utf8.DecodeRune(d[i:]); r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, d[run:i]...)
			dst = utf8.AppendRune(dst, utf8.RuneError)
			i++
			run = i
			continue
		}
		switch d[i] {
		case '"':
			s.pos = i + 1
			return append(dst, d[run:i]...)
		case '\\':
			dst = append(dst, d[run:i]...)
			var n int
			if dst, n = s.appendEscape(dst, i); n == 0 {
				return dst
			}
			i += n
			run = i
		default:
			s.syntax(i, "in string literal")
			return dst
		}
	}
	s.syntax(len(d), "")
	return dst
}

// appendEscape decodes the escape at d[i] == '\\' onto dst and returns how
// many bytes it consumed, or 0 after recording a syntax error.
func (s *scanner) appendEscape(dst []byte, i int) ([]byte, int) {
	d := s.data
	if i+1 >= len(d) {
		s.syntax(i+1, "")
		return dst, 0
	}
	var c byte
	switch d[i+1] {
	case '"', '\\', '/':
		c = d[i+1]
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		if s.escapeLen(i) == 0 {
			return dst, 0
		}
		r := u4(d, i)
		if utf16.IsSurrogate(r) {
			// Like encoding/json: join a valid pair, else replace only this
			// half and let the next escape be read on its own.
			if dec := utf16.DecodeRune(r, u4(d, i+6)); dec != utf8.RuneError {
				return utf8.AppendRune(dst, dec), 12
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(dst, r), 6
	default:
		s.syntax(i+1, "in string escape code")
		return dst, 0
	}
	return append(dst, c), 2
}
