package output

import "testing"

func TestValidUTF8ReplacesEachMaximalInvalidSubpart(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"valid", "héllo ✓", "héllo ✓"},
		{"empty", "", ""},
		{"lone continuation byte", "a\x80b", "a\uFFFDb"},
		{"two lone continuation bytes", "a\x80\x80b", "a\uFFFD\uFFFDb"},
		{"truncated three-byte sequence is one subpart", "a\xE2\x82b", "a\uFFFDb"},
		{"truncated four-byte sequence at the end", "a\xF0\x9F\x98", "a\uFFFD"},
		{"invalid lead byte", "\xFFx", "\uFFFDx"},
		{"overlong C0 is two subparts", "\xC0\xAF", "\uFFFD\uFFFD"},
		{"surrogate half ED A0 80 is three subparts", "\xED\xA0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"E0 then a bad second byte", "\xE0\x80\x80", "\uFFFD\uFFFD\uFFFD"},
		{"F4 90 is above U+10FFFF", "\xF4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidUTF8([]byte(tc.in)); got != tc.want {
				t.Fatalf("ValidUTF8(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
