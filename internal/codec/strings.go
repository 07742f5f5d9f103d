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
// Its text is checked as if decoded: invalid UTF-8 or a lone surrogate escape
// is recorded (see badText) against field, the member whose value it is, or ""
// for a member name or anything inside an unknown member's value.
func (s *scanner) skipString(field string) {
	d := s.data
	for i := s.pos + 1; ; {
		for i < len(d) && strClass[d[i]] == plainASCII { // as in appendString
			i++
		}
		if i >= len(d) {
			break
		}
		if strClass[d[i]] == highByte {
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				s.badText(field, reasonBadUTF8)
			}
			i += size
			continue
		}
		switch d[i] {
		case '"':
			s.pos = i + 1
			return
		case '\\':
			n := s.escapeLen(i, field)
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
// length, or 0 after recording a syntax error. A high surrogate escape
// followed by a low one is one escape of length 12; a surrogate escape without
// its other half is recorded (see badText) against field, and its length is 6
// so that scanning goes on.
func (s *scanner) escapeLen(i int, field string) int {
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
		r := u4(d, i)
		if !utf16.IsSurrogate(r) {
			return 6
		}
		if r < 0xdc00 { // a high surrogate: a low one must follow at once
			if lo := u4(d, i+6); 0xdc00 <= lo && lo < 0xe000 {
				return 12
			}
		}
		s.badText(field, reasonLoneSurrogate+string(d[i:i+6]))
		return 6
	}
	s.syntax(i+1, "in string escape code")
	return 0
}

// badText records that a string is not valid Unicode text, reason saying why,
// as a field error: against field when the string is a known member's value,
// else (field "") against the payload as a whole, as "payload: <reason>". It
// is not a syntax error, since encoding/json accepts such text, so a later
// syntax error still takes precedence.
func (s *scanner) badText(field, reason string) {
	if field == "" {
		s.fail("", "payload: "+reason)
		return
	}
	s.fail(field, reason)
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
// payload (it is compared, never kept); a name with escapes is decoded into
// s.keyBuf, or onto the heap if it is longer. Either way its text is checked
// like any string's; a name is never a known member's value, so bad text in it
// is the payload's.
func (s *scanner) readKey() ([]byte, bool) {
	d := s.data
	start := s.pos + 1
	ascii := true
	for i := start; ; i++ {
		for i < len(d) && strClass[d[i]] == plainASCII { // as in appendString
			i++
		}
		if i >= len(d) {
			break
		}
		switch c := d[i]; {
		case c == '"':
			if !ascii && !utf8.Valid(d[start:i]) {
				s.badText("", reasonBadUTF8)
			}
			s.pos = i + 1
			return d[start:i], true
		case c == '\\':
			key := s.appendString(s.keyBuf[:0], "")
			return key, s.fatal == nil
		case c < 0x20:
			s.syntax(i, "in string literal")
			return nil, false
		}
		ascii = false // a high byte
	}
	s.syntax(len(d), "")
	return nil, false
}

// appendString decodes the string at s.pos onto dst: escapes resolved and a
// surrogate pair joined into its one code point. Unlike encoding/json, which
// puts U+FFFD in their place, it records invalid UTF-8 and a lone surrogate
// escape (see badText) against field, the member whose value it is ("" for a
// member name); what it appends for them is then never used. On a syntax
// error it records s.fatal and returns dst with part of the string appended.
//
// dst is threaded through by value, not kept in the scanner, so that a
// stack-allocated arena stays on the stack.
func (s *scanner) appendString(dst []byte, field string) []byte {
	d := s.data
	i := s.pos + 1
	run := i // start of bytes not yet copied
	for {
		// A tight loop over the common bytes (a byte-at-a-time outer loop
		// reloads its state on every byte).
		for i < len(d) && strClass[d[i]] == plainASCII {
			i++
		}
		if i >= len(d) {
			break
		}
		if strClass[d[i]] == highByte {
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				s.badText(field, reasonBadUTF8)
			}
			i += size
			continue
		}
		switch d[i] {
		case '"':
			s.pos = i + 1
			return append(dst, d[run:i]...)
		case '\\':
			dst = append(dst, d[run:i]...)
			var n int
			if dst, n = s.appendEscape(dst, i, field); n == 0 {
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
// many bytes it consumed, or 0 after recording a syntax error. A lone
// surrogate is recorded against field, as escapeLen does.
func (s *scanner) appendEscape(dst []byte, i int, field string) ([]byte, int) {
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
		n := s.escapeLen(i, field)
		switch n {
		case 0:
			return dst, 0
		case 12:
			return utf8.AppendRune(dst, utf16.DecodeRune(u4(d, i), u4(d, i+6))), 12
		}
		return utf8.AppendRune(dst, u4(d, i)), 6 // a lone surrogate appends U+FFFD
	default:
		s.syntax(i+1, "in string escape code")
		return dst, 0
	}
	return append(dst, c), 2
}
