package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"fanin/internal/fleet"
)

// printSummary reads the demo's outcome back from the database file.
func printSummary(ctx context.Context, cfg *config, b fleet.Broadcast, published int, elapsed time.Duration, w io.Writer) error {
	db, err := openDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	sum, err := db.Summary(ctx, b.ExecID)
	if err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nexecution %s\t%s\n", b.ExecID, sum.Status)
	fmt.Fprintf(tw, "  target / succeeded / failed\t%d / %d / %d\n", sum.Target, sum.Succeeded, sum.Failed)
	fmt.Fprintf(tw, "  rows in execution_results\t%d (%d still in flight, %d with their started event's version)\n",
		sum.Results.Rows, sum.Results.InFlight, sum.Results.Versioned)
	fmt.Fprintf(tw, "  messages published\t%d in %.1fs (%.0f msg/s end to end, paced by the simulated fleet)\n",
		published, elapsed.Seconds(), float64(published)/elapsed.Seconds())
	fmt.Fprintf(tw, "  database\t%s\n", cfg.dbName())
	tw.Flush()

	fmt.Fprintln(w, "dead letters (poison, kept byte for byte in dead_letters):")
	for _, d := range sum.DeadLetters {
		fmt.Fprintf(w, "  %-8s %d, e.g. %q\n", d.Stream, d.Count, d.Reason)
	}
	if cfg.usePostgres() {
		fmt.Fprintf(w, "\nlook around: psql '%s' -c 'SELECT pc_id, exit_code, stdout FROM execution_results LIMIT 5'\n", cfg.dbName())
	} else {
		fmt.Fprintf(w, "\nlook around: sqlite3 %s 'SELECT pc_id, exit_code, stdout FROM execution_results LIMIT 5'\n", cfg.DB.Path)
	}
	return nil
}
