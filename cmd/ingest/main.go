// Command ingest projects a PC fleet's execution events from NATS JetStream into SQLite, in
// batches: JetStream → batch (fetch) → codec (decode) → output (large stdout/stderr from the
// Object Store, results only) → sink (one transaction) → ack.
//
//	ingest [run] [flags]   ingest until SIGINT/SIGTERM (the default)
//	ingest migrate [flags] apply the database migrations and exit
//	ingest demo [flags]    a simulated 10,000-PC broadcast on the embedded server
//	ingest dead-letters [list|replay] [flags]
//	                       list the messages set aside, or republish them after a fix
//
// Run "ingest --help" for the flags.
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
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
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
