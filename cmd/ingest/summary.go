package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"fanin/internal/fleet"
	"fanin/internal/sink"
)

// printSummary reads the demo's outcome back from the database file.
func printSummary(ctx context.Context, cfg *config, b fleet.Broadcast, published int, elapsed time.Duration, w io.Writer) error {
	db, err := sink.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	q := db.DB()

	var status string
	var target, success, failure int
	if err := q.QueryRowContext(ctx, `SELECT status, target_count, success_count, failure_count
		FROM executions WHERE exec_id = ?`, b.ExecID).Scan(&status, &target, &success, &failure); err != nil {
		return fmt.Errorf("read the execution: %w", err)
	}
	var rows, inFlight, withVersion int
	if err := q.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE finished_at IS NULL),
		count(version) FROM execution_results WHERE exec_id = ?`, b.ExecID).Scan(&rows, &inFlight, &withVersion); err != nil {
		return fmt.Errorf("read the results: %w", err)
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nexecution %s\t%s\n", b.ExecID, status)
	fmt.Fprintf(tw, "  target / succeeded / failed\t%d / %d / %d\n", target, success, failure)
	fmt.Fprintf(tw, "  rows in execution_results\t%d (%d still in flight, %d with their started event's version)\n", rows, inFlight, withVersion)
	fmt.Fprintf(tw, "  messages published\t%d in %.1fs (%.0f msg/s end to end, paced by the simulated fleet)\n",
		published, elapsed.Seconds(), float64(published)/elapsed.Seconds())
	fmt.Fprintf(tw, "  database\t%s\n", cfg.DB.Path)
	tw.Flush()

	dl, err := q.QueryContext(ctx, `SELECT stream, count(*), min(reason) FROM dead_letters GROUP BY stream ORDER BY stream`)
	if err != nil {
		return fmt.Errorf("read dead letters: %w", err)
	}
	defer dl.Close()
	fmt.Fprintln(w, "dead letters (poison, kept byte for byte in dead_letters):")
	for dl.Next() {
		var stream, reason string
		var n int
		if err := dl.Scan(&stream, &n, &reason); err != nil {
			return fmt.Errorf("read dead letters: %w", err)
		}
		fmt.Fprintf(w, "  %-8s %d, e.g. %q\n", stream, n, reason)
	}
	if err := dl.Err(); err != nil {
		return fmt.Errorf("read dead letters: %w", err)
	}
	fmt.Fprintf(w, "\nlook around: sqlite3 %s 'SELECT pc_id, exit_code, stdout FROM execution_results LIMIT 5'\n", cfg.DB.Path)
	return nil
}
