package codec

import "time"

// TimeLayout is the fixed-width UTC form every timestamp is stored in:
// microseconds, always six digits, and a literal Z, so that text order is time
// order (for years 0000–9999; see FormatTime).
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// FormatTime returns t in TimeLayout: converted to UTC, truncated (not
// rounded) to microseconds.
//
// Pitfall: outside years 0000–9999 in UTC the text is not fixed-width and does
// not sort as time. The decoders reject such payload times (an RFC 3339 time
// near the ends of its range can leave it once converted to UTC:
// "0000-01-01T00:00:00+01:00" is in year -1, "9999-12-31T23:59:59-23:59" in
// year 10000), so every decoded time formats fixed-width; a time from
// elsewhere (a JetStream timestamp) is the caller's to check.
func FormatTime(t time.Time) string {
	var b [len(TimeLayout)]byte
	return string(appendTime(b[:0], t))
}

// appendTime appends FormatTime(t) to dst.
func appendTime(dst []byte, t time.Time) []byte {
	if !inTimeRange(t) {
		return t.UTC().AppendFormat(dst, TimeLayout)
	}
	// Fixed-width: the digits written straight, as Format would (it walks the layout
	// chunk by chunk, and every row formats two or three times on the writer's path).
	u := t.UTC()
	year, month, day := u.Date()
	hour, minute, sec := u.Clock()
	n := len(dst)
	dst = append(dst, "0000-00-00T00:00:00.000000Z"...)
	b := dst[n:]
	digits(b[0:4], year)
	digits(b[5:7], int(month))
	digits(b[8:10], day)
	digits(b[11:13], hour)
	digits(b[14:16], minute)
	digits(b[17:19], sec)
	digits(b[20:26], u.Nanosecond()/1000)
	return dst
}

// digits writes v, zero-padded, into all of b.
func digits(b []byte, v int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// Bounds, in Unix seconds, of the instants whose TimeLayout text is
// fixed-width. Both are whole seconds, so the seconds alone decide.
var (
	minUnix = time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC).Unix()
	endUnix = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC).Unix() // exclusive
)

// inTimeRange reports whether t, converted to UTC, falls within years
// 0000–9999: whether FormatTime(t) is fixed-width.
func inTimeRange(t time.Time) bool {
	u := t.Unix()
	return minUnix <= u && u < endUnix
}

// parseTime reports whether time.Parse(time.RFC3339Nano, string(b)) accepts
// b, and returns what it returns.
//
// The common form, "YYYY-MM-DDTHH:MM:SS[.fraction]Z", is parsed here without
// allocating by the very rules of the standard library's own RFC 3339 fast
// path (year 0000–9999, day within the month, hour 0–23, minute and second
// 0–59, fraction of any length truncated to nanoseconds); anything else —
// offsets, and whatever this parser rejects — goes to time.Parse, the
// authority.
func parseTime(b []byte) (time.Time, bool) {
	if t, ok := parseUTC(b); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	return t, err == nil
}

func parseUTC(b []byte) (time.Time, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") || b[len(b)-1] != 'Z' ||
		b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	ok := true
	num := func(s []byte, lo, hi int) int {
		x := 0
		for _, c := range s {
			if !isDigit(c) {
				ok = false
				return lo
			}
			x = x*10 + int(c-'0')
		}
		if x < lo || x > hi {
			ok = false
			return lo
		}
		return x
	}
	year := num(b[0:4], 0, 9999)
	month := num(b[5:7], 1, 12)
	day := num(b[8:10], 1, daysIn(month, year))
	hour := num(b[11:13], 0, 23)
	minute := num(b[14:16], 0, 59)
	sec := num(b[17:19], 0, 59)
	if !ok {
		return time.Time{}, false
	}
	frac := b[19 : len(b)-1]
	nsec := 0
	if len(frac) > 0 {
		if len(frac) < 2 || frac[0] != '.' {
			return time.Time{}, false
		}
		for k, c := range frac[1:] {
			if !isDigit(c) {
				return time.Time{}, false
			}
			if k < 9 {
				nsec = nsec*10 + int(c-'0')
			}
		}
		for k := len(frac) - 1; k < 9; k++ {
			nsec *= 10
		}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
