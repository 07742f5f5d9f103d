package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/broker"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
	"fanin/internal/telemetry"
)

// attrLog is what an attrChecker saw: every record's message, and the records that carried
// an attribute key twice.
type attrLog struct {
	mu       sync.Mutex
	messages []string
	repeated []string // "msg: key"
}

func (l *attrLog) seen(prefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.messages {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

// attrChecker is a slog.Handler that records, in log, each record carrying the same attribute
// key twice: its own attributes, those its logger was made With, group members by their full
// path (a.b), as a text or JSON handler would write them.
type attrChecker struct {
	log    *attrLog
	prefix string   // the open groups, "a.b."
	keys   []string // keys With gave, qualified
}

func (h *attrChecker) Enabled(context.Context, slog.Level) bool { return true }

func (h *attrChecker) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.keys = appendKeys(append([]string(nil), h.keys...), h.prefix, attrs)
	return &c
}

func (h *attrChecker) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix += name + "."
	return &c
}

func (h *attrChecker) Handle(_ context.Context, r slog.Record) error {
	var attrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	keys := appendKeys(append([]string(nil), h.keys...), h.prefix, attrs)
	seen := map[string]bool{}
	h.log.mu.Lock()
	defer h.log.mu.Unlock()
	h.log.messages = append(h.log.messages, r.Message)
	for _, k := range keys {
		if seen[k] {
			h.log.repeated = append(h.log.repeated, r.Message+": "+k)
		}
		seen[k] = true
	}
	return nil
}

// appendKeys appends the keys of attrs, qualified by prefix, inlining groups as slog does.
func appendKeys(keys []string, prefix string, attrs []slog.Attr) []string {
	for _, a := range attrs {
		v := a.Value.Resolve()
		switch {
		case v.Kind() == slog.KindGroup && a.Key == "":
			keys = appendKeys(keys, prefix, v.Group())
		case v.Kind() == slog.KindGroup:
			keys = appendKeys(keys, prefix+a.Key+".", v.Group())
		case a.Key != "":
			keys = append(keys, prefix+a.Key)
		}
	}
	return keys
}

// TestNoLogRecordRepeatsAnAttribute runs the ingester through the paths that log about its
// durables — one updated in place, one recreated because its filter was edited, created
// streams, a broadcast with poison, a missing output bucket, the shutdown — with every record
// checked: none may carry the same key twice (the loop's logger already carries projection,
// stream and durable; what it calls must not add them again).
func TestNoLogRecordRepeatsAnAttribute(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	ctx := context.Background()
	for _, sc := range []jetstream.StreamConfig{broker.EventsStream(cfg.Events.Stream), broker.ResultsStream(cfg.Results.Stream)} {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	// The events durable with another ack wait (updated in place), the results durable with an
	// edited filter (recreated).
	for _, cc := range []jetstream.ConsumerConfig{
		{Durable: cfg.Events.Durable, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: cfg.Events.FilterSubject, AckWait: time.Minute},
		{Durable: cfg.Results.Durable, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "results.nothing.>"},
	} {
		stream := cfg.Events.Stream
		if cc.Durable == cfg.Results.Durable {
			stream = cfg.Results.Stream
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, stream, cc); err != nil {
			t.Fatal(err)
		}
	}
	b := testBroadcast(50, 17)
	fleettest.CreateExecution(t, cfg.DB.Path, b)

	log := &attrLog{}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := openApp(runCtx, cfg, slog.New(telemetry.NewLogHandler(&attrChecker{log: log})))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { done <- runUntilStopped(runCtx, a) }()
	publishAll(t, js, b.Messages())
	fleettest.WaitDrained(t, js, 30*time.Second)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d", code)
	}

	for _, msg := range []string{"durable existed with other settings", "recreated durable", "projecting"} {
		if !log.seen(msg) {
			t.Errorf("no %q record: the run did not go where this test means it to (records: %q)", msg, log.messages)
		}
	}
	for _, r := range log.repeated {
		t.Errorf("record repeats an attribute: %s", r)
	}
}
