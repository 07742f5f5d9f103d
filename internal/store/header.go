package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The NATS wire header block: a version line, one "Key: value" line per value, an empty line.
const (
	headerLine = "NATS/1.0"
	crlf       = "\r\n"
)

// EncodeHeader returns h as a NATS wire header block, the form dead_letters.headers keeps in
// every store: "NATS/1.0\r\n", then "Key: value\r\n" for each value (keys in byte order, their
// case kept; each key's values in order), then "\r\n". A nil or empty h is nil (no headers:
// SQL NULL).
//
// It is exact — DecodeHeader returns h again — for every header a NATS message can carry: a
// key that is not empty and holds no ':' or LF; values that hold no LF and do not begin with a
// space or tab. Any other byte is kept, CR and non-UTF-8 included. A header no message could
// carry is stored as near as the form allows (a newline becomes a space, as nats.go does when
// it publishes; a key without values is dropped), never refused: the dead letter is recorded
// all the same.
func EncodeHeader(h map[string][]string) []byte {
	if n := HeaderLen(h); n > 0 {
		return AppendHeader(make([]byte, 0, n), h)
	}
	return nil
}

// HeaderLen returns the length of h's header block (see EncodeHeader): 0 when h has none.
func HeaderLen(h map[string][]string) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len(crlf)
		}
	}
	if n == 0 {
		return 0
	}
	return len(headerLine+crlf) + n + len(crlf)
}

// AppendHeader appends h's header block (see EncodeHeader) to dst, HeaderLen(h) bytes:
// nothing when h has no values.
func AppendHeader(dst []byte, h map[string][]string) []byte {
	var small [8]string
	keys := small[:0]
	for k, vs := range h {
		if len(vs) > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return dst
	}
	slices.Sort(keys) // a map has no order: sorted, the same header is the same bytes
	dst = append(dst, headerLine+crlf...)
	for _, k := range keys {
		for _, v := range h[k] {
			dst = appendNewlineToSpace(dst, k)
			dst = append(dst, ": "...)
			dst = appendNewlineToSpace(dst, v)
			dst = append(dst, crlf...)
		}
	}
	return append(dst, crlf...)
}

// appendNewlineToSpace appends s to dst with each LF replaced by a space, as nats.go does when
// it publishes.
func appendNewlineToSpace(dst []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(append(dst, s[:i]...), ' ')
		s = s[i+1:]
	}
}

// ErrBadHeader is returned (wrapped) by DecodeHeader for bytes that are not a header block.
var ErrBadHeader = errors.New("not a NATS header block")

// DecodeHeader parses a header block EncodeHeader wrote (or any NATS wire header block) the
// way nats.go reads one from the wire: lines end in LF (one CR before it is dropped), a key
// ends at the first ':', blanks after the ':' are skipped, lines with an empty key are
// skipped, and the block ends at the first empty line. A nil or empty b is a nil header.
func DecodeHeader(b []byte) (map[string][]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	s := string(b)
	line, s, ok := nextHeaderLine(s)
	if !ok || !strings.HasPrefix(line, headerLine) {
		return nil, fmt.Errorf("%w: no %s line", ErrBadHeader, headerLine)
	}
	h := map[string][]string{}
	for {
		line, s, ok = nextHeaderLine(s)
		if !ok {
			return nil, fmt.Errorf("%w: no empty line at its end", ErrBadHeader)
		}
		if line == "" {
			return h, nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %q has no ':'", ErrBadHeader, line)
		}
		if k == "" {
			continue
		}
		h[k] = append(h[k], strings.TrimLeft(v, " \t"))
	}
}

// nextHeaderLine splits s after its first LF, dropping the LF and one CR before it.
func nextHeaderLine(s string) (line, rest string, ok bool) {
	line, rest, ok = strings.Cut(s, "\n")
	return strings.TrimSuffix(line, "\r"), rest, ok
}
