package main

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fanin/internal/broker"
	"fanin/internal/natstest"
	"fanin/internal/sdnotify"
	"fanin/internal/sdnotifytest"
)

// TestSystemdHearsReadyOnlyOnceBothDurablesAreBound runs the ingester as a Type=notify unit
// would (a real unixgram socket in $NOTIFY_SOCKET, a watchdog): while the streams do not
// exist it says why it is not ready and neither READY=1 nor WATCHDOG=1 is sent; once they are
// created and both durables bound, READY=1, then WATCHDOG=1 pings, and STOPPING=1 at the
// shutdown.
func TestSystemdHearsReadyOnlyOnceBothDurablesAreBound(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	cfg.CreateStreams = false // the durables cannot be bound until the test creates the streams
	sock := sdnotifytest.Listen(t)
	vars := map[string]string{"NOTIFY_SOCKET": sock.Path, "WATCHDOG_USEC": "100000"} // a ping every 50ms
	r := startPrepared(t, cfg, func(a *app) { a.systemd = newSystemd(env(vars), quiet) })

	natstest.Eventually(t, 30*time.Second, "a status saying the durables are not bound", func() bool {
		return slices.ContainsFunc(sock.Messages(), func(m string) bool {
			return strings.Contains(m, "STATUS=not ready:") && strings.Contains(m, "durable not bound")
		})
	})
	if sock.Index(sdnotify.Ready) >= 0 || sock.Index(sdnotify.Watchdog) >= 0 {
		t.Fatalf("READY=1 or WATCHDOG=1 sent before the durables were bound: %q", sock.Messages())
	}

	err := broker.CreateStreams(context.Background(), js, quiet,
		broker.EventsStream(cfg.Events.Stream), broker.ResultsStream(cfg.Results.Stream))
	if err != nil {
		t.Fatal(err)
	}
	sock.Wait(t, sdnotify.Ready, 1, 30*time.Second)
	for _, l := range r.loops {
		if !l.Bound() {
			t.Fatalf("READY=1 sent, but the %s durable is not bound", l.Config().Kind)
		}
	}
	ready := sock.Index(sdnotify.Ready)
	if m := sock.Messages()[ready]; !strings.Contains(m, "STATUS=ready: ingesting into "+cfg.DB.Path) {
		t.Errorf("READY=1 came with %q, want the status saying so", m)
	}
	sock.Wait(t, sdnotify.Watchdog, 3, 30*time.Second)
	if w := sock.Index(sdnotify.Watchdog); w < ready {
		t.Errorf("WATCHDOG=1 (datagram %d) before READY=1 (%d)", w, ready)
	}

	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	msgs := sock.Messages()
	if sock.Count(sdnotify.Ready) != 1 || sock.Count(sdnotify.Stopping) != 1 ||
		!strings.Contains(msgs[len(msgs)-1], sdnotify.Stopping) {
		t.Fatalf("want one READY=1 and STOPPING=1 last, got %q", msgs)
	}
}

// TestNoWatchdogPingsForAnotherProcess: $WATCHDOG_PID naming another process means the
// variables were inherited; the watchdog is not this process's to feed.
func TestNoWatchdogPingsForAnotherProcess(t *testing.T) {
	srv := natstest.Run(t)
	cfg := testConfig(t, srv.ClientURL())
	sock := sdnotifytest.Listen(t)
	vars := map[string]string{"NOTIFY_SOCKET": sock.Path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}
	r := startPrepared(t, cfg, func(a *app) { a.systemd = newSystemd(env(vars), quiet) })
	sock.Wait(t, sdnotify.Ready, 1, 30*time.Second)
	r.stop()
	if n := sock.Count(sdnotify.Watchdog); n != 0 {
		t.Fatalf("%d WATCHDOG=1 pings with $WATCHDOG_PID naming another process", n)
	}
}

// TestAStalledProjectionGetsNoWatchdogPings: judged an hour later (the test moves the clock
// stalls are judged by), no stage has moved for longer than StallAfter: the round that finds it
// logs it once and sends no ping, so systemd would kill and restart the process.
func TestAStalledProjectionGetsNoWatchdogPings(t *testing.T) {
	srv := natstest.Run(t)
	cfg := testConfig(t, srv.ClientURL())
	sock := sdnotifytest.Listen(t)
	vars := map[string]string{"NOTIFY_SOCKET": sock.Path, "WATCHDOG_USEC": "100000"}
	var (
		later atomic.Bool
		log   syncBuffer
	)
	r := startPrepared(t, cfg, func(a *app) {
		a.log = slog.New(slog.NewTextHandler(&log, nil))
		a.systemd = newSystemd(env(vars), quiet)
		a.systemd.now = func() time.Time {
			if later.Load() {
				return time.Now().Add(time.Hour)
			}
			return time.Now()
		}
	})
	sock.Wait(t, sdnotify.Ready, 1, 30*time.Second)
	sock.Wait(t, sdnotify.Watchdog, 2, 30*time.Second)
	before := sock.Count(sdnotify.Watchdog)
	later.Store(true)
	natstest.Eventually(t, 30*time.Second, "the stall logged", func() bool {
		return strings.Contains(log.String(), "stalled: no more watchdog pings")
	})
	// At most the ping of a round that judged before the clock moved; none from the round
	// that logged the stall.
	if n := sock.Count(sdnotify.Watchdog); n > before+1 {
		t.Fatalf("%d WATCHDOG=1 pings after the projections stalled", n-before)
	}
	if !strings.Contains(log.String(), "write stuck") && !strings.Contains(log.String(), "fetch stage stuck") {
		t.Errorf("the log does not say which stage: %s", log.String())
	}
	r.stop()
}
