// Package broker connects fanin to NATS: it starts the embedded JetStream server of the
// single-binary mode, dials a real cluster with the nats CLI's security options, and creates
// the streams with the original system's settings.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded is an in-process JetStream server.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a JetStream server listening on addr ("host:port"; port 0 picks a free
// one) and storing under dir, and waits until it accepts connections.
func StartEmbedded(ctx context.Context, addr, dir string, log *slog.Logger) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--embedded-nats %q: want host:port: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--embedded-nats %q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "fanin-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true, // signals belong to the ingester
		NoLog:      true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go srv.Start()
	deadline := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = time.Until(d)
	}
	if !srv.ReadyForConnections(deadline) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats on %s: not ready after %s (is the port taken?)", addr, deadline)
	}
	log.Info("embedded NATS server started", "url", srv.ClientURL(), "store", dir)
	return &Embedded{srv: srv}, nil
}

// URL is the address clients connect to.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Server returns the running server, for tests that need to stop and restart it.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits until it has stopped. It is idempotent.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
