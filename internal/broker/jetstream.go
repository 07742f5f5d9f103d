package broker

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream returns a JetStream context on the connection that addresses the configured
// domain or API prefix (ConnConfig.JSDomain, JSAPIPrefix), or the account's own JetStream.
// Every JetStream fanin uses comes from here, so the projections, the output reader and
// dead-letter replay all reach the same one.
func (c *Conn) JetStream(opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	var (
		js  jetstream.JetStream
		err error
	)
	switch {
	case c.cfg.JSDomain != "":
		js, err = jetstream.NewWithDomain(c.Conn, c.cfg.JSDomain, opts...)
	case c.cfg.JSAPIPrefix != "":
		js, err = jetstream.NewWithAPIPrefix(c.Conn, c.cfg.JSAPIPrefix, opts...)
	default:
		js, err = jetstream.New(c.Conn, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return js, nil
}

// WaitConnected returns once the connection is up, or ctx's error: for a command that has
// one thing to do (dead-letter replay), where a publish before the first connection would
// fail with a misleading error (nats.go says the server does not support headers).
func (c *Conn) WaitConnected(ctx context.Context) error {
	ch := c.StatusChanged(nats.CONNECTED)
	defer c.RemoveStatusListener(ch)
	if c.IsConnected() {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("not connected to NATS at %s: %w", redactAll(c.cfg.URL), ctx.Err())
	}
}
