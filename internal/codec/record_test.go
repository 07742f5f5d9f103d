package codec

import (
	"testing"
	"time"
)

func TestRecordDecodeFormatsRecordedAt(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 5, 20, 12, 0, 0, 123456789, time.FixedZone("", 2*3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // not fixed-width: Format's text
		{},
	}
	for _, published := range times {
		for _, r := range []Record{
			{Kind: KindStarted, Payload: []byte(realStarted)},
			{Kind: KindResult, Payload: []byte(realResult)},
			{Kind: KindStarted, Payload: []byte(`{}`)}, // poison
			{Kind: Kind(9)},
		} {
			r.Published = published
			r.Decode()
			if want := FormatTime(published); r.RecordedAt != want {
				t.Errorf("%s record (poison %v) published %v: RecordedAt %q, want %q", r.Kind, r.Poison, published, r.RecordedAt, want)
			}
			if (r.Started != nil) != (r.Kind == KindStarted && r.Poison == nil) || (r.Result != nil) != (r.Kind == KindResult && r.Poison == nil) {
				t.Errorf("%s record (poison %v): Started %v, Result %v", r.Kind, r.Poison, r.Started, r.Result)
			}
		}
	}
	r := Record{Kind: KindStarted, Payload: []byte(realStarted)}
	r.Decode()
	if s, err := DecodeStarted(r.Payload); err != nil || *r.Started != s {
		t.Errorf("Record.Decode's event %+v, DecodeStarted's %+v (%v)", *r.Started, s, err)
	}
	r = Record{Kind: KindResult, Payload: []byte(realResult)}
	r.Decode()
	if x, err := DecodeResult(r.Payload); err != nil || *r.Result != x {
		t.Errorf("Record.Decode's event %+v, DecodeResult's %+v (%v)", *r.Result, x, err)
	}
}
