package batch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/natstest"
)

func TestLoopsSharingAWindowHoldNoMoreThanItBetweenThem(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 1000)

	const window = 300
	w := batch.NewWindow(window)
	unblock := make(chan struct{})
	a, b := newRecorder(), newRecorder()
	a.blockCh, b.blockCh = unblock, unblock
	// Every settlement gives back what it held: acks, dead letters and naks.
	a.reject = func(r codec.Record) string {
		if r.Seq%7 == 0 {
			return "refused"
		}
		return ""
	}
	b.fail = func(call int) error {
		if call <= 2 {
			return errors.New("database is locked")
		}
		return nil
	}
	var (
		loops []*batch.Loop
		stops []func() error
	)
	for _, st := range []*recorder{a, b} {
		cfg := testConfig() // MaxAckPending 9,800: only the window bounds them
		cfg.Durable = "d" + string(rune('a'+len(loops)))
		l := batch.New(cfg, js, st, batch.WithLogger(quiet), batch.WithWindow(w))
		loops = append(loops, l)
		stops = append(stops, run(t, l))
	}

	pending := func() int {
		n := 0
		for _, d := range []string{"da", "db"} {
			c, err := js.Consumer(context.Background(), "EVENTS", d)
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			n += info.NumAckPending
		}
		return n
	}
	natstest.Eventually(t, 10*time.Second, "the window full", func() bool { return w.Held() == window })
	time.Sleep(300 * time.Millisecond) // more fetches, were the window not holding them back
	if n := pending(); n > window {
		t.Fatalf("%d messages unacked between the two durables, more than the window of %d", n, window)
	}

	close(unblock)
	natstest.Eventually(t, 30*time.Second, "both durables drained", func() bool {
		return a.distinct() == 1000 && b.distinct() == 1000 &&
			natstest.ConsumerDrained(t, js, "EVENTS", "da") && natstest.ConsumerDrained(t, js, "EVENTS", "db")
	})
	for _, stop := range stops {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.Held(); n != 0 {
		t.Fatalf("%d messages of the window not given back once both loops stopped", n)
	}
	if loops[0].Stats.DeadLettered.Load() == 0 || loops[1].Stats.Naked.Load() == 0 {
		t.Fatalf("stats %+v / %+v: no dead letter or no nak, the test checks nothing", &loops[0].Stats, &loops[1].Stats)
	}
}

func TestAWindowSmallerThanABatchIsRefused(t *testing.T) {
	cfg := testConfig()
	l := batch.New(cfg, jetstream.JetStream(nil), newRecorder(), batch.WithLogger(quiet), batch.WithWindow(batch.NewWindow(cfg.BatchSize-1)))
	if err := l.Run(context.Background()); err == nil {
		t.Fatal("Run accepted a window smaller than BatchSize")
	}
}
