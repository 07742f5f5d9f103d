package batch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/batch"
	"fanin/internal/natstest"
)

// ledger is an in-memory batch.Ledger.
type ledger struct {
	id string

	mu     sync.Mutex
	safe   map[string]uint64 // durable → safe point
	last   map[string]uint64 // stream → the last sequence committed (batch.CommitMarker)
	resets int
}

func (l *ledger) LastCommitted(_ context.Context, stream string, _ time.Time) (uint64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq, ok := l.last[stream]
	return seq, ok, nil
}

func newLedger(id string) *ledger { return &ledger{id: id, safe: map[string]uint64{}} }

func (l *ledger) DatabaseID(context.Context) (string, error) { return l.id, nil }

func (l *ledger) SafePoint(_ context.Context, _, durable string, _ time.Time) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.safe[durable], nil
}

func (l *ledger) SaveSafePoint(_ context.Context, _, durable string, _ time.Time, seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.safe[durable] = seq
	return nil
}

func (l *ledger) ResetForReplay(context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resets++
	return true, nil
}

func (l *ledger) safePoint(durable string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.safe[durable]
}

func TestEnsureConsumer(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	stream := natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 10)
	ctx := context.Background()

	type want struct {
		recreated bool   // a new consumer, not the one the case created
		startSeq  uint64 // the first stream sequence it delivers
		err       error
		resets    int
	}
	for _, tc := range []struct {
		name   string
		have   jetstream.ConsumerConfig // Durable is filled in
		safe   uint64
		adopt  bool
		replay bool
		rewind bool
		want   want
	}{
		{name: "a max deliver recreates it (it gives up on messages)",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.started.>",
				AckWait: 10 * time.Second, MaxAckPending: 100, BackOff: []time.Duration{time.Second, 2 * time.Second}, MaxDeliver: 3},
			safe: 3, want: want{recreated: true, startSeq: 4}},
		{name: "an edited filter recreates it from the safe point",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.nothing.>"},
			safe: 4, want: want{recreated: true, startSeq: 5}},
		{name: "several filters recreate it",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: []string{"events.started.>", "events.x"}},
			want: want{recreated: true, startSeq: 1}},
		{name: "ack none recreates it",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, FilterSubject: "events.started.>"},
			safe: 2, want: want{recreated: true, startSeq: 3}},
		{name: "a durable of another database is refused",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.started.>",
				Metadata: map[string]string{batch.MetadataDatabase: "other"}},
			want: want{err: batch.ErrForeignDurable}},
		{name: "a durable of another database is adopted when asked, from the start",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.started.>",
				Metadata: map[string]string{batch.MetadataDatabase: "other"}},
			safe: 6, adopt: true, want: want{recreated: true, startSeq: 1, resets: 1}},
		{name: "rewinding recreates this database's durable from the safe point (a restored backup)",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.started.>",
				Metadata: map[string]string{batch.MetadataDatabase: "this"}},
			safe: 5, rewind: true, want: want{recreated: true, startSeq: 6}},
		{name: "rewinding without a safe point recreates it from the start",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.started.>",
				Metadata: map[string]string{batch.MetadataDatabase: "this"}},
			rewind: true, want: want{recreated: true, startSeq: 1}},
		{name: "rewinding does not take a durable of another database",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.started.>",
				Metadata: map[string]string{batch.MetadataDatabase: "other"}},
			safe: 5, rewind: true, want: want{err: batch.ErrForeignDurable}},
		{name: "an unlabelled durable is labelled in place",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.started.>"},
			want: want{recreated: false}},
		{name: "a missing durable is created from the safe point",
			safe: 7, want: want{recreated: true, startSeq: 8}},
		{name: "safe settings are updated in place",
			have: jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.started.>",
				AckWait: 10 * time.Second, MaxAckPending: 100, MaxDeliver: -1, Metadata: map[string]string{"owner": "ops"}},
			want: want{recreated: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Durable = "d" + time.Now().Format("150405.000000000")[7:]
			var created time.Time
			if tc.have.AckPolicy != 0 || tc.have.FilterSubject != "" || len(tc.have.FilterSubjects) > 0 {
				tc.have.Durable = cfg.Durable
				c, err := stream.CreateConsumer(ctx, tc.have)
				if err != nil {
					t.Fatal(err)
				}
				created = c.CachedInfo().Created
			}
			led := newLedger("this")
			led.safe[cfg.Durable] = tc.safe
			b, err := batch.EnsureConsumer(ctx, js, cfg, batch.BindOptions{Ledger: led, Adopt: tc.adopt, Replay: tc.replay, Rewind: tc.rewind}, quiet)
			if tc.want.err != nil {
				if !errors.Is(err, tc.want.err) {
					t.Fatalf("got %v, want %v", err, tc.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info, err := b.Consumer.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := info.Config
			if got.FilterSubject != cfg.FilterSubject || len(got.FilterSubjects) > 0 || got.AckPolicy != jetstream.AckExplicitPolicy ||
				got.AckWait != cfg.AckWait || got.MaxDeliver != -1 || got.BackOff != nil || got.MaxAckPending < 2*cfg.BatchSize {
				t.Fatalf("settings not fanin's: %+v", got)
			}
			if got.Metadata[batch.MetadataDatabase] != "this" || b.DatabaseID != "this" {
				t.Fatalf("metadata %v, binding database %q: want labelled with this database", got.Metadata, b.DatabaseID)
			}
			if recreated := !info.Created.Equal(created); recreated != tc.want.recreated {
				t.Fatalf("recreated = %v, want %v", recreated, tc.want.recreated)
			}
			if tc.want.recreated {
				if first := info.AckFloor.Stream + 1; first != tc.want.startSeq {
					t.Fatalf("delivers from stream seq %d, want %d", first, tc.want.startSeq)
				}
			}
			if led.resets != tc.want.resets {
				t.Fatalf("ResetForReplay called %d times, want %d", led.resets, tc.want.resets)
			}
			if !b.StreamCreated.Equal(stream.CachedInfo().Created) {
				t.Fatalf("binding's stream created %v, want %v", b.StreamCreated, stream.CachedInfo().Created)
			}
		})
	}
}

// A database that lacks messages its durable acknowledged — a backup restored — has the
// durable rewound to its safe point, without anyone asking; messages of other subjects the
// ack floor moved past are not mistaken for missing ones.
func TestEnsureConsumerRewindsForADatabaseBehindItsDurable(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	stream := natstest.CreateStream(t, js, "EVENTS", "events.>")
	ctx := context.Background()
	// Sequences 1–5 and 9–10 are the durable's; 6–8 are another subject's.
	for i, subj := range []string{"s", "s", "s", "s", "s", "other", "other", "other", "s", "s"} {
		if subj == "s" {
			subj = fmt.Sprintf("events.started.e.pc-%d", i)
		} else {
			subj = "events.other"
		}
		if _, err := js.Publish(ctx, subj, startedPayload(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		floor     uint64 // the durable's ack floor: it delivers from floor+1
		last      uint64 // the database's last committed sequence; 0: none known
		managed   bool
		recreated bool
		err       error
	}{
		{name: "in step", floor: 9, last: 9},
		{name: "ahead of the durable", floor: 5, last: 9},
		{name: "no record (an older database)", floor: 9},
		{name: "behind: sequence 9 acked, not in the database", floor: 9, last: 5, recreated: true},
		{name: "only other subjects between", floor: 8, last: 5},
		{name: "behind, managed elsewhere: refused, saying how to recreate it", floor: 9, last: 5, managed: true, err: batch.ErrUnsuitableDurable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Durable = "d" + time.Now().Format("150405.000000000")[7:]
			c, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: cfg.Durable, AckPolicy: jetstream.AckExplicitPolicy,
				FilterSubject: cfg.FilterSubject, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: tc.floor + 1,
				MaxDeliver: -1, AckWait: cfg.AckWait, Metadata: map[string]string{batch.MetadataDatabase: "this"}})
			if err != nil {
				t.Fatal(err)
			}
			if f := c.CachedInfo().AckFloor.Stream; f != tc.floor {
				t.Fatalf("set-up: ack floor %d, want %d", f, tc.floor)
			}
			led := newLedger("this")
			led.safe[cfg.Durable] = 4
			if tc.last > 0 {
				led.last = map[string]uint64{"EVENTS": tc.last}
			}
			b, err := batch.EnsureConsumer(ctx, js, cfg, batch.BindOptions{Ledger: led, Managed: tc.managed}, quiet)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), "--deliver 5") {
					t.Fatalf("got %v, want %v saying to deliver from 5", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info, err := b.Consumer.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if recreated := !info.Created.Equal(c.CachedInfo().Created); recreated != tc.recreated {
				t.Fatalf("recreated = %v, want %v", recreated, tc.recreated)
			}
			if want := map[bool]uint64{true: 4, false: tc.floor}[tc.recreated]; info.AckFloor.Stream != want {
				t.Fatalf("delivers from stream seq %d, want %d", info.AckFloor.Stream+1, want+1)
			}
		})
	}
}

// A durable's filter edited from outside while the loop runs: the messages published meanwhile,
// which the wrong filter passed over, are projected all the same.
func TestLoopRecoversWhatAnEditedFilterPassedOver(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	stream := natstest.CreateStream(t, js, "EVENTS", "events.>")
	ctx := context.Background()
	cfg := testConfig()

	publish(t, js, 100)
	w := newRecorder()
	led := newLedger("db")
	l := batch.New(cfg, js, w, batch.WithLogger(quiet), batch.WithLedger(led), batch.WithWatchInterval(50*time.Millisecond))
	run(t, l)
	natstest.Eventually(t, 20*time.Second, "first 100 acked and their safe point saved", func() bool {
		return led.safePoint(cfg.Durable) == 100
	})

	c, err := stream.Consumer(ctx, cfg.Durable)
	if err != nil {
		t.Fatal(err)
	}
	edited := c.CachedInfo().Config
	edited.FilterSubject = "events.nothing.>"
	if _, err := stream.UpdateConsumer(ctx, edited); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 200) // the same 100 subjects again, then 100 new: seqs 101–300
	natstest.Eventually(t, 20*time.Second, "all 300 projected", func() bool { return w.distinct() == 300 })
	natstest.Eventually(t, 20*time.Second, "the durable is fanin's again, drained", func() bool {
		info, err := stream.Consumer(ctx, cfg.Durable)
		return err == nil && info.CachedInfo().Config.FilterSubject == cfg.FilterSubject &&
			natstest.ConsumerDrained(t, js, "EVENTS", cfg.Durable)
	})
	if err := l.Ready(); err != nil {
		t.Fatalf("not ready after recovering: %v", err)
	}
}

// The durable taken over by another database while the loop runs: Run stops with
// ErrForeignDurable.
func TestLoopStopsWhenItsDurableFeedsAnotherDatabase(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	stream := natstest.CreateStream(t, js, "EVENTS", "events.>")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := testConfig()
	l := batch.New(cfg, js, newRecorder(), batch.WithLogger(quiet), batch.WithLedger(newLedger("mine")),
		batch.WithWatchInterval(50*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	natstest.Eventually(t, 10*time.Second, "bound", l.Bound)

	c, err := stream.Consumer(ctx, cfg.Durable)
	if err != nil {
		t.Fatal(err)
	}
	taken := c.CachedInfo().Config
	taken.Metadata = map[string]string{batch.MetadataDatabase: "theirs"}
	if _, err := stream.UpdateConsumer(ctx, taken); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, batch.ErrForeignDurable) {
			t.Fatalf("Run returned %v, want ErrForeignDurable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running with a durable that feeds another database")
	}
}

// A server that stops answering without dropping the connection (SIGSTOP): the loop goes
// unready, says so once, and is ready again when the server answers.
func TestLoopIsUnreadyWhileTheServerDoesNotAnswer(t *testing.T) {
	srv := natstest.Run(t)
	_, admin := natstest.Connect(t, srv.ClientURL())
	natstest.CreateStream(t, admin, "EVENTS", "events.>")
	proxy := natstest.NewProxy(t, srv.Addr().String())
	_, js := natstest.Connect(t, proxy.URL(), jetstream.WithDefaultTimeout(200*time.Millisecond))
	l := batch.New(testConfig(), js, newRecorder(), batch.WithLogger(quiet), batch.WithWatchInterval(50*time.Millisecond))
	run(t, l)
	natstest.Eventually(t, 10*time.Second, "ready", func() bool { return l.Ready() == nil })

	proxy.Freeze()
	natstest.Eventually(t, 10*time.Second, "unready while frozen", func() bool { return l.Ready() != nil })
	proxy.Thaw()
	natstest.Eventually(t, 10*time.Second, "ready again", func() bool { return l.Ready() == nil })
}
