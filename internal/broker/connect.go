package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnConfig says how to reach NATS. The security options work as the nats CLI's do.
type ConnConfig struct {
	// URL is one or more server URLs, comma-separated (nats://, tls://).
	URL string
	// Creds is a credentials file (JWT + NKey seed), or "".
	Creds string
	// TLSCA, TLSCert and TLSKey are PEM files: a CA to trust, and a client certificate and key
	// for mutual TLS. Any of them enables TLS.
	TLSCA, TLSCert, TLSKey string
	// Name is the connection name the server shows (default "fanin").
	Name string
}

// Conn is a NATS connection with a way to drain it completely.
type Conn struct {
	*nats.Conn
	closed chan struct{}
}

// Connect dials NATS. A server that is down at start is retried in the background, forever, as
// is a lost connection later: the pull loops back off until it is up.
func Connect(ctx context.Context, cfg ConnConfig, log *slog.Logger) (*Conn, error) {
	if cfg.URL == "" {
		return nil, errors.New("--nats-url must not be empty")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	closed := make(chan struct{})
	name := cfg.Name
	if name == "" {
		name = "fanin"
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(16 << 20), // acks published while reconnecting
		nats.DrainTimeout(30 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ConnectHandler(func(nc *nats.Conn) { log.Info("NATS connected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Warn("NATS error", "err", err) }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	}
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", cfg.URL, err)
	}
	if !nc.IsConnected() {
		log.Warn("NATS is not reachable yet: retrying in the background", "url", cfg.URL)
	}
	return &Conn{Conn: nc, closed: closed}, nil
}

// Drain flushes what the client still holds (acks above all), unsubscribes, closes the
// connection, and waits until it is closed or ctx ends. nats.Conn.Drain alone returns at once.
func (c *Conn) Drain(ctx context.Context) error {
	if c.IsClosed() {
		return nil
	}
	if err := c.Conn.Drain(); err != nil {
		c.Close()
		return fmt.Errorf("drain NATS connection: %w", err)
	}
	select {
	case <-c.closed:
		return nil
	case <-ctx.Done():
		c.Close()
		return fmt.Errorf("drain NATS connection: %w", ctx.Err())
	}
}
