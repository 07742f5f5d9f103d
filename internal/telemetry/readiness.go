package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// DefaultReadyCacheTTL is how long Readiness reuses a verdict.
const DefaultReadyCacheTTL = time.Second

// checkTimeout bounds each check of a Readiness.
const checkTimeout = 2 * time.Second

// Check is one condition of readiness: Func returns nil when it holds, else an error that says
// why not ("not connected to NATS"). It must be cheap and must not wait on the writer.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Readiness answers /readyz: the process is ready when every check passes. Verdicts are cached
// for the TTL, so a probe storm costs one round of checks a second.
type Readiness struct {
	ttl    time.Duration
	checks []Check

	mu  sync.Mutex
	at  time.Time // when err was computed; zero: never
	err error
}

// NewReadiness returns a Readiness over checks, caching verdicts for ttl (zero: the default).
func NewReadiness(ttl time.Duration, checks ...Check) *Readiness {
	if ttl <= 0 {
		ttl = DefaultReadyCacheTTL
	}
	return &Readiness{ttl: ttl, checks: checks}
}

// Ready returns nil when every check passes, else an error naming each failing one: e.g.
// "nats: not connected; database: last write failed 3s ago: database is locked".
func (r *Readiness) Ready(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < r.ttl {
		return r.err
	}
	var errs []error
	for _, c := range r.checks {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := c.Func(cctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	r.at, r.err = time.Now(), joinLine(errs)
	return r.err
}

// Observe registers the fanin.ready gauge (fanin_ready in Prometheus) on mp: 1 while every
// check passes, 0 otherwise — the verdict /readyz gives, read at each collection through the
// same cache. It is one series per process, without attributes, so that "not ready" can be
// alerted on from the metrics alone (fanin_ready == 0) rather than by probing /readyz. The
// gauge lives as long as mp.
func (r *Readiness) Observe(mp metric.MeterProvider) error {
	_, err := mp.Meter(ScopeName).Int64ObservableGauge("fanin.ready",
		metric.WithDescription("1 while the process is ready (as /readyz answers 200), else 0."),
		metric.WithInt64Callback(func(ctx context.Context, o metric.Int64Observer) error {
			var v int64
			if r.Ready(ctx) == nil {
				v = 1
			}
			o.Observe(v)
			return nil
		}))
	if err != nil {
		return fmt.Errorf("readiness gauge: %w", err)
	}
	return nil
}

// joinLine joins errs on one line, separated by "; ".
func joinLine(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msg := errs[0].Error()
	for _, e := range errs[1:] {
		msg += "; " + e.Error()
	}
	return errors.New(msg)
}
