package batch_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"fanin/internal/batch"
	"fanin/internal/codec"
	"fanin/internal/fault"
	"fanin/internal/natstest"
	"fanin/internal/store"
)

// jitteryStore is a ConcurrentStore whose writes take a random little while, fail now and
// then, and may overlap. It remembers which messages each write that returned without error
// committed, and how many writes overlapped at most.
type jitteryStore struct {
	writers int // what ConcurrentWriters says
	failing func(call int) bool

	// gate, when set, holds every write until it is closed; entered counts the writes begun.
	gate    chan struct{}
	entered atomic.Int32

	mu        sync.Mutex
	calls     int
	inFlight  int
	overlap   int            // most writes in flight at once
	committed map[uint64]int // stream seq → writes that committed it
}

func newJitteryStore(writers int) *jitteryStore {
	return &jitteryStore{writers: writers, committed: map[uint64]int{}}
}

func (s *jitteryStore) ConcurrentWriters() int { return s.writers }

func (s *jitteryStore) Write(ctx context.Context, recs []codec.Record) (store.Report, error) {
	s.entered.Add(1)
	s.mu.Lock()
	s.calls++
	call := s.calls
	s.inFlight++
	s.overlap = max(s.overlap, s.inFlight)
	s.mu.Unlock()
	if s.gate != nil {
		<-s.gate
	}
	time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // a commit takes a while
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	if s.failing != nil && s.failing(call) {
		return store.Report{}, errors.New("could not serialize access due to concurrent update")
	}
	for _, r := range recs {
		s.committed[r.Seq]++
	}
	return store.Report{}, nil
}

func (s *jitteryStore) isCommitted(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed[seq] > 0
}

// ackWatch records every ack, nak and termination fanin sends for stream, as the server sees
// them, and whether each ack came after the store committed its message.
type ackWatch struct {
	mu        sync.Mutex
	acks      map[uint64]int // stream seq → +ACKs
	naks      int
	early     []uint64 // acked before any write committed them
	malformed []string
}

func watchAcks(t *testing.T, url, stream string, committed func(seq uint64) bool) *ackWatch {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := &ackWatch{acks: map[uint64]int{}}
	_, err = nc.Subscribe("$JS.ACK."+stream+".>", func(m *nats.Msg) {
		seq, ok := ackedSeq(m.Subject)
		w.mu.Lock()
		defer w.mu.Unlock()
		if !ok {
			w.malformed = append(w.malformed, m.Subject)
			return
		}
		switch body := string(m.Data); {
		case body == "+ACK" || body == "":
			if !committed(seq) {
				w.early = append(w.early, seq)
			}
			w.acks[seq]++
		case len(body) >= 4 && body[:4] == "-NAK":
			w.naks++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// ackedSeq reads the stream sequence out of a message's reply subject:
// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>, or the
// form with a domain and an account hash after $JS.ACK and a random token at the end.
func ackedSeq(subject string) (uint64, bool) {
	tok := strings.Split(subject, ".")
	var s string
	switch len(tok) {
	case 9:
		s = tok[5]
	case 12:
		s = tok[7]
	default:
		return 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	return seq, err == nil
}

// TestSeveralWritersLoseNothingAndAckOnlyWhatTheyCommitted runs the loop with one and with
// two writers against a store that is slow by fits and fails one write in five: every message
// is committed once and acked once, never before its commit, the failed writes are naked and
// retried, and with two writers, two writes overlap.
func TestSeveralWritersLoseNothingAndAckOnlyWhatTheyCommitted(t *testing.T) {
	const n = 3000
	for _, tc := range []struct {
		name    string
		writers int
	}{
		{"one writer", 1},
		{"two writers", 2},
		{"the store's choice: two", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Run(t)
			_, js := natstest.Connect(t, srv.ClientURL())
			natstest.CreateStream(t, js, "EVENTS", "events.>")
			publish(t, js, n)

			st := newJitteryStore(2)
			st.failing = func(call int) bool { return call%5 == 3 }
			// Until two writes are in hand at once, none ends: with two writers, both take a
			// group of the backlog before either commits.
			want := tc.writers
			if want == 0 {
				want = st.writers
			}
			st.gate = make(chan struct{})
			acks := watchAcks(t, srv.ClientURL(), "EVENTS", st.isCommitted)
			cfg := testConfig()
			cfg.Writers = tc.writers
			l := batch.New(cfg, js, st, batch.WithLogger(quiet))
			if got := l.Config().Writers; got != want {
				t.Fatalf("Config().Writers = %d, want %d", got, want)
			}
			stop := run(t, l)
			natstest.Eventually(t, 20*time.Second, "the writers holding a group each", func() bool {
				return int(st.entered.Load()) >= want
			})
			close(st.gate)
			natstest.Eventually(t, 10*time.Second, "every message acked", func() bool {
				acks.mu.Lock()
				defer acks.mu.Unlock()
				return len(acks.acks) == n && natstest.ConsumerDrained(t, js, "EVENTS", cfg.Durable)
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			st.mu.Lock()
			defer st.mu.Unlock()
			acks.mu.Lock()
			defer acks.mu.Unlock()
			if len(acks.malformed) > 0 {
				t.Fatalf("ack subjects that do not parse: %q", acks.malformed[:min(3, len(acks.malformed))])
			}
			if len(acks.early) > 0 {
				t.Errorf("%d messages acked before a write committed them, e.g. seq %d", len(acks.early), acks.early[0])
			}
			for seq := uint64(1); seq <= n; seq++ {
				if c := st.committed[seq]; c != 1 {
					t.Errorf("seq %d committed %d times, want once", seq, c)
				}
				if a := acks.acks[seq]; a != 1 {
					t.Errorf("seq %d acked %d times, want once", seq, a)
				}
			}
			if st.overlap != want {
				t.Errorf("at most %d writes in flight at once, want %d", st.overlap, want)
			}
			if st.calls < 3 || acks.naks == 0 || l.Stats.Naked.Load() == 0 {
				t.Errorf("%d writes, %d naks seen, %d naked: the failing writes were not naked and retried",
					st.calls, acks.naks, l.Stats.Naked.Load())
			}
			if got := l.Stats.Acked.Load(); got != n {
				t.Errorf("Stats.Acked = %d, want %d", got, n)
			}
		})
	}
}

// TestShutdownFinishesEveryWritersBatch stops the loop while each writer is inside a write:
// Run returns only once all of them committed and acked what they held.
func TestShutdownFinishesEveryWritersBatch(t *testing.T) {
	for _, writers := range []int{1, 2, 3} {
		t.Run(map[int]string{1: "one writer", 2: "two writers", 3: "three writers"}[writers], func(t *testing.T) {
			srv := natstest.Run(t)
			_, js := natstest.Connect(t, srv.ClientURL())
			natstest.CreateStream(t, js, "EVENTS", "events.>")
			publish(t, js, 2000)

			st := newJitteryStore(writers)
			st.gate = make(chan struct{})
			cfg := testConfig()
			cfg.Writers = writers
			l := batch.New(cfg, js, st, batch.WithLogger(quiet))
			stop := run(t, l)
			natstest.Eventually(t, 10*time.Second, "every writer inside a write", func() bool {
				return int(st.entered.Load()) == writers
			})
			stopped := make(chan error, 1)
			go func() { stopped <- stop() }()
			time.Sleep(100 * time.Millisecond) // the loop is stopping, with the writes blocked
			close(st.gate)
			if err := <-stopped; err != nil {
				t.Fatal(err)
			}
			st.mu.Lock()
			committed := len(st.committed)
			st.mu.Unlock()
			if a := l.Stats.Acked.Load(); a == 0 || uint64(committed) != a {
				t.Fatalf("acked %d, committed %d: a batch in hand was not finished", a, committed)
			}
			if st.overlap != writers {
				t.Errorf("at most %d writes in flight at once, want %d", st.overlap, writers)
			}
			// Acks are fire-and-forget: the server may count the last ones a moment after Run
			// returned, well before the AckWait (6s) would redeliver a message never acked.
			natstest.Eventually(t, 5*time.Second, "no message delivered and not acked", func() bool {
				cons, err := js.Consumer(context.Background(), "EVENTS", cfg.Durable)
				if err != nil {
					return false
				}
				info, err := cons.Info(context.Background())
				return err == nil && info.NumAckPending == 0
			})
		})
	}
}

// TestASingleWriterStoreGetsOneWriter: a store that is not a ConcurrentStore (SQLite's) gets
// one writer by default, and Run refuses more.
func TestASingleWriterStoreGetsOneWriter(t *testing.T) {
	w := newRecorder()
	if got := batch.New(testConfig(), nil, w).Config().Writers; got != 1 {
		t.Errorf("Writers = %d by default on a single-writer store, want 1", got)
	}
	cfg := testConfig()
	cfg.Writers = 2
	err := batch.New(cfg, nil, w, batch.WithLogger(quiet)).Run(context.Background())
	if field, fe := fault.Field(err); fe == nil || field != "Writers" {
		t.Fatalf("Run with Writers 2 on a single-writer store = %v, want an error about Writers", err)
	}
	if got := batch.New(testConfig(), nil, newJitteryStore(3)).Config().Writers; got != 3 {
		t.Errorf("Writers = %d by default on a store asking for 3, want 3", got)
	}
}
