package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"fanin/internal/sdnotify"
	"fanin/internal/telemetry"
)

// How often notify looks at the app: often while starting, so READY=1 follows readiness
// closely; then at least every statusEvery, and every half WatchdogSec when that is shorter.
const (
	startingEvery = 250 * time.Millisecond
	statusEvery   = 5 * time.Second
)

// systemd is what ingest tells the service manager that started it with $NOTIFY_SOCKET set (a
// Type=notify unit): nil, or with a nil Notifier, when none did.
type systemd struct {
	n        *sdnotify.Notifier
	watchdog time.Duration // how often to send WATCHDOG=1; 0: no watchdog
	log      *slog.Logger
	now      func() time.Time // the clock stalls are judged by; nil: time.Now (tests move it on)
}

// newSystemd reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. A malformed variable is
// logged and that part left out: ingest runs all the same.
func newSystemd(getenv func(string) string, log *slog.Logger) *systemd {
	n, err := sdnotify.New(getenv)
	if err != nil {
		log.Warn("not notifying systemd", "err", err)
		return nil
	}
	sd := &systemd{n: n, log: log}
	switch d, err := sdnotify.WatchdogInterval(getenv, os.Getpid()); {
	case err == nil:
		sd.watchdog = d
	case !errors.Is(err, sdnotify.ErrNoWatchdog):
		log.Warn("not sending watchdog pings", "err", err)
	}
	return sd
}

// send sends states, logging (at debug: systemd may be gone at shutdown) when it cannot.
func (sd *systemd) send(states ...string) {
	if sd == nil {
		return
	}
	if err := sd.n.Send(states...); err != nil {
		sd.log.Debug("cannot notify systemd", "err", err)
	}
}

// notify tells systemd how the app is doing until ctx ends:
//   - READY=1, once, the first time every /readyz check passes: connected to NATS, both durables
//     bound, and the database writable (openApp migrated it, each migration in a BEGIN
//     IMMEDIATE transaction, which a file fanin cannot write refuses; no write failed since);
//   - STATUS= whenever the verdict changes ("ready: ingesting into fanin.db", or "not ready:"
//     and what /readyz says);
//   - WATCHDOG=1 every half WatchdogSec, after READY=1, while no projection is stalled
//     (batch.Loop.Stalled). Not tied to readiness: NATS down or a database locked by another
//     process are waited out with backoff, and a restart would not help; a stage stuck in one
//     call is what the watchdog is for.
func (a *app) notify(ctx context.Context) {
	sd := a.systemd
	if sd == nil || sd.n == nil {
		return
	}
	every := statusEvery
	if sd.watchdog > 0 {
		every = min(every, sd.watchdog)
	}
	checks := telemetry.NewReadiness(time.Millisecond, a.health.checks()...)
	ready, status, stalled := false, "", false
	for {
		err := checks.Ready(ctx)
		if ctx.Err() != nil {
			return
		}
		var states []string
		if err == nil && !ready {
			ready = true
			states = append(states, sdnotify.Ready)
			a.log.Info("ready: notified systemd")
		}
		if s := statusLine(a.cfg.DB.Path, err); s != status {
			status = s
			states = append(states, sdnotify.Status(s))
		}
		if ready && sd.watchdog > 0 {
			now := time.Now
			if sd.now != nil {
				now = sd.now
			}
			switch err := a.stalled(now()); {
			case err == nil:
				stalled = false
				states = append(states, sdnotify.Watchdog)
			case !stalled:
				stalled = true
				a.log.Error("stalled: no more watchdog pings, systemd will restart ingest", "err", err)
			}
		}
		sd.send(states...)

		wait := every
		if !ready {
			wait = startingEvery
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// statusLine is the STATUS= text for a readiness verdict.
func statusLine(db string, notReady error) string {
	if notReady != nil {
		return "not ready: " + notReady.Error()
	}
	return "ready: ingesting into " + db
}

// stalled reports the first projection that is stuck (see batch.Loop.Stalled), or nil.
func (a *app) stalled(now time.Time) error {
	for _, l := range a.loops {
		if err := l.Stalled(now); err != nil {
			return fmt.Errorf("%s projection: %w", l.Config().Kind, err)
		}
	}
	return nil
}
