// Package broker connects fanin to NATS: it starts the embedded JetStream server of the
// single-binary mode, dials a real cluster with the nats CLI's security options, and creates
// the streams with the original system's settings.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"fanin/internal/fault"
)

// Embedded is an in-process JetStream server.
type Embedded struct {
	srv *server.Server
}

// ValidateListenAddr reports, as a *fault.FieldError about "ListenAddr", an embedded server
// address that can never work: not host:port, or a port out of range. Port 0 picks a free port.
func ValidateListenAddr(addr string) error {
	_, err := listenPort(addr)
	return err
}

func listenPort(addr string) (int, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fault.Fieldf("ListenAddr", "%q: want host:port", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return 0, fault.Fieldf("ListenAddr", "%q: port %q is not between 0 and 65535", addr, portStr)
	}
	return port, nil
}

// StartEmbedded starts a JetStream server listening on addr ("host:port"; port 0 picks a free
// one) and storing under dir (created if missing), and waits until it accepts connections, ctx
// ends, or the server fails. A dir that is not a directory, or an address something else
// listens on, is a *fault.FieldError, reported before the server starts: addr is named
// "ListenAddr" and dir "DataDir".
func StartEmbedded(ctx context.Context, addr, dir string, log *slog.Logger) (*Embedded, error) {
	port, err := listenPort(addr)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded nats on %s: %w", addr, err)
	}
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else if err := checkListen(addr); err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
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
	logger := &serverLogger{log: log, fatal: make(chan string, 1)}
	srv.SetLogger(logger, false, false)
	go srv.Start()

	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	deadline := time.Now().Add(timeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		var err error
		select {
		case msg := <-logger.fatal:
			err = fmt.Errorf("embedded nats on %s: %s", addr, msg)
		case <-ctx.Done():
			err = fmt.Errorf("embedded nats on %s: %w", addr, ctx.Err())
		default:
			if time.Now().After(deadline) {
				err = fmt.Errorf("embedded nats on %s: not ready after %s", addr, timeout)
			}
		}
		if err != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
			return nil, err
		}
	}
	log.Info("embedded NATS server started", "url", srv.ClientURL(), "store", dir)
	return &Embedded{srv: srv}, nil
}

// checkDataDir creates dir if missing and says plainly when it is not a directory (the server
// would only report a failed start).
func checkDataDir(dir string) error {
	if dir == "" {
		return fault.Fieldf("DataDir", "must not be empty")
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fault.Fieldf("DataDir", "%q: not a directory", dir)
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fault.Fieldf("DataDir", "%q: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fault.Fieldf("DataDir", "%q: %w", dir, err)
	}
	return nil
}

// checkListen listens on addr once, so that a taken port is reported as such: the server
// itself only fails to become ready.
func checkListen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = errors.New("address already in use (is another NATS server or ingest running?)")
		}
		return fault.Fieldf("ListenAddr", "%q: %w", addr, err)
	}
	return l.Close()
}

// serverLogger passes the embedded server's errors to the ingester's log, and its first fatal
// error to StartEmbedded, which is waiting for the server to be ready.
type serverLogger struct {
	log   *slog.Logger
	fatal chan string // capacity 1: the first fatal error
}

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error("embedded NATS server", "err", msg)
	select {
	case l.fatal <- msg:
	default:
	}
}

func (l *serverLogger) Errorf(format string, v ...any) {
	l.log.Warn("embedded NATS server", "err", fmt.Sprintf(format, v...))
}

func (l *serverLogger) Warnf(string, ...any)   {}
func (l *serverLogger) Noticef(string, ...any) {}
func (l *serverLogger) Debugf(string, ...any)  {}
func (l *serverLogger) Tracef(string, ...any)  {}

// URL is the address clients connect to.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Server returns the running server, for tests that need to stop and restart it.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits until it has stopped. It is idempotent.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
