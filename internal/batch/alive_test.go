package batch_test

import (
	"strings"
	"testing"
	"time"

	"fanin/internal/batch"
	"fanin/internal/natstest"
)

// TestAWriteThatNeverReturnsIsStalledAndAWaitingLoopIsNot: Stalled is judged at a given
// time, so the test asks about the future instead of waiting for it.
func TestAWriteThatNeverReturnsIsStalledAndAWaitingLoopIsNot(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig()
	w := newRecorder()
	w.blockCh = make(chan struct{})
	l := batch.New(cfg, js, w, batch.WithLogger(quiet))
	if err := l.Stalled(time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("before Run: Stalled = %v, want nil", err)
	}

	// No stream yet: the loop waits to bind, and each attempt is a sign of life.
	stop := run(t, l)
	time.Sleep(50 * time.Millisecond)
	if err := l.Stalled(time.Now()); err != nil {
		t.Fatalf("waiting for the stream: Stalled = %v, want nil", err)
	}
	if err := l.Stalled(time.Now().Add(cfg.StallAfter() + time.Minute)); err == nil {
		t.Fatal("no sign of life for longer than StallAfter, but Stalled = nil")
	}

	natstest.CreateStream(t, js, "EVENTS", "events.>")
	publish(t, js, 10)
	natstest.Eventually(t, 10*time.Second, "a write begun", func() bool { return w.entered.Load() > 0 })
	if err := l.Stalled(time.Now()); err != nil {
		t.Fatalf("a write just begun: Stalled = %v, want nil", err)
	}
	err := l.Stalled(time.Now().Add(cfg.StallAfter() + time.Second))
	if err == nil || !strings.Contains(err.Error(), "write stuck") {
		t.Fatalf("a write under way for longer than StallAfter: Stalled = %v, want the write named", err)
	}

	close(w.blockCh)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := l.Stalled(time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("after Run returned: Stalled = %v, want nil", err)
	}
}
