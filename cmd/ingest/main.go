// Command ingest projects a PC fleet's execution events from NATS JetStream into SQLite, in
// batches: JetStream → batch (fetch) → codec (decode) → output (large stdout/stderr from the
// Object Store, results only) → sink (one transaction) → ack.
//
//	ingest [run] [flags]   ingest until SIGINT, SIGTERM or SIGHUP (the default)
//	ingest migrate [flags] apply the database migrations and exit
//	ingest demo [flags]    a simulated 10,000-PC broadcast on the embedded server
//	ingest dead-letters [list|replay|purge] [flags]
//	                       list the messages set aside, republish them after a fix, or
//	                       delete old ones
//	ingest version         the module version, VCS revision and time, Go version (also --version)
//
// Run "ingest --help" for the flags.
//
// Signals: SIGINT, SIGTERM and SIGHUP start a graceful shutdown (SIGHUP stops gracefully, as
// SIGTERM does; fanin has no configuration to reload), unless SIGHUP was ignored when ingest
// started (nohup): it stays ignored. A second signal exits at once with code 130.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	stop := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) { // under nohup, a closed terminal must not stop ingest
		stop = append(stop, syscall.SIGHUP)
	}
	signal.Notify(sigs, stop...)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "ingest: %s: shutting down (send it again to exit at once)\n", s)
		cancel()
		s = <-sigs
		fmt.Fprintf(os.Stderr, "ingest: %s again: exiting at once\n", s)
		os.Exit(130)
	}()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
