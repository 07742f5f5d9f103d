package batch_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/batch"
	"fanin/internal/fault"
	"fanin/internal/natstest"
)

// fanins is a durable configured as fanin needs it, as an operator's tooling would create it.
func fanins(cfg batch.Config) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{Durable: cfg.Durable, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: cfg.FilterSubject, MaxDeliver: -1, AckWait: cfg.AckWait, MaxAckPending: 1000}
}

// ackSome fetches n messages from the durable and acks them, as a consumer before fanin did.
func ackSome(t *testing.T, c jetstream.Consumer, n int) {
	t.Helper()
	if n == 0 {
		return
	}
	b, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range b.Messages() {
		if err := m.DoubleAck(context.Background()); err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != n {
		t.Fatalf("acked %d messages, want %d", got, n)
	}
}

// TestEnsureConsumerManagedNeverChangesTheDurable: with BindOptions.Managed, a durable fanin
// can use is bound as it is, one it cannot is refused with an error saying what is wrong and
// what to create instead — and the durable is never created, updated, labelled or recreated.
func TestEnsureConsumerManagedNeverChangesTheDurable(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	stream := natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 10)
	ctx := context.Background()

	with := func(f func(*jetstream.ConsumerConfig)) func(*jetstream.ConsumerConfig) { return f }
	for _, tc := range []struct {
		name    string
		have    func(*jetstream.ConsumerConfig) // nil: no durable
		acked   int                             // messages acked on it before fanin binds
		safe    uint64
		adopt   bool
		replay  bool
		wantErr error // nil: bound
		want    []string
		resets  int
	}{
		{name: "missing: waited for, saying what to create from the safe point", safe: 7, wantErr: batch.ErrDurableMissing,
			want: []string{"does not exist", "nats consumer add EVENTS ", " --pull --deliver 8 --ack explicit --filter 'events.started.>' --max-deliver=-1",
				"--wait 6s", "--metadata fanin.database=this"}},
		{name: "missing with no safe point: from the stream's start", wantErr: batch.ErrDurableMissing, want: []string{"--deliver all"}},
		{name: "ack none", safe: 2, have: with(func(c *jetstream.ConsumerConfig) { c.AckPolicy = jetstream.AckNonePolicy }),
			wantErr: batch.ErrUnsuitableDurable, want: []string{"ack_policy AckNone, want AckExplicit", "nats consumer rm -f EVENTS ", "--deliver 3"}},
		{name: "another filter", have: with(func(c *jetstream.ConsumerConfig) { c.FilterSubject = "events.nothing.>" }),
			wantErr: batch.ErrUnsuitableDurable, want: []string{`filter_subject "events.nothing.>", want "events.started.>"`, "--deliver all"}},
		{name: "a max deliver", have: with(func(c *jetstream.ConsumerConfig) { c.MaxDeliver = 3 }),
			wantErr: batch.ErrUnsuitableDurable, want: []string{"max_deliver 3, want -1"}},
		{name: "a push consumer", have: with(func(c *jetstream.ConsumerConfig) { c.DeliverSubject = "push.events" }),
			wantErr: batch.ErrUnsuitableDurable, want: []string{"a push consumer"}},
		{name: "labelled for another database, adopt asked", adopt: true,
			have:    with(func(c *jetstream.ConsumerConfig) { c.Metadata = map[string]string{batch.MetadataDatabase: "other"} }),
			wantErr: batch.ErrForeignDurable, want: []string{"feeds database other, not this one (this)", "--deliver all"}},
		{name: "empty database, durable acked before: the operator replays", replay: true, acked: 5, have: with(func(*jetstream.ConsumerConfig) {}),
			wantErr: batch.ErrUnsuitableDurable, want: []string{"up to 5, but this database is empty", "nats consumer rm -f EVENTS ", "--deliver all"}},
		{name: "empty database, durable recreated by the operator: counters reset", replay: true,
			have: with(func(*jetstream.ConsumerConfig) {}), resets: 1},
		{name: "unlabelled, other safe settings: bound as it is",
			have: with(func(c *jetstream.ConsumerConfig) { c.AckWait, c.MaxAckPending = 10*time.Second, 100 })},
		{name: "labelled for this database",
			have: with(func(c *jetstream.ConsumerConfig) {
				c.Metadata = map[string]string{batch.MetadataDatabase: "this", "owner": "ops"}
			})},
		{name: "the filter as a one-subject list",
			have: with(func(c *jetstream.ConsumerConfig) {
				c.FilterSubject, c.FilterSubjects = "", []string{"events.started.>"}
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Durable = "m" + time.Now().Format("150405.000000000")[7:]
			var before *jetstream.ConsumerInfo
			if tc.have != nil {
				cc := fanins(cfg)
				tc.have(&cc)
				if cc.DeliverSubject != "" {
					if _, err := stream.CreatePushConsumer(ctx, cc); err != nil {
						t.Fatal(err)
					}
				} else {
					c, err := stream.CreateConsumer(ctx, cc)
					if err != nil {
						t.Fatal(err)
					}
					ackSome(t, c, tc.acked)
				}
				before = consumerInfo(t, js, cfg.Durable)
			}
			led := newLedger("this")
			led.safe[cfg.Durable] = tc.safe
			b, err := batch.EnsureConsumer(ctx, js, cfg, batch.BindOptions{Managed: true, Ledger: led, Adopt: tc.adopt, Replay: tc.replay}, quiet)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatal(err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			case tc.wantErr != nil && fault.IsPermanent(err) != (tc.wantErr != batch.ErrDurableMissing):
				t.Errorf("permanent = %v for %v: a missing durable is waited for, an unusable one is not", fault.IsPermanent(err), err)
			case tc.wantErr == nil && b.Consumer.CachedInfo().Name != cfg.Durable:
				t.Errorf("bound %q, want %q", b.Consumer.CachedInfo().Name, cfg.Durable)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			after := consumerInfo(t, js, cfg.Durable)
			switch {
			case before == nil && after != nil:
				t.Fatalf("a managed durable was created: %+v", after.Config)
			case before != nil && (after == nil || !after.Created.Equal(before.Created)):
				t.Fatalf("a managed durable was deleted or recreated")
			case before != nil && !reflect.DeepEqual(after.Config, before.Config):
				t.Fatalf("a managed durable was updated:\n got  %+v\n want %+v", after.Config, before.Config)
			}
			if led.resets != tc.resets {
				t.Errorf("ResetForReplay called %d times, want %d", led.resets, tc.resets)
			}
		})
	}
}

// consumerInfo returns the durable's info on EVENTS, pull or push, or nil when it does not exist.
func consumerInfo(t *testing.T, js jetstream.JetStream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	var found *jetstream.ConsumerInfo
	for info := range s.ListConsumers(ctx).Info() { // read to the end: the lister's goroutine blocks on each send
		if info.Name == durable {
			found = info
		}
	}
	return found
}

// A managed durable that does not exist yet: the loop waits for it, unready, says once what to
// create, and projects everything once the operator's tooling has created it.
func TestManagedDurableIsWaitedForUntilCreated(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	stream := natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 50)
	cfg := testConfig()
	logs := newLogCounter()
	w := newRecorder()
	l := batch.New(cfg, js, w, batch.WithLogger(slog.New(logs)), batch.WithManaged(true), batch.WithWatchInterval(50*time.Millisecond))
	stop := run(t, l)

	const waiting = "durable does not exist, and it is managed elsewhere: waiting for it to be created, not ready meanwhile"
	natstest.Eventually(t, 10*time.Second, "waiting logged", func() bool { return logs.count(waiting) == 1 })
	natstest.Eventually(t, 10*time.Second, "a few attempts more", func() bool { return logs.count("durable still does not exist") >= 3 })
	if err := l.Ready(); err == nil {
		t.Fatal("ready without a durable")
	}
	if n := logs.count(waiting); n != 1 {
		t.Errorf("%q logged %d times, want once", waiting, n)
	}
	if _, err := js.Consumer(context.Background(), "EVENTS", cfg.Durable); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the durable exists (err %v): fanin created it", err)
	}

	if _, err := stream.CreateConsumer(context.Background(), fanins(cfg)); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*time.Second, "everything projected", func() bool { return w.distinct() == 50 })
	natstest.Eventually(t, 10*time.Second, "ready", func() bool { return l.Ready() == nil })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A managed durable fanin can use is projected from, and left exactly as the operator made it:
// not updated (its ack wait differs from fanin's), not labelled, not recreated.
func TestManagedDurableIsProjectedFromAndLeftAlone(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	stream := natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 100)
	cfg := testConfig()
	cc := fanins(cfg)
	cc.AckWait = 20 * time.Second
	cc.Metadata = map[string]string{"owner": "terraform"}
	if _, err := stream.CreateConsumer(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	before := consumerInfo(t, js, cfg.Durable)

	w := newRecorder()
	led := newLedger("db")
	l := batch.New(cfg, js, w, batch.WithLogger(quiet), batch.WithManaged(true), batch.WithLedger(led),
		batch.WithReplay(true), batch.WithWatchInterval(50*time.Millisecond))
	stop := run(t, l)
	natstest.Eventually(t, 20*time.Second, "everything projected and acked", func() bool {
		return w.distinct() == 100 && natstest.ConsumerDrained(t, js, "EVENTS", cfg.Durable)
	})
	natstest.Eventually(t, 10*time.Second, "the safe point saved", func() bool { return led.safePoint(cfg.Durable) == 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	after := consumerInfo(t, js, cfg.Durable)
	if !after.Created.Equal(before.Created) {
		t.Fatal("the managed durable was recreated")
	}
	if !reflect.DeepEqual(after.Config, before.Config) {
		t.Fatalf("the managed durable was updated:\n got  %+v\n want %+v", after.Config, before.Config)
	}
}

// A managed durable that cannot be used — another ack policy, another filter — stops Run at
// once with ErrUnsuitableDurable, a permanent error: no waiting, no recreating.
func TestUnsuitableManagedDurableStopsRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*jetstream.ConsumerConfig)
		want string
	}{
		{"ack all", func(c *jetstream.ConsumerConfig) { c.AckPolicy = jetstream.AckAllPolicy }, "ack_policy AckAll, want AckExplicit"},
		{"another filter", func(c *jetstream.ConsumerConfig) { c.FilterSubject = "events.other.>" }, `filter_subject "events.other.>"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Run(t)
			_, js := natstest.Connect(t, srv.ClientURL())
			stream := natstest.CreateStream(t, js, "EVENTS", "events.>")
			publish(t, js, 10)
			cfg := testConfig()
			cc := fanins(cfg)
			tc.edit(&cc)
			if _, err := stream.CreateConsumer(context.Background(), cc); err != nil {
				t.Fatal(err)
			}
			before := consumerInfo(t, js, cfg.Durable)
			w := newRecorder()
			l := batch.New(cfg, js, w, batch.WithLogger(quiet), batch.WithManaged(true), batch.WithLedger(newLedger("db")))
			err := runUntilItStops(t, l)
			if !errors.Is(err, batch.ErrUnsuitableDurable) || !fault.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run returned %v, want a permanent ErrUnsuitableDurable saying %q", err, tc.want)
			}
			if w.distinct() != 0 {
				t.Errorf("%d messages projected from an unsuitable durable", w.distinct())
			}
			after := consumerInfo(t, js, cfg.Durable)
			if !after.Created.Equal(before.Created) || !reflect.DeepEqual(after.Config, before.Config) {
				t.Fatalf("the managed durable was changed: %+v", after.Config)
			}
		})
	}
}

// runUntilItStops runs l and returns what Run returns, failing if it does not stop by itself.
func runUntilItStops(t *testing.T, l *batch.Loop) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("Run did not stop by itself")
		return nil
	}
}

// A managed durable's filter edited while the loop runs: fanin does not recreate it; the loop
// goes unready and Run stops with ErrUnsuitableDurable, saying to recreate it from the safe point.
func TestManagedDurableEditedWhileRunningIsNotRecreated(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	stream := natstest.CreateStream(t, js, "EVENTS", "events.>")
	ctx := context.Background()
	cfg := testConfig()
	if _, err := stream.CreateConsumer(ctx, fanins(cfg)); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 100)
	w := newRecorder()
	led := newLedger("db")
	l := batch.New(cfg, js, w, batch.WithLogger(quiet), batch.WithManaged(true), batch.WithLedger(led),
		batch.WithWatchInterval(50*time.Millisecond))
	done := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- l.Run(rctx) }()
	natstest.Eventually(t, 20*time.Second, "first 100 projected, safe point saved", func() bool { return led.safePoint(cfg.Durable) == 100 })

	edited := fanins(cfg)
	edited.FilterSubject = "events.nothing.>"
	if _, err := stream.UpdateConsumer(ctx, edited); err != nil {
		t.Fatal(err)
	}
	before := consumerInfo(t, js, cfg.Durable)
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run still running on an unsuitable managed durable")
	}
	if !errors.Is(err, batch.ErrUnsuitableDurable) || !strings.Contains(err.Error(), "while it ran") ||
		!strings.Contains(err.Error(), "--deliver 101") || !strings.Contains(err.Error(), "from stream sequence 101") {
		t.Fatalf("Run returned %v, want ErrUnsuitableDurable saying to recreate it from stream sequence 101", err)
	}
	if l.Ready() == nil {
		t.Error("ready after stopping")
	}
	after := consumerInfo(t, js, cfg.Durable)
	if after == nil || !after.Created.Equal(before.Created) || after.Config.FilterSubject != "events.nothing.>" {
		t.Fatalf("the managed durable was recreated or changed back: %+v", after)
	}
}
