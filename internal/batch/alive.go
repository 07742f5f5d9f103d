package batch

import (
	"fmt"
	"time"
)

// livenessSlack is what Stalled allows beyond the longest wait a stage makes on purpose: a
// slow commit, a slow server.
const livenessSlack = time.Minute

// heartbeat records that the fetch stage is not stuck: a fetch came back, or an attempt to
// bind the durable was made.
func (l *Loop) heartbeat() { l.fetchBeat.Store(time.Now().UnixNano()) }

// StallAfter is how long a stage of a running Loop may stay in one place before Stalled says
// it is stuck: the longest a stage waits on purpose (a pause after a failed write, at most a
// third of AckWait, during which the fetch stage waits too; a fetch, MaxWait; a retry, at
// most RetryMax), plus a minute for a slow commit or server.
func (c Config) StallAfter() time.Duration {
	return c.AckWait + c.RetryMax + c.MaxWait + livenessSlack
}

// Stalled reports, as of now, whether the loop is stuck: Run is running, and the fetch stage
// has not come back from a fetch (or a bind attempt) for longer than StallAfter, or one write
// to the store has lasted longer than that. A loop waiting for NATS, for its stream or
// durable, or for a locked database is not stalled (it retries, and each attempt counts); a
// deadlock or a call that never returns is. It returns nil before Run and after it returned.
// A service supervisor's watchdog is the intended user: a stalled process is better
// restarted.
func (l *Loop) Stalled(now time.Time) error {
	limit := l.cfg.StallAfter()
	for i := range l.writeSince {
		if since := l.writeSince[i].Load(); since != 0 {
			if busy := now.Sub(time.Unix(0, since)); busy > limit {
				return fmt.Errorf("write stuck for %s (more than %s)", busy.Round(time.Second), limit)
			}
		}
	}
	if last := l.fetchBeat.Load(); last != 0 {
		if quiet := now.Sub(time.Unix(0, last)); quiet > limit {
			return fmt.Errorf("fetch stage stuck for %s (more than %s)", quiet.Round(time.Second), limit)
		}
	}
	return nil
}
