package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/broker"
	"fanin/internal/sink"
)

const deadLettersSynopsis = `ingest dead-letters — list the messages fanin set aside, and replay them after a fix.

Usage:
  ingest dead-letters [list] [filters] [--json]
  ingest dead-letters replay [filters] [--dry-run] [--nats-url …]

replay republishes each selected message (payload and headers byte for byte, plus a
Fanin-Replay-Of header naming where it came from) to its original subject, and removes it from
dead_letters only once JetStream has acknowledged the publish. The ingester then projects it
like any other message — or sets it aside again, under its new sequence, if it still fails.`

// deadLetterFlags are the flags of both dead-letters commands.
type deadLetterFlags struct {
	filter       sink.DeadLetterFilter
	since, until string
	json, dryRun bool
}

func cmdDeadLetters(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if sub != "list" && sub != "replay" {
		fmt.Fprintf(stderr, "ingest: dead-letters: unknown command %q (want list or replay)\n", sub)
		return 2
	}
	fs := newFlagSet("ingest dead-letters", deadLettersSynopsis, stdout)
	cfg := ingestFlags(fs)
	var f deadLetterFlags
	fs.StringVar(&f.filter.Stream, "stream", "", "only dead letters of this `stream`")
	fs.StringVar(&f.filter.Reason, "reason", "", "only dead letters whose reason contains this `text`")
	fs.StringVar(&f.since, "since", "", "only dead letters published at or after this `time` (RFC 3339, or a duration ago like 24h)")
	fs.StringVar(&f.until, "until", "", "only dead letters published before this `time` (RFC 3339, or a duration ago)")
	fs.IntVar(&f.filter.Limit, "limit", 0, "at most this many (0: all)")
	fs.BoolVar(&f.json, "json", false, "list as JSON lines (payload as text when it is UTF-8, else base64)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "replay: show what would be republished, change nothing")
	if code := parseFlags(fs, args, stdout, stderr, getenv); code >= 0 {
		return code
	}
	var err error
	now := time.Now()
	if f.filter.Since, err = parseWhen(f.since, now); err != nil {
		fmt.Fprintf(stderr, "ingest: --since: %v\n", err)
		return 2
	}
	if f.filter.Until, err = parseWhen(f.until, now); err != nil {
		fmt.Fprintf(stderr, "ingest: --until: %v\n", err)
		return 2
	}
	if err := cfg.DB.Validate(); err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 2
	}
	db, err := sink.Open(ctx, cfg.DB)
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	dls, err := db.DeadLetters(ctx, f.filter)
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	if sub == "list" || f.dryRun {
		if err := printDeadLetters(stdout, dls, f.json); err != nil {
			fmt.Fprintf(stderr, "ingest: %v\n", err)
			return 1
		}
		return 0
	}
	n, err := replayDeadLetters(ctx, cfg, db, dls, stderr)
	fmt.Fprintf(stdout, "replayed %d of %d dead letters\n", n, len(dls))
	if err != nil {
		fmt.Fprintf(stderr, "ingest: replay: %v\n", err)
		return 1
	}
	return 0
}

// parseWhen reads an RFC 3339 time or a duration before now; "" is the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return t, nil
}

func printDeadLetters(w io.Writer, dls []sink.DeadLetter, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, d := range dls {
			v := map[string]any{"stream": d.Stream, "stream_seq": d.Seq, "subject": d.Subject,
				"reason": d.Reason, "recorded_at": d.RecordedAt, "headers": d.Header}
			if utf8.Valid(d.Payload) {
				v["payload"] = string(d.Payload)
			} else {
				v["payload_base64"] = d.Payload
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tSEQ\tRECORDED AT\tSUBJECT\tBYTES\tREASON")
	for _, d := range dls {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\n", d.Stream, d.Seq, d.RecordedAt, d.Subject, len(d.Payload), d.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d dead letters\n", len(dls))
	return nil
}

// replayDeadLetters republishes each dead letter and deletes it once JetStream acknowledged it.
// It stops at the first failure; what was not replayed stays in the table.
func replayDeadLetters(ctx context.Context, cfg *config, db *sink.Sink, dls []sink.DeadLetter, logw io.Writer) (int, error) {
	if len(dls) == 0 {
		return 0, nil
	}
	nc, err := broker.Connect(ctx, cfg.NATS, newLogger(cfg, logw))
	if err != nil {
		return 0, err
	}
	defer nc.Drain(context.Background())
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		return 0, fmt.Errorf("jetstream: %w", err)
	}
	for i, d := range dls {
		msg := &nats.Msg{Subject: d.Subject, Data: d.Payload, Header: nats.Header{}}
		for k, vs := range d.Header {
			msg.Header[k] = append([]string(nil), vs...)
		}
		msg.Header.Set("Fanin-Replay-Of", fmt.Sprintf("%s/%d", d.Stream, d.Seq))
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := js.PublishMsg(pctx, msg)
		cancel()
		if err != nil {
			return i, fmt.Errorf("publish %s/%d to %s: %w", d.Stream, d.Seq, d.Subject, err)
		}
		if _, err := db.DeleteDeadLetter(ctx, d.Stream, d.Seq); err != nil {
			return i, fmt.Errorf("%s/%d was republished but is still listed: %w", d.Stream, d.Seq, err)
		}
	}
	return len(dls), nil
}
