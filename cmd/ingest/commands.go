package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"fanin/internal/sdnotify"
	"fanin/internal/telemetry"
)

const runSynopsis = `ingest — project a PC fleet's execution events from NATS JetStream into SQLite, in batches.

Usage:
  ingest [run] [flags]    ingest until SIGINT, SIGTERM or SIGHUP (a second signal exits at once)
  ingest migrate [flags]  apply the database migrations and exit
  ingest demo [flags]     broadcast to a simulated fleet on the embedded server and ingest it
  ingest dead-letters [list|replay|purge] [flags]
                          list the messages set aside, republish them after a fix, or
                          delete old ones
  ingest version          the version: module version, VCS revision and time, Go version
                          (also --version)
  ingest help             this text

Each projection (started: EVENTS events.started.>, results: RESULTS results.>) fetches up to
--batch messages or whatever arrived within --wait, writes them in one transaction (SQLite or PostgreSQL),
then acks them; a failed write is naked with a growing delay; poison goes to dead_letters.

Exit codes: 0 after a clean stop (a signal, and the graceful shutdown completed: whatever was
not acked is redelivered later); 1 when ingest failed, or its shutdown failed or timed out;
2 for a setting that can never work; 130 on a second signal.`

// Main runs the command line args and returns the exit code: 0 success, 1 failure, 2 bad usage
// (a setting that can never work, reported in one line before anything is opened). Cancelling
// ctx starts a graceful shutdown; a run stopped that way exits 0 once the shutdown completed,
// even when it was still waiting for NATS, 1 only when the shutdown failed or timed out.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(ctx, args, stdout, stderr, getenv)
	case "migrate":
		return cmdMigrate(ctx, args, stdout, stderr, getenv)
	case "demo":
		return cmdDemo(ctx, args, stdout, stderr, getenv)
	case "dead-letters":
		return cmdDeadLetters(ctx, args, stdout, stderr, getenv)
	case "version":
		return cmdVersion(args, stdout, stderr)
	case "help":
		fs := newFlagSet("ingest", runSynopsis, stdout)
		ingestFlags(fs)
		versionFlag(fs)
		fs.Usage()
		return 0
	}
	fmt.Fprintf(stderr, "ingest: unknown command %q (want run, migrate, demo, dead-letters, version or help)\n", cmd)
	return 2
}

// parseFlags parses args into fs; it returns -1 to go on, else the exit code.
func parseFlags(fs *flagSet, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs.SetOutput(io.Discard) // errors are reported in one line below, help goes to stdout
	err := fs.parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0
	}
	if err != nil {
		return usageError(stderr, err)
	}
	return -1
}

// usageError reports err, a setting that can never work, in one line and returns exit code 2.
func usageError(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "ingest: %v (see ingest --help)\n", err)
	return 2
}

// newLogger logs to w at the configured level and format; records logged with a context that
// carries a span get its trace_id and span_id.
func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel)) // validated by finish
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(telemetry.NewLogHandler(h))
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("ingest", runSynopsis, stdout)
	cfg := ingestFlags(fs)
	version := versionFlag(fs)
	if code := parseFlags(fs, args, stdout, stderr, getenv); code >= 0 {
		return code
	}
	if *version {
		fmt.Fprintln(stdout, versionLine(cfg.Telemetry.Build))
		return 0
	}
	if err := cfg.finish(); err != nil {
		return usageError(stderr, err)
	}
	cfg.Telemetry.Getenv = getenv
	log := newLogger(cfg, stderr)
	sd := newSystemd(getenv, log)
	sd.send(sdnotify.Status("starting: opening " + cfg.DB.Path + ", connecting to NATS"))

	a, err := openApp(ctx, cfg, log)
	if err != nil {
		sd.send(sdnotify.Stopping)
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			// Stopped while starting (waiting for NATS to create the streams, say): openApp
			// closed what it had opened, and nothing was fetched that is not redelivered.
			log.Info("stopped before ingesting", "exit_code", 0)
			return 0
		}
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	a.systemd = sd
	code := runUntilStopped(ctx, a)
	log.Info("stopped", "exit_code", code)
	return code
}

// runUntilStopped runs the app until ctx is cancelled and shuts it down in order, within the
// shutdown timeout: tell systemd (STOPPING=1) → stop fetching → finish the batches in hand
// (commit → ack) → drain NATS → close the database → stop the embedded server.
func runUntilStopped(ctx context.Context, a *app) int {
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	nctx, stopNotify := context.WithCancel(ctx)
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		a.notify(nctx)
	}()
	stopping := func(why string) {
		stopNotify()
		<-notified
		a.systemd.send(sdnotify.Stopping, sdnotify.Status(why))
	}

	var runErr error
	select {
	case runErr = <-done:
		stopping("stopping: a projection stopped")
	case <-ctx.Done():
		stopping("stopping: finishing the batches in hand")
		a.health.stopping.Store(true)
		a.log.Info("shutting down: finishing the batches in hand", "timeout", a.cfg.ShutdownTimeout)
		timer := time.NewTimer(a.cfg.ShutdownTimeout)
		defer timer.Stop()
		select {
		case runErr = <-done:
		case <-timer.C:
			a.log.Error("shutdown timed out: exiting with batches unfinished (they will be redelivered)")
			return 1
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.close(sctx); err != nil {
		a.log.Error("shutdown", "err", err)
		return 1
	}
	if runErr != nil {
		a.log.Error("ingest stopped", "err", runErr)
		return 1
	}
	return 0
}

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("ingest migrate", "ingest migrate — apply the database migrations and exit.\n\nUsage:\n  ingest migrate [--db file|postgres://…]", stdout)
	cfg := ingestFlags(fs)
	if code := parseFlags(fs, args, stdout, stderr, getenv); code >= 0 {
		return code
	}
	if err := cfg.finish(); err != nil {
		return usageError(stderr, err)
	}
	db, err := openDatabase(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "%s is up to date\n", cfg.dbName())
	} else {
		fmt.Fprintf(stdout, "%s: applied migrations %v\n", cfg.dbName(), applied)
	}
	return 0
}
