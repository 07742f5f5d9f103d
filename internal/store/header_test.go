package store

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestHeaderBlockRoundTripsWhatNATSCarries(t *testing.T) {
	for _, h := range []map[string][]string{
		{"A": {"1"}},
		{"Nats-Msg-Id": {"x"}, "nats-msg-id": {"y"}},         // case kept: two keys
		{"K": {"3", "1", "2"}},                               // value order kept
		{"K": {""}, "E": {"", "x"}},                          // empty values
		{"Bin": {"\xff\xfe", "\x00\x01\x7f", "caf\xc3\xa9"}}, // any byte
		{"Spaces": {"trailing  ", "in side", "tab\tinside\t"}, "Cr": {"a\rb", "end\r"}},
		{"Colon": {"a: b", "::"}},
	} {
		raw := EncodeHeader(h)
		got, err := DecodeHeader(raw)
		if err != nil || !maps.EqualFunc(got, h, slices.Equal) {
			t.Errorf("DecodeHeader(%q) = %q, %v; want %q", raw, got, err, h)
		}
		// What nats.go reads from the same bytes, as the server delivers them.
		fromNATS, err := nats.DecodeHeadersMsg(raw)
		if err != nil || !maps.EqualFunc(map[string][]string(fromNATS), h, slices.Equal) {
			t.Errorf("nats.DecodeHeadersMsg(%q) = %q, %v; want %q", raw, fromNATS, err, h)
		}
		if again := EncodeHeader(got); !bytes.Equal(again, raw) {
			t.Errorf("re-encoded %q, want the same bytes %q", again, raw)
		}
	}
	if EncodeHeader(nil) != nil || EncodeHeader(map[string][]string{"K": nil}) != nil {
		t.Error("no header values must encode as nil (SQL NULL)")
	}
	for _, bad := range []string{"HTTP/1.1\r\n\r\n", "NATS/1.0\r\nK: v\r\n", "NATS/1.0\r\nno colon\r\n\r\n"} {
		if _, err := DecodeHeader([]byte(bad)); !errors.Is(err, ErrBadHeader) {
			t.Errorf("DecodeHeader(%q) = %v, want ErrBadHeader", bad, err)
		}
	}
}

func TestHeaderBlockBytes(t *testing.T) {
	for _, tc := range []struct {
		h    map[string][]string
		want string
	}{
		{nil, ""},
		{map[string][]string{"K": nil, "E": {}}, ""},
		{map[string][]string{"traceparent": {"00-ab-cd-01"}}, "NATS/1.0\r\ntraceparent: 00-ab-cd-01\r\n\r\n"},
		{map[string][]string{"b": {"2", "1"}, "B": {"x"}, "a": {""}, "Z": nil},
			"NATS/1.0\r\nB: x\r\na: \r\nb: 2\r\nb: 1\r\n\r\n"},
		{map[string][]string{"new\nline": {"a\nb\n"}}, "NATS/1.0\r\nnew line: a b \r\n\r\n"},
	} {
		if got := EncodeHeader(tc.h); string(got) != tc.want || tc.want == "" && got != nil {
			t.Errorf("EncodeHeader(%q) = %q, want %q", tc.h, got, tc.want)
		}
		if n := HeaderLen(tc.h); n != len(tc.want) {
			t.Errorf("HeaderLen(%q) = %d, want %d", tc.h, n, len(tc.want))
		}
		if got := AppendHeader([]byte("prefix"), tc.h); string(got) != "prefix"+tc.want {
			t.Errorf("AppendHeader(prefix, %q) = %q, want the block after the prefix", tc.h, got)
		}
	}
	many := map[string][]string{}
	for i := range 20 { // more keys than AppendHeader keeps on its stack
		many[string(rune('a'+i))] = []string{"v"}
	}
	if raw := EncodeHeader(many); len(raw) != HeaderLen(many) || !bytes.HasPrefix(raw, []byte("NATS/1.0\r\na: v\r\nb: v\r\n")) {
		t.Errorf("EncodeHeader of 20 keys = %q", raw)
	}
}
