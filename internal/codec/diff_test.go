package codec

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// The differential tests hold the scanner to encoding/json: the same
// validity verdict on any input, the same decoded strings, the same decoded
// member names (but for case, which encoding/json folds).

// gen produces random JSON text, valid unless told to be sloppy.
type gen struct {
	r      *rand.Rand
	sloppy bool // sometimes emit invalid pieces
}

func (g gen) oneIn(n int) bool { return g.r.IntN(n) == 0 }

func (g gen) ws() string {
	if !g.oneIn(4) {
		return ""
	}
	return []string{" ", "\n", "\t", "\r\n  ", "\v", "\u00a0"}[g.r.IntN(4+boolInt(g.sloppy)*2)]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (g gen) value(depth int) string {
	max := 7
	if depth >= 5 {
		max = 4 // scalars only
	}
	switch g.r.IntN(max) {
	case 0:
		return g.number()
	case 1:
		return g.str()
	case 2:
		return []string{"true", "false", "null", "nul", "tru", "True", "nulll"}[g.r.IntN(3+4*boolInt(g.sloppy && g.oneIn(4)))]
	case 3:
		return g.str()
	case 4, 5:
		var b strings.Builder
		b.WriteString("{" + g.ws())
		for i := range g.r.IntN(4) {
			if i > 0 {
				b.WriteString("," + g.ws())
			}
			b.WriteString(g.str() + g.ws() + ":" + g.ws() + g.value(depth+1) + g.ws())
		}
		if g.sloppy && g.oneIn(10) {
			b.WriteString(",")
		}
		b.WriteString("}")
		return b.String()
	default:
		var b strings.Builder
		b.WriteString("[" + g.ws())
		for i := range g.r.IntN(4) {
			if i > 0 {
				b.WriteString("," + g.ws())
			}
			b.WriteString(g.value(depth+1) + g.ws())
		}
		if g.sloppy && g.oneIn(10) {
			b.WriteString(",")
		}
		b.WriteString("]")
		return b.String()
	}
}

func (g gen) digits(min int) string {
	var b strings.Builder
	for range min + g.r.IntN(4) {
		b.WriteByte(byte('0' + g.r.IntN(10)))
	}
	return b.String()
}

func (g gen) number() string {
	var b strings.Builder
	if g.oneIn(3) {
		b.WriteByte('-')
	}
	switch {
	case g.oneIn(3):
		b.WriteByte('0')
	case g.sloppy && g.oneIn(8):
		b.WriteString([]string{"0" + g.digits(1), "+1", ".5", "", "Infinity", "0x1F"}[g.r.IntN(6)])
	default:
		b.WriteByte(byte('1' + g.r.IntN(9)))
		b.WriteString(g.digits(0))
	}
	if g.oneIn(3) {
		b.WriteString("." + g.digits(1-boolInt(g.sloppy && g.oneIn(5))))
	}
	if g.oneIn(3) {
		b.WriteString([]string{"e", "E", "e+", "e-", "E-"}[g.r.IntN(5)] + g.digits(1-boolInt(g.sloppy && g.oneIn(5))))
	}
	return b.String()
}

// str returns a string literal, quotes included, mixing plain text, escapes
// of every kind (surrogates paired or not), raw UTF-8 and invalid bytes.
func (g gen) str() string {
	var b strings.Builder
	b.WriteByte('"')
	for range g.r.IntN(8) {
		switch g.r.IntN(12) {
		case 0, 1:
			b.WriteString([]string{"a", "Z", "result_id", " ", "'", "~", "/"}[g.r.IntN(7)])
		case 2:
			b.WriteString([]string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`}[g.r.IntN(8)])
		case 3:
			fmt.Fprintf(&b, `\u%04x`, g.r.IntN(0x10000))
		case 4:
			fmt.Fprintf(&b, `\u%04X`, 0xd800+g.r.IntN(0x800)) // a surrogate half, maybe paired by chance
		case 5:
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+g.r.IntN(0x400), 0xdc00+g.r.IntN(0x400)) // a valid pair
		case 6:
			b.WriteString([]string{"é", "日本", "😀", "\uFFFD", "\u2028"}[g.r.IntN(5)])
		case 7:
			b.WriteByte(byte(0x80 + g.r.IntN(0x80))) // a lone high byte: invalid UTF-8
		case 8:
			b.WriteString([]string{"\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\xe2\x82"}[g.r.IntN(4)])
		case 9:
			fmt.Fprintf(&b, `\u%04x`, g.r.IntN(0x80))
		default:
			if g.sloppy && g.oneIn(3) {
				b.WriteString([]string{"\x01", "\n", `\x`, `\u12`, `\U0041`, `\`, `\'`, "\x7f"}[g.r.IntN(8)])
			} else {
				b.WriteString("x")
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// mutate damages s at random: a deleted, inserted or replaced byte, or a cut.
func (g gen) mutate(s string) string {
	if len(s) == 0 {
		return s
	}
	i := g.r.IntN(len(s))
	const junks = "{}[]\",:\\ 0-eE.tfnu\x00\xff"
	junk := string(junks[g.r.IntN(len(junks))])
	switch g.r.IntN(4) {
	case 0:
		return s[:i] + s[i+1:]
	case 1:
		return s[:i] + junk + s[i:]
	case 2:
		return s[:i] + junk + s[i+1:]
	}
	return s[:i]
}

func TestScannerVerdictMatchesJSONValid(t *testing.T) {
	g := gen{r: rand.New(rand.NewPCG(1, 2))}
	legacy := object(legacyBase...)
	var valid, invalid int
	for i := range 30000 {
		g.sloppy = i%2 == 1
		v := g.value(0)
		if g.oneIn(4) {
			v = g.mutate(v)
		}
		inputs := []string{
			v,
			string(legacy[:len(legacy)-1]) + `,"zz":` + v + "}",
			g.ws() + `{"zz":` + v + g.ws() + "}" + g.ws(),
		}
		for _, in := range inputs {
			for name, decode := range map[string]func([]byte) error{
				"DecodeStarted": func(b []byte) error { _, err := DecodeStarted(b); return err },
				"DecodeResult":  func(b []byte) error { _, err := DecodeResult(b); return err },
			} {
				err := decode([]byte(in))
				ok := json.Valid([]byte(in))
				if isSyntax(err) == ok {
					t.Fatalf("%s(%q): error %v, but json.Valid = %v", name, in, err, ok)
				}
				// Text that is not valid Unicode is poison, though valid JSON.
				if ok && err == nil && textProblem([]byte(in)) != "" {
					t.Fatalf("%s(%q) succeeded, but the text has %s", name, in, textProblem([]byte(in)))
				}
				if ok {
					valid++
				} else {
					invalid++
				}
			}
		}
	}
	// Both verdicts must be well represented for the comparison to mean much.
	if total := valid + invalid; valid < total/5 || invalid < total/5 {
		t.Fatalf("generator is lopsided: %d valid, %d invalid", valid, invalid)
	}
	t.Logf("%d valid, %d invalid inputs", valid, invalid)
}

// TestDecodedStringsMatchEncodingJSON checks string values: one that is valid
// Unicode text decodes exactly as encoding/json decodes it; any other is
// poison, naming the member and the first offence, where encoding/json would
// have put U+FFFD.
func TestDecodedStringsMatchEncodingJSON(t *testing.T) {
	g := gen{r: rand.New(rand.NewPCG(3, 4))}
	var good, bad int
	for range 30000 {
		lit := g.str()
		payload := object(with(legacyBase, "stdout", lit)...)
		var std struct {
			Stdout string `json:"stdout"`
		}
		if err := json.Unmarshal(payload, &std); err != nil {
			t.Fatalf("encoding/json rejects %q: %v", payload, err)
		}
		r, err := DecodeResult(payload)
		if problem := textProblem([]byte(lit)); problem != "" {
			bad++
			if err == nil || err.Error() != "stdout: "+problem {
				t.Fatalf("DecodeResult(%q): error %v, want stdout: %s", payload, err, problem)
			}
			continue
		}
		good++
		if err != nil {
			t.Fatalf("DecodeResult(%q): %v", payload, err)
		}
		if r.Stdout != std.Stdout {
			t.Fatalf("string %s: got %q, encoding/json %q", lit, r.Stdout, std.Stdout)
		}
		if !utf8.ValidString(r.Stdout) {
			t.Fatalf("string %s decoded to invalid UTF-8 %q", lit, r.Stdout)
		}
	}
	if good < 3000 || bad < 3000 {
		t.Fatalf("generator is lopsided: %d valid texts, %d not", good, bad)
	}
}

// TestDecodedKeysMatchEncodingJSON checks member names: a name the scanner
// reads as a known field is exactly one encoding/json unescapes to it.
func TestDecodedKeysMatchEncodingJSON(t *testing.T) {
	g := gen{r: rand.New(rand.NewPCG(5, 6))}
	spell := func(name string) string { // name with random escapes and damage
		var b strings.Builder
		for _, c := range []byte(name) {
			switch g.r.IntN(8) {
			case 0:
				fmt.Fprintf(&b, `\u%04x`, c)
			case 1:
				fmt.Fprintf(&b, `\u%04X`, c^0x20) // other case
			case 2:
				if g.oneIn(4) {
					b.WriteByte(0x80 | c) // invalid UTF-8
					continue
				}
				fallthrough
			default:
				b.WriteByte(c)
			}
		}
		return b.String()
	}
	for range 30000 {
		name := resultNames[g.r.IntN(len(resultNames))]
		key := spell(name)
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(`{"`+key+`":1}`), &m); err != nil {
			t.Fatalf("encoding/json rejects key %q: %v", key, err)
		}
		s := scanner{data: []byte(`{"` + key + `":1}`)}
		got, ok := s.next()
		if !ok {
			t.Fatalf("scanner rejects key %q: %v", key, s.fatal)
		}
		_, stdMatches := m[name]
		if (string(got) == name) != stdMatches {
			t.Fatalf("key %q: scanner read %q, encoding/json %v", key, got, m)
		}
		// A name that is not UTF-8 is the payload's problem, not a syntax error.
		want := textProblem([]byte(key))
		if want == "" && s.field != nil || want != "" && (s.field == nil || s.field.Error() != "payload: "+want) {
			t.Fatalf("key %q: field error %v, want %q", key, s.field, want)
		}
	}
}
