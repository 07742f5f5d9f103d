package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"fanin/internal/broker"
	"fanin/internal/codec"
	"fanin/internal/store"
)

const deadLettersSynopsis = `ingest dead-letters — list the messages fanin set aside, replay them after a fix, purge old ones.

Usage:
  ingest dead-letters [list] [filters] [--json]
  ingest dead-letters replay [filters] [--dry-run] [--nats-url …]
  ingest dead-letters purge [filters | --all] [--dry-run]

A dead letter is named by its stream, the stream's creation time (STREAM CREATED: a stream
deleted and created again numbers its messages from 1 again; "-" for dead letters recorded
before fanin kept it) and its sequence. Headers are shown as key=value, quoted (Go syntax) when
a value is empty or holds a space, a quote, a control or a non-UTF-8 byte.

replay republishes each selected message (payload and headers byte for byte, plus a
Fanin-Replay-Of header naming where it came from, STREAM/SEQ) to its original subject, and
removes that one dead letter only once JetStream has acknowledged the publish. The ingester then
projects it like any other message — or sets it aside again, under its new sequence, if it
still fails.

purge deletes the selected dead letters for good (e.g. --until 720h: those published more than
30 days ago), a few hundred per transaction, so an ingester writing the same database waits
milliseconds at a time; it prints how many went. Without a filter it needs --all; it takes no
--limit. --dry-run lists what would go.`

// deadLetterFlags are the flags of the dead-letters commands.
type deadLetterFlags struct {
	filter       store.DeadLetterFilter
	since, until string
	created      string
	json, dryRun bool
	all          bool
}

func cmdDeadLetters(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if sub != "list" && sub != "replay" && sub != "purge" {
		fmt.Fprintf(stderr, "ingest: dead-letters: unknown command %q (want list, replay or purge)\n", sub)
		return 2
	}
	fs := newFlagSet("ingest dead-letters", deadLettersSynopsis, stdout)
	cfg := ingestFlags(fs)
	var f deadLetterFlags
	fs.StringVar(&f.filter.Stream, "stream", "", "only dead letters of this `stream`")
	fs.StringVar(&f.created, "stream-created", "", "only dead letters of the stream created at this `time` (RFC 3339, as listed)")
	fs.StringVar(&f.filter.Reason, "reason", "", "only dead letters whose reason contains this `text`")
	fs.StringVar(&f.since, "since", "", "only dead letters published at or after this `time` (RFC 3339, or a duration ago like 24h)")
	fs.StringVar(&f.until, "until", "", "only dead letters published before this `time` (RFC 3339, or a duration ago)")
	fs.IntVar(&f.filter.Limit, "limit", 0, "at most this many (0: all)")
	fs.BoolVar(&f.json, "json", false, "list as JSON lines (payload and headers as text when they are UTF-8, else base64)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "replay, purge: show what would be republished or deleted, change nothing")
	fs.BoolVar(&f.all, "all", false, "purge: every dead letter (a purge without a filter needs it)")
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
	if f.created != "" {
		t, err := time.Parse(time.RFC3339Nano, f.created)
		if err != nil {
			fmt.Fprintf(stderr, "ingest: --stream-created: %q is not an RFC 3339 time\n", f.created)
			return 2
		}
		f.filter.StreamCreated = codec.FormatTime(t)
	}
	if err := cfg.validateDB(); err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 2
	}
	if sub == "replay" && !f.dryRun {
		if err := cfg.checkNATS(); err != nil { // the NATS context too: before the database is opened
			return usageError(stderr, err)
		}
	}
	if sub == "purge" {
		if err := f.checkPurge(); err != nil {
			return usageError(stderr, err)
		}
	}
	db, err := openDatabase(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	if sub == "purge" && !f.dryRun {
		n, err := db.PurgeDeadLetters(ctx, f.filter, 0)
		fmt.Fprintf(stdout, "purged %d dead letters\n", n)
		if err != nil {
			fmt.Fprintf(stderr, "ingest: %v\n", err)
			return 1
		}
		return 0
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
		if sub == "purge" {
			fmt.Fprintf(stdout, "would purge %d dead letters (--dry-run: nothing deleted)\n", len(dls))
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

// checkPurge refuses a purge that would delete more than the operator likely meant: no filter
// without --all, or a --limit (a purge deletes all that the filters select).
func (f *deadLetterFlags) checkPurge() error {
	if f.filter.Limit != 0 {
		return errors.New("purge takes no --limit: it deletes all that the filters select (narrow them, e.g. --until)")
	}
	if f.filter == (store.DeadLetterFilter{}) && !f.all {
		return errors.New("purge without a filter deletes every dead letter: say --all, or select some (e.g. --until 720h)")
	}
	return nil
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

func printDeadLetters(w io.Writer, dls []store.DeadLetterRow, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, d := range dls {
			v := map[string]any{"stream": d.Stream, "stream_created": d.StreamCreated, "stream_seq": d.Seq,
				"subject": d.Subject, "reason": d.Reason, "recorded_at": d.RecordedAt}
			if utf8.Valid(d.Payload) {
				v["payload"] = string(d.Payload)
			} else {
				v["payload_base64"] = d.Payload
			}
			// JSON strings cannot hold non-UTF-8 bytes (encoding/json would write U+FFFD): such
			// headers go out as their stored NATS header block, in base64.
			if headerIsUTF8(d.Header) {
				v["headers"] = d.Header
			} else {
				v["headers_base64"] = d.RawHeader
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tSTREAM CREATED\tSEQ\tRECORDED AT\tSUBJECT\tBYTES\tREASON\tHEADERS")
	for _, d := range dls {
		created := d.StreamCreated
		if created == "" {
			created = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", d.Stream, created, d.Seq, d.RecordedAt,
			d.Subject, len(d.Payload), d.Reason, formatHeader(d.Header))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d dead letters\n", len(dls))
	return nil
}

func headerIsUTF8(h map[string][]string) bool {
	for k, vs := range h {
		if !utf8.ValidString(k) {
			return false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

// formatHeader renders h on one line as key=value pairs, keys sorted, a key's values in order;
// a key or value that is empty or holds a blank, '"', '=', a control or a non-UTF-8 byte is
// quoted (strconv.Quote), so any byte shows unambiguously and no line is broken.
func formatHeader(h map[string][]string) string {
	keys := slices.Sorted(maps.Keys(h))
	var b strings.Builder
	for _, k := range keys {
		for _, v := range h[k] {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(quoteIfNeeded(k))
			b.WriteByte('=')
			b.WriteString(quoteIfNeeded(v))
		}
	}
	return b.String()
}

func quoteIfNeeded(s string) string {
	if s == "" || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
		return r == '"' || r == '=' || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) {
		return strconv.Quote(s)
	}
	return s
}

// replayDeadLetters republishes each dead letter and deletes it once JetStream acknowledged it.
// It stops at the first failure; what was not replayed stays in the table.
func replayDeadLetters(ctx context.Context, cfg *config, db deadLetterStore, dls []store.DeadLetterRow, logw io.Writer) (int, error) {
	if len(dls) == 0 {
		return 0, nil
	}
	nc, err := broker.Connect(ctx, cfg.NATS, newLogger(cfg, logw))
	if err != nil {
		return 0, err
	}
	defer nc.Drain(context.Background())
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = nc.WaitConnected(wctx)
	cancel()
	if err != nil {
		return 0, err
	}
	js, err := nc.JetStream()
	if err != nil {
		return 0, err
	}
	for i, d := range dls {
		msg := &nats.Msg{Subject: d.Subject, Data: d.Payload, Header: nats.Header{}}
		for k, vs := range d.Header {
			msg.Header[k] = append([]string(nil), vs...)
		}
		msg.Header.Set("Fanin-Replay-Of", fmt.Sprintf("%s/%d", d.Stream, d.Seq))
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ack, err := js.PublishMsg(pctx, msg)
		cancel()
		if err != nil {
			return i, fmt.Errorf("publish %s/%d to %s: %w", d.Stream, d.Seq, d.Subject, err)
		}
		// A copy whose Nats-Msg-Id is still in the stream's duplicate window is not stored: when
		// the message it duplicates is the dead letter itself, nothing was republished.
		if ack.Duplicate && ack.Stream == d.Stream && ack.Sequence == d.Seq {
			return i, fmt.Errorf("publish %s/%d to %s: JetStream dropped it as a duplicate of Nats-Msg-Id %q; replay it once the stream's duplicate window has passed",
				d.Stream, d.Seq, d.Subject, msg.Header.Get("Nats-Msg-Id"))
		}
		if _, err := db.DeleteDeadLetter(ctx, d); err != nil {
			return i, fmt.Errorf("%s/%d was republished but is still listed: %w", d.Stream, d.Seq, err)
		}
	}
	return len(dls), nil
}
