package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/output"
	"fanin/internal/sink"
)

// Streams and subjects of the benchmark. EVENTS and RESULTS carry the preloaded broadcast under
// the real subjects; RESULTS_LARGE carries the same results again, some of them naming their
// stdout in the Object Store (-large-output); LIVE is fresh for the live mode.
const (
	eventsStream  = "EVENTS"
	resultsStream = "RESULTS"
	largeStream   = "RESULTS_LARGE"
	liveStream    = "LIVE"

	startedFilter = "events.started.>"
	resultsFilter = "results.>"
	largeFilter   = "large.>"
	liveFilter    = "live.started.>"
)

// putWorkers is how many objects the preload puts into the Object Store at once: each Put
// waits for its chunks' PubAcks, so one at a time leaves the server idle between objects.
const putWorkers = 4

// Seeds of the generated broadcasts: the same seed regenerates the same payloads.
const (
	seedEvents  = 1
	seedPrefill = 2
	seedLive    = 3
)

// stallTimeout is how long a mode may make no progress before the harness gives up on it.
const stallTimeout = 60 * time.Second

// env is one run's embedded JetStream server, its streams and a publishing connection.
type env struct {
	opts options
	dir  string
	srv  *natsServer
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
	prog *progress

	pubErrs  atomic.Uint64 // PublishAsync failures reported by the error handler
	traceSeq uint64        // makes each published message's trace id unique
	seq      int           // makes durable and file names unique
}

// startEnv starts the embedded server (file storage under dir; in a child process unless
// -inprocess), connects to it and creates the
// streams, without limits so a million-message backlog is kept whole.
func startEnv(ctx context.Context, opts options, dir string, stderr io.Writer, prog *progress) (_ *env, err error) {
	e := &env{opts: opts, dir: dir, prog: prog,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		return nil, fmt.Errorf("database dir: %w", err)
	}
	if e.srv, err = startServer(filepath.Join(dir, "js"), opts.InProcess); err != nil {
		return nil, err
	}
	e.nc, e.js, err = e.connect(jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { e.pubErrs.Add(1) }))
	if err != nil {
		return nil, err
	}
	streams := map[string]string{eventsStream: "events.>", liveStream: "live.>"}
	if opts.Results {
		streams[resultsStream] = resultsFilter
	}
	if opts.LargeOutput > 0 {
		streams[largeStream] = largeFilter
	}
	for name, subj := range streams {
		_, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{subj}, Storage: jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy, MaxBytes: -1, MaxMsgs: -1,
		})
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", name, err)
		}
	}
	if opts.LargeOutput > 0 {
		bucket := output.DefaultConfig().Bucket
		_, err := e.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, Storage: jetstream.FileStorage})
		if err != nil {
			return nil, fmt.Errorf("create object store %s: %w", bucket, err)
		}
	}
	return e, nil
}

// close closes the connection and shuts the server down.
func (e *env) close() {
	if e.nc != nil {
		e.nc.Close()
	}
	if e.srv != nil {
		e.srv.stop()
	}
}

// connect opens a new connection to the embedded server, as an ingester would (TCP loopback).
func (e *env) connect(opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(e.srv.url, nats.Name("fanin-bench"))
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// name returns a fresh name for a durable or a database file.
func (e *env) name(mode string, n int) string {
	e.seq++
	return fmt.Sprintf("bench_%s_n%d_%d", mode, n, e.seq)
}

// dbPath returns the path of a fresh database file.
func (e *env) dbPath(name string) string { return filepath.Join(e.dir, "db", name+".db") }

// removeDB deletes a database file and its companions.
func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}

// sinkConfig is fanin's default sink configuration with the run's path and sync mode.
func (e *env) sinkConfig(path string) sink.Config {
	cfg := sink.DefaultConfig()
	cfg.Path, cfg.Sync = path, e.opts.Sync
	return cfg
}

// openSink opens and migrates a database.
func openSink(ctx context.Context, cfg sink.Config) (*sink.Sink, error) {
	db, err := sink.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// publish sends one message asynchronously, retrying while the in-flight window is full. data
// must not be reused: the client keeps it until the PubAck. Like a traced agent, each message
// carries a W3C traceparent — lowercase, as non-Go producers send it — so fanin-traced makes
// one span link per message and every mode pays for the header.
func (e *env) publish(ctx context.Context, subject string, data []byte) error {
	e.traceSeq++
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{
		"traceparent": {fmt.Sprintf("00-%016x%016x-%016x-01", e.traceSeq|1<<63, e.traceSeq, e.traceSeq|1)},
	}}
	for {
		_, err := e.js.PublishMsgAsync(msg)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("publish %s: %w", subject, err)
		}
		return nil
	}
}

// publishComplete waits for every PubAck and checks that none failed.
func (e *env) publishComplete(ctx context.Context) error {
	select {
	case <-e.js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(stallTimeout):
		return errors.New("publish: PubAcks still missing after a minute")
	}
	if n := e.pubErrs.Load(); n > 0 {
		return fmt.Errorf("publish: %d messages were not stored", n)
	}
	return nil
}

// preload publishes the broadcast's P started events to EVENTS (and, with -results, their
// results to RESULTS; with -large-output, the results again to RESULTS_LARGE and the large
// outputs to the Object Store) as fast as the server takes them, then checks the streams hold
// them all.
func (e *env) preload(ctx context.Context) error {
	p := e.opts.PCs
	g := newGen(seedEvents)
	var subj []byte
	e.prog.start("preload", uint64(p))
	for i := range p {
		g.next()
		subj = g.appendStartedSubject(subj[:0], "events.started")
		if err := e.publish(ctx, string(subj), g.appendStarted(make([]byte, 0, 256))); err != nil {
			return err
		}
		if e.opts.Results {
			if err := e.publish(ctx, resultSubject, g.appendResult(make([]byte, 0, 384))); err != nil {
				return err
			}
		}
		if e.opts.LargeOutput > 0 {
			data := make([]byte, 0, 512)
			if hasLargeOutput(i+1, e.opts.LargeOutput) {
				data = g.appendLargeResult(data)
			} else {
				data = g.appendResult(data)
			}
			if err := e.publish(ctx, largeResultSubject, data); err != nil {
				return err
			}
		}
		e.prog.update(uint64(i + 1))
	}
	if err := e.publishComplete(ctx); err != nil {
		return err
	}
	e.prog.finish()
	if e.opts.LargeOutput > 0 {
		if err := e.putOutputs(ctx); err != nil {
			return err
		}
	}
	streams := []string{eventsStream}
	if e.opts.Results {
		streams = append(streams, resultsStream)
	}
	if e.opts.LargeOutput > 0 {
		streams = append(streams, largeStream)
	}
	for _, name := range streams {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		if got := s.CachedInfo().State.Msgs; got != uint64(p) {
			return fmt.Errorf("preload: stream %s holds %d messages, want %d", name, got, p)
		}
	}
	return nil
}

// putOutputs puts the stdout of every PC with a large output into the Object Store, under the
// key its result names, putWorkers at a time.
func (e *env) putOutputs(ctx context.Context) error {
	bucket := output.DefaultConfig().Bucket
	store, err := e.js.ObjectStore(ctx, bucket)
	if err != nil {
		return fmt.Errorf("object store %s: %w", bucket, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type object struct{ key, pc string }
	objects := make(chan object)
	errs := make([]error, putWorkers)
	var done atomic.Uint64
	var wg sync.WaitGroup
	for w := range putWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, e.opts.LargeSize)
			for o := range objects {
				buf = appendOutput(buf[:0], []byte(o.pc), e.opts.LargeSize)
				// Put has read buf through when it returns: the buffer is reused.
				if _, err := store.PutBytes(ctx, o.key, buf); err != nil {
					errs[w] = fmt.Errorf("put object %s: %w", o.key, err)
					cancel()
					return
				}
				done.Add(1)
			}
		}()
	}

	total := largeCount(e.opts.PCs, e.opts.LargeOutput)
	e.prog.start("objects", uint64(total))
	g := newGen(seedEvents)
	var key, pc []byte
feed:
	for i := range e.opts.PCs {
		g.next()
		if !hasLargeOutput(i+1, e.opts.LargeOutput) {
			continue
		}
		key, pc = g.appendObjectKey(key[:0]), g.appendPC(pc[:0])
		select {
		case objects <- object{string(key), string(pc)}:
		case <-ctx.Done():
			break feed
		}
		e.prog.update(done.Load())
	}
	close(objects)
	wg.Wait()
	e.prog.finish()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n := done.Load(); n != uint64(total) {
		return fmt.Errorf("put %d objects, want %d", n, total)
	}
	return nil
}

// createConsumer creates a fresh durable pull consumer delivering the whole stream.
func createConsumer(ctx context.Context, js jetstream.JetStream, stream, durable, filter string, maxAckPending int) (jetstream.Consumer, error) {
	c, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durable, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: 30 * time.Second, MaxAckPending: maxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("create durable %s: %w", durable, err)
	}
	return c, nil
}

// verifyAcked waits (a few seconds at most: acks are fire-and-forget) until the durable has
// acknowledged every message up to stream sequence upTo; with all set, also until it has
// nothing pending and nothing unacked. Then it deletes the durable.
func verifyAcked(ctx context.Context, js jetstream.JetStream, stream, durable string, upTo uint64, all bool) error {
	deadline := time.Now().Add(15 * time.Second)
	var info *jetstream.ConsumerInfo
	for {
		c, err := js.Consumer(ctx, stream, durable)
		if err != nil {
			return fmt.Errorf("durable %s: %w", durable, err)
		}
		if info, err = c.Info(ctx); err != nil {
			return fmt.Errorf("durable %s: %w", durable, err)
		}
		if info.AckFloor.Stream >= upTo && (!all || info.NumPending == 0 && info.NumAckPending == 0) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("durable %s not fully acked: ack floor %d (want %d), %d pending, %d unacked",
				durable, info.AckFloor.Stream, upTo, info.NumPending, info.NumAckPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := js.DeleteConsumer(ctx, stream, durable); err != nil {
		return fmt.Errorf("delete durable %s: %w", durable, err)
	}
	return nil
}

// countRows returns how many execution_results rows there are, and how many are finished.
func countRows(ctx context.Context, db *sink.Sink) (rows, finished int, err error) {
	c, err := db.CountResults(ctx, "")
	if err != nil {
		return 0, 0, err
	}
	return c.Rows, c.Rows - c.InFlight, nil
}

// stall notices a mode that stopped making progress.
type stall struct {
	done  uint64
	since time.Time
}

// stuck reports whether done has not moved for stallTimeout.
func (s *stall) stuck(done uint64) bool {
	now := time.Now()
	if done != s.done || s.since.IsZero() {
		s.done, s.since = done, now
		return false
	}
	return now.Sub(s.since) > stallTimeout
}

// startMeter starts measuring a mode; files are its database files.
func (e *env) startMeter(files ...string) *meter { return startMeter(e.srv, files...) }
