package codec

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestFormatTime(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"whole seconds", time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC), "2026-05-20T12:00:00.000000Z"},
		{"microseconds kept", time.Date(2026, 5, 20, 12, 0, 0, 123456000, time.UTC), "2026-05-20T12:00:00.123456Z"},
		{"truncated, not rounded", time.Date(2026, 5, 20, 12, 0, 0, 123456999, time.UTC), "2026-05-20T12:00:00.123456Z"},
		{"no rounding into the next second", time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), "2026-12-31T23:59:59.999999Z"},
		{"before the epoch", time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), "1969-12-31T23:59:59.999999Z"},
		{"offset converted to UTC", time.Date(2026, 5, 20, 9, 0, 0, 500, tokyo), "2026-05-20T00:00:00.000000Z"},
		{"offset crossing the day", time.Date(2026, 5, 20, 1, 0, 0, 0, tokyo), "2026-05-19T16:00:00.000000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatTime(tt.in); got != tt.want {
				t.Fatalf("FormatTime(%v) = %s, want %s", tt.in, got, tt.want)
			}
			if len(tt.want) != len(TimeLayout) {
				t.Fatalf("%s is not fixed-width", tt.want)
			}
		})
	}
}

// oddTimes are payload times around the edges of what time.RFC3339Nano
// accepts; parseTime must agree with time.Parse on each, whatever it says, and
// the decoder too but for the times that leave years 0000–9999 in UTC.
var oddTimes = []string{
	"2026-05-20T12:00:00Z",
	"2026-05-20T12:00:00.1Z",
	"2026-05-20T12:00:00.123456789Z",
	"2026-05-20T12:00:00.1234567891234Z", // beyond nanoseconds: truncated
	"2026-05-20T12:00:00.000000000000000000000000000000001Z",
	"2026-05-20T12:00:00+09:00",
	"2026-05-20T12:00:00.5-07:30",
	"2026-05-20T12:00:00-00:00",
	"2026-05-20T12:00:00+23:59",
	"2026-05-20T12:00:00+24:00", // time.Parse's general path accepts it
	"2026-05-20T12:00:00+09:60",
	"2026-05-20T12:00:00,5Z", // comma fraction: accepted by time.Parse
	"2026-05-20T1:00:00Z",    // one-digit hour: accepted by time.Parse
	"2024-02-29T00:00:00Z",
	"2000-02-29T00:00:00Z",
	"1900-02-29T00:00:00Z",
	"2026-02-29T00:00:00Z",
	"2026-04-31T00:00:00Z",
	"0000-01-01T00:00:00Z",
	"9999-12-31T23:59:59.999999999Z",
	"0000-01-01T00:00:00+01:00", // year -1 in UTC
	"0000-01-01T00:00:00-01:00",
	"0000-01-01T00:01:00+00:01",
	"9999-12-31T23:59:59-23:59", // year 10000 in UTC
	"9999-12-31T23:59:59+23:59",
	"9999-12-31T23:59:59.999999999-00:01",
	"2026-05-20t12:00:00Z",
	"2026-05-20T12:00:00z",
	"2026-05-20 12:00:00Z",
	"2026-05-20T12:00:00.Z",
	"2026-05-20T12:00:00+0900",
	"2026-05-20T24:00:00Z",
	"2026-05-20T12:60:00Z",
	"2026-05-20T12:00:60Z",
	"2026-13-01T00:00:00Z",
	"2026-00-01T00:00:00Z",
	"2026-05-00T00:00:00Z",
	"2026-5-20T12:00:00Z",
	"+2026-05-20T12:00:00Z",
	"2026-05-20T12:00Z",
	"2026-05-20T12:00:00ZZ",
	"2026-05-20T12:00:00Z ",
	" 2026-05-20T12:00:00Z",
	"2026-05-20T12:00:00.5.5Z",
	"2026-05-20T12:00:00.-5Z",
	"2026-05-20T12:00:0aZ",
	"２026-05-20T12:00:00Z",
	"",
	"Z",
}

func TestParseTimeMirrorsTimeParse(t *testing.T) {
	for _, s := range oddTimes {
		want, err := time.Parse(time.RFC3339Nano, s)
		got, ok := parseTime([]byte(s))
		if ok != (err == nil) || !got.Equal(want) {
			t.Fatalf("parseTime(%q) = %v, %v; time.Parse = %v, %v", s, got, ok, want, err)
		}
		if _, ok := parseUTC([]byte(s)); ok && !strings.HasSuffix(s, "Z") {
			t.Fatalf("parseUTC(%q) accepted a time without Z", s)
		}
		// Through the decoder, both for Started and Result: valid iff
		// time.Parse accepts it and its UTC year has four digits.
		valid := ok && want.UTC().Year() >= 0 && want.UTC().Year() <= 9999
		_, err = DecodeStarted(object(with(startedBase, "started_at", `"`+s+`"`)...))
		if (err == nil) != valid {
			t.Fatalf("DecodeStarted with started_at %q: err %v, want valid %v", s, err, valid)
		}
		r, err := DecodeResult(object(with(legacyBase, "finished_at", `"`+s+`"`)...))
		if (err == nil) != valid || (valid && !r.FinishedAt.Equal(want)) {
			t.Fatalf("DecodeResult with finished_at %q: %v, %v; time.Parse %v, want valid %v", s, r.FinishedAt, err, want, valid)
		}
		if valid && len(FormatTime(r.FinishedAt)) != len(TimeLayout) {
			t.Fatalf("finished_at %q stored as %s: not fixed-width", s, FormatTime(r.FinishedAt))
		}
	}
}

// TestDecodeTimeYearRange pins the contract's range: a payload time is valid
// only if, converted to UTC, it falls within years 0000–9999, so that its
// stored text is fixed-width and sorts as time.
func TestDecodeTimeYearRange(t *testing.T) {
	tests := []struct {
		in     string
		stored string // FormatTime of the decoded time; "" when poison
		err    string // the exact Error() when poison
	}{
		{"9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59.999999Z", ""},
		{"9999-12-31T23:59:59+23:59", "9999-12-31T00:00:59.000000Z", ""},
		{"9999-12-31T00:00:59-23:59", "9999-12-31T23:59:59.000000Z", ""},
		{"9999-12-31T23:59:59-23:59", "", `started_at: "9999-12-31T23:59:59-23:59" is year 10000 in UTC, outside 0000-9999`},
		{"9999-12-31T23:59:59.999999999-00:01", "", `started_at: "9999-12-31T23:59:59.999999999-00:01" is year 10000 in UTC, outside 0000-9999`},
		{"0000-01-01T00:00:00Z", "0000-01-01T00:00:00.000000Z", ""},
		{"0000-01-01T00:00:00-00:00", "0000-01-01T00:00:00.000000Z", ""},
		{"0000-01-01T00:00:00-23:59", "0000-01-01T23:59:00.000000Z", ""},
		{"0000-01-01T00:01:00+00:01", "0000-01-01T00:00:00.000000Z", ""},
		{"0000-01-01T00:00:00+01:00", "", `started_at: "0000-01-01T00:00:00+01:00" is year -1 in UTC, outside 0000-9999`},
		{"0000-01-01T00:00:59.999999999+00:01", "", `started_at: "0000-01-01T00:00:59.999999999+00:01" is year -1 in UTC, outside 0000-9999`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := DecodeStarted(object(with(startedBase, "started_at", `"`+tt.in+`"`)...))
			if tt.err != "" {
				if got := poison(t, err).Error(); got != tt.err {
					t.Fatalf("DecodeStarted with started_at %q: error\n got %s\nwant %s", tt.in, got, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeStarted with started_at %q: %v", tt.in, err)
			}
			if got := FormatTime(s.StartedAt); got != tt.stored {
				t.Fatalf("started_at %q stored as %s, want %s", tt.in, got, tt.stored)
			}
		})
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range oddTimes {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := time.Parse(time.RFC3339Nano, s)
		got, ok := parseTime([]byte(s))
		// Offsets other than Z and local get a fresh *Location each parse, so
		// compare instant and zone rather than with ==.
		gotName, gotOff := got.Zone()
		wantName, wantOff := want.Zone()
		if ok != (err == nil) || !got.Equal(want) || gotName != wantName || gotOff != wantOff {
			t.Fatalf("parseTime(%q) = %v, %v; time.Parse = %v, %v", s, got, ok, want, err)
		}
		if got, ok := parseUTC([]byte(s)); ok && got != want {
			t.Fatalf("parseUTC(%q) = %v; time.Parse = %v", s, got, want)
		}
		if ok {
			y := got.UTC().Year()
			if in := inTimeRange(got); in != (y >= 0 && y <= 9999) {
				t.Fatalf("inTimeRange(%v) = %v, but its UTC year is %d", got, in, y)
			}
			if in := inTimeRange(got); in != (len(FormatTime(got)) == len(TimeLayout)) {
				t.Fatalf("inTimeRange(%v) = %v, but FormatTime gives %s", got, in, FormatTime(got))
			}
		}
	})
}

// TestFormatTimeIsTimeFormat checks the fixed-width fast path against the standard library
// over random instants of every year 0000–9999, in other zones too, and at the range's ends.
func TestFormatTimeIsTimeFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	zones := []*time.Location{time.UTC, time.FixedZone("east", 14*3600), time.FixedZone("west", -(23*3600 + 59*60))}
	lo := time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC).Unix()
	check := func(tm time.Time) {
		t.Helper()
		if got, want := FormatTime(tm), tm.UTC().Format(TimeLayout); got != want {
			t.Fatalf("FormatTime(%v) = %s, want %s", tm, got, want)
		}
	}
	for range 200_000 {
		sec := lo + rng.Int64N(hi-lo)
		check(time.Unix(sec, rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))]))
	}
	for _, tm := range []time.Time{
		time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, time.December, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(-1, time.December, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, time.May, 20, 12, 0, 0, 999, time.UTC),
		{},
	} {
		check(tm)
	}
}
