package batch

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/fault"
)

// rebind binds the durable (again), marking the loop unbound meanwhile, and records the
// binding. It returns an error only when ctx ends or binding can never succeed.
func (l *Loop) rebind(ctx context.Context) (jetstream.Consumer, error) {
	l.bindMu.Lock()
	defer l.bindMu.Unlock()
	l.bound.Store(false)
	b, err := l.bindRetrying(ctx)
	if err != nil {
		return nil, err
	}
	l.binding.Store(&b)
	l.bound.Store(true)
	return b.Consumer, nil
}

// bindRetrying calls EnsureConsumer until it succeeds, backing off on failure. Only what can
// never succeed (fault.IsPermanent) — a configuration the server refuses outright, a durable
// that feeds another database, a managed durable fanin cannot use — is returned as an error,
// and ctx's error when it ends. A managed durable that does not exist is waited for, and what
// to create is logged once.
func (l *Loop) bindRetrying(ctx context.Context) (Binding, error) {
	bo := l.newBackoff(5 * time.Second)
	missingLogged := false
	for attempt := 0; ; attempt++ {
		l.heartbeat()
		b, err := EnsureConsumer(ctx, l.js, l.cfg, l.bind, l.log)
		if err == nil {
			if attempt > 0 {
				l.log.Info("durable bound again", "attempts", attempt+1)
			}
			return b, nil
		}
		if ctx.Err() != nil {
			return Binding{}, ctx.Err()
		}
		if fault.IsPermanent(err) {
			return Binding{}, err // retrying changes nothing
		}
		d := bo.NextBackOff()
		switch {
		case errors.Is(err, ErrDurableMissing):
			if missingLogged {
				l.log.Debug("durable still does not exist", "retry_in", d)
				break
			}
			missingLogged = true
			l.log.Warn("durable does not exist, and it is managed elsewhere: waiting for it to be created, not ready meanwhile", "err", err)
		case attempt > 0 && attempt%20 != 0:
			l.log.Debug("cannot bind the durable yet", "err", err, "retry_in", d)
		case errors.Is(err, ErrStreamMissing):
			l.log.Warn("stream does not exist: waiting for it to be created", "retry_in", d)
		default:
			l.log.Warn("cannot bind the durable: retrying", "err", err, "retry_in", d)
		}
		if !sleep(ctx, d) {
			return Binding{}, ctx.Err()
		}
	}
}
