package sink

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/store"
)

// poisonOf returns a poison RESULTS message seq of the stream incarnation created at created
// (zero: unknown), its payload naming what.
func poisonOf(seq uint64, created time.Time, what string) codec.Record {
	r := rawRecord(codec.KindResult, seq, "results.req-1", []byte("not json: "+what), t0.Add(time.Duration(seq)*time.Second))
	r.StreamCreated = created
	return r
}

func payloads(t *testing.T, s *Sink) []string {
	t.Helper()
	dls, err := s.DeadLetters(context.Background(), store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dls {
		out = append(out, string(d.Payload))
	}
	slices.Sort(out)
	return out
}

func TestPoisonOfARecreatedStreamIsKeptBesideTheOld(t *testing.T) {
	s := newTestSink(t)
	first, second := t0.Add(-time.Hour), t0.Add(time.Hour) // two incarnations of RESULTS
	var old, recreated []codec.Record
	for seq := uint64(1); seq <= 3; seq++ {
		old = append(old, poisonOf(seq, first, "old "+string(rune('0'+seq))))
		recreated = append(recreated, poisonOf(seq, second, "new "+string(rune('0'+seq))))
	}
	mustPoison(t, s, old...)
	rep := mustPoison(t, s, recreated...)
	if len(rep.DeadLetters) != 3 {
		t.Errorf("report = %+v, want 3 dead-lettered", rep)
	}
	want := []string{"not json: new 1", "not json: new 2", "not json: new 3", "not json: old 1", "not json: old 2", "not json: old 3"}
	if got := payloads(t, s); !slices.Equal(got, want) {
		t.Fatalf("dead letters = %q, want %q", got, want)
	}

	// Redelivered, each is still recorded once.
	mustPoison(t, s, append(slices.Clone(recreated), old...)...)
	if got := payloads(t, s); !slices.Equal(got, want) {
		t.Fatalf("after redelivery, dead letters = %q, want %q", got, want)
	}

	// Listed with their incarnation; selected and deleted by it.
	ctx := context.Background()
	dls, err := s.DeadLetters(ctx, store.DeadLetterFilter{StreamCreated: codec.FormatTime(second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 3 || dls[0].StreamCreated != codec.FormatTime(second) || string(dls[0].Payload) != "not json: new 1" {
		t.Fatalf("dead letters of the second incarnation = %+v", dls)
	}
	if ok, err := s.DeleteDeadLetter(ctx, dls[0]); err != nil || !ok {
		t.Fatalf("DeleteDeadLetter = %v, %v", ok, err)
	}
	want = slices.Delete(want, 0, 1)
	if got := payloads(t, s); !slices.Equal(got, want) {
		t.Fatalf("after deleting RESULTS/1 of the second incarnation, dead letters = %q, want %q", got, want)
	}
	if ok, err := s.DeleteDeadLetter(ctx, dls[0]); err != nil || ok {
		t.Fatalf("deleting it again = %v, %v; want false", ok, err)
	}
}

func TestPoisonRedeliveredAcrossTheIncarnationChangeIsRecordedOnce(t *testing.T) {
	s := newTestSink(t)
	created := t0.Add(-time.Hour)
	// Recorded before fanin knew the incarnation, redelivered after it did: one message.
	mustPoison(t, s, poisonOf(7, time.Time{}, "x"))
	mustPoison(t, s, poisonOf(7, created, "x"))
	if n := countRows(t, s, "dead_letters"); n != 1 {
		t.Fatalf("dead_letters has %d rows, want 1", n)
	}
	// And the other way round, on another sequence.
	mustPoison(t, s, poisonOf(8, created, "y"))
	mustPoison(t, s, poisonOf(8, time.Time{}, "y"))
	if n := countRows(t, s, "dead_letters"); n != 2 {
		t.Fatalf("dead_letters has %d rows, want 2", n)
	}
	// The same sequence published at another time is another message: a new incarnation.
	other := poisonOf(7, t0.Add(time.Hour), "z")
	other.Published = other.Published.Add(time.Hour)
	other.Decode()
	mustPoison(t, s, other)
	if n := countRows(t, s, "dead_letters"); n != 3 {
		t.Fatalf("dead_letters has %d rows, want 3", n)
	}
}

func TestDeadLetterHeadersAreKeptByteForByte(t *testing.T) {
	s := newTestSink(t)
	withHeaders := poisonOf(1, t0, "x")
	header := map[string][]string{
		"Nats-Msg-Id": {"abc"},
		"X-Trace":     {"2", "1"}, // order kept
		"traceparent": {"lower-case key"},
		"X-Bin":       {"a\xff\xfeb"},
	}
	withHeaders.Header = store.EncodeHeader(header)
	without := poisonOf(2, t0, "y")
	mustPoison(t, s, withHeaders, without)

	var typ string
	if err := s.db.QueryRow(`SELECT typeof(headers) FROM dead_letters WHERE stream_seq = 1`).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "blob" {
		t.Errorf("typeof(headers) = %s, want blob", typ)
	}
	dls, err := s.DeadLetters(context.Background(), store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	wantRaw := "NATS/1.0\r\nNats-Msg-Id: abc\r\nX-Bin: a\xff\xfeb\r\nX-Trace: 2\r\nX-Trace: 1\r\ntraceparent: lower-case key\r\n\r\n"
	if string(dls[0].RawHeader) != wantRaw {
		t.Errorf("stored headers = %q, want %q", dls[0].RawHeader, wantRaw)
	}
	if !maps.EqualFunc(dls[0].Header, header, slices.Equal) {
		t.Errorf("headers = %q, want %q", dls[0].Header, header)
	}
	if dls[1].RawHeader != nil || dls[1].Header != nil {
		t.Errorf("headers of a message without any = %q, want NULL", dls[1].RawHeader)
	}
	if n := countRows(t, s, "dead_letters WHERE headers IS NULL"); n != 1 {
		t.Errorf("%d rows with NULL headers, want 1", n)
	}
}
