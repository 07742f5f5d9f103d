// Package output completes results whose stdout or stderr exceeded what an agent sends inline:
// it reads the text from the JetStream Object Store bucket the result names, several objects at
// once, before the result's batch is written.
package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"fanin/internal/codec"
	"fanin/internal/fault"
)

// Bucket is the Object Store bucket agents put large outputs in.
const Bucket = "result_output"

// Config says where outputs are and how much of them to read.
type Config struct {
	// Bucket is the Object Store bucket the keys name.
	Bucket string
	// MaxObjectBytes caps the text kept of one object: the rest is cut, and the stored text
	// ends with a one-line marker saying so.
	MaxObjectBytes int64
	// Concurrency is how many objects are read at once.
	Concurrency int
	// StallTimeout is how long looking up or reading an object may make no progress before it
	// fails, transiently (the result is retried later).
	StallTimeout time.Duration
}

// DefaultConfig returns the defaults: bucket result_output, 16 MiB per object, 8 at once, a
// read failing after 10 s without progress.
func DefaultConfig() Config {
	return Config{Bucket: Bucket, MaxObjectBytes: 16 << 20, Concurrency: 8, StallTimeout: 10 * time.Second}
}

// Validate reports the first setting that cannot work, as a *fault.FieldError naming its
// field ("Bucket").
func (c Config) Validate() error {
	switch {
	case !validBucket(c.Bucket):
		return fault.Fieldf("Bucket", "%q is not a bucket name (letters, digits, _ and - only)", c.Bucket)
	case c.MaxObjectBytes < 1:
		return fault.Fieldf("MaxObjectBytes", "must be at least 1, not %d", c.MaxObjectBytes)
	case c.Concurrency < 1:
		return fault.Fieldf("Concurrency", "must be at least 1, not %d", c.Concurrency)
	case c.StallTimeout <= 0:
		return fault.Fieldf("StallTimeout", "must be positive, not %s", c.StallTimeout)
	}
	return nil
}

// validBucket reports whether name is a valid Object Store bucket name, as JetStream checks it.
func validBucket(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// markerRoom is what a note or a truncation marker may add to a text, at most (keys are
// quoted, so a very long key makes a longer note; the budget this feeds is approximate).
const markerRoom = 512

// Resolver fetches large outputs. It is safe for concurrent use.
type Resolver struct {
	js      jetstream.JetStream
	cfg     Config
	log     *slog.Logger
	metrics metrics

	mu    sync.Mutex
	store jetstream.ObjectStore // nil until the bucket has been found

	lastFailure atomic.Pointer[failure] // of the latest read; nil when it reached the store
}

// failure is a read that could not reach the object store.
type failure struct {
	at  time.Time
	err error
}

// Healthy returns an error when the latest object read failed transiently (the object store
// could not be reached, or did not answer in time), and nil once a read reaches it again.
func (v *Resolver) Healthy() error {
	if f := v.lastFailure.Load(); f != nil {
		return fmt.Errorf("last object read failed %s ago: %w", time.Since(f.at).Round(time.Second), f.err)
	}
	return nil
}

// New returns a resolver. It does no I/O. mp may be nil (no metrics), log too (slog.Default()).
func New(js jetstream.JetStream, cfg Config, mp metric.MeterProvider, log *slog.Logger) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	if log == nil {
		log = slog.Default()
	}
	m, err := newMetrics(mp)
	if err != nil {
		return nil, fmt.Errorf("output metrics: %w", err)
	}
	return &Resolver{js: js, cfg: cfg, log: log.With("bucket", cfg.Bucket), metrics: m}, nil
}

// job is one object a record names.
type job struct {
	rec   int    // index in recs
	field string // "stdout" or "stderr"
	key   string
}

// Probe reports whether the bucket exists, for a line in the log at start: a missing bucket is
// not an error (results naming objects in it get a note), but an operator should hear of it.
func (v *Resolver) Probe(ctx context.Context) (found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.StallTimeout)
	defer cancel()
	_, err = v.objectStore(ctx)
	if isMissing(err) {
		return false, nil
	}
	return err == nil, err
}

// jobs lists the objects recs name, in record order, stdout before stderr.
func jobs(recs []codec.Record) []job {
	var js []job
	for i := range recs {
		r := &recs[i]
		if r.Kind != codec.KindResult || r.Poison != nil {
			continue
		}
		if k := r.Result.StdoutObject; k != "" {
			js = append(js, job{i, "stdout", k})
		}
		if k := r.Result.StderrObject; k != "" {
			js = append(js, job{i, "stderr", k})
		}
	}
	return js
}

// Sizes reports, for each record, about how many bytes Complete will hold for it: the sizes of
// the objects it names, each capped at MaxObjectBytes, plus room for a marker; 0 for a record
// that names none, or only missing ones; sizes is nil when no record names any. errs is nil
// unless an object could not be looked up now (errs[i] then says why for record i).
func (v *Resolver) Sizes(ctx context.Context, recs []codec.Record) (sizes []int64, errs []error) {
	js := jobs(recs)
	if len(js) == 0 {
		return nil, nil
	}
	got := make([]int64, len(js))
	jerrs := make([]error, len(js))
	v.each(ctx, len(js), func(ctx context.Context, j int) {
		info, err := v.info(ctx, js[j].key)
		switch {
		case isMissing(err) || isUnreadable(err):
		case err != nil:
			jerrs[j] = err
			got[j] = v.cfg.MaxObjectBytes + markerRoom
		case info.Opts != nil && info.Opts.Link != nil:
			got[j] = v.cfg.MaxObjectBytes + markerRoom // a link's size is its target's, unknown here
		default:
			got[j] = min(int64(info.Size), v.cfg.MaxObjectBytes) + markerRoom
		}
	})
	sizes = make([]int64, len(recs))
	for j, jb := range js {
		sizes[jb.rec] += got[j]
		if jerrs[j] != nil {
			if errs == nil {
				errs = make([]error, len(recs))
			}
			if errs[jb.rec] == nil {
				errs[jb.rec] = fmt.Errorf("%s_object %q: %w", jb.field, jb.key, jerrs[j])
			}
		}
	}
	return sizes, errs
}

// fetchedText is what reading one object gave.
type fetchedText struct {
	text  string
	found bool
	note  string // one line to append to stderr, or ""
	err   error  // transient: the record must be retried
}

// Complete replaces the stdout / stderr of the results in recs by the content of the objects
// their stdout_object / stderr_object name, reading several objects at once. The text is
// decoded as UTF-8, each invalid sequence replaced by U+FFFD, and cut at MaxObjectBytes with a
// marker. A missing object or bucket is not an error: the inline text is kept and a one-line
// note naming the key is appended to stderr. errs is nil unless some object could not be read
// now (NATS unreachable, a timeout): errs[i] then says why, and record i is left unchanged.
func (v *Resolver) Complete(ctx context.Context, recs []codec.Record) (errs []error) {
	js := jobs(recs)
	if len(js) == 0 {
		return nil
	}
	// An object named twice (a result and its duplicate in one batch) is read once.
	first := make(map[job]int, len(js)) // the job, without its record, → the job that reads it
	unique := make([]int, 0, len(js))
	for j, jb := range js {
		jb.rec = 0
		if _, ok := first[jb]; !ok {
			first[jb] = j
			unique = append(unique, j)
		}
	}
	out := make([]fetchedText, len(js))
	v.each(ctx, len(unique), func(ctx context.Context, u int) {
		j := unique[u]
		out[j] = v.read(ctx, js[j])
	})
	for j, jb := range js {
		jb.rec = 0
		out[j] = out[first[jb]]
	}

	// Records are changed only once every object of theirs is in: a record with a failure is
	// left as it was, and texts are replaced before notes are appended.
	for j, jb := range js {
		if out[j].err == nil {
			continue
		}
		if errs == nil {
			errs = make([]error, len(recs))
		}
		if errs[jb.rec] == nil {
			errs[jb.rec] = fmt.Errorf("%s_object %q: %w", jb.field, jb.key, out[j].err)
		}
	}
	for j, jb := range js {
		if errs != nil && errs[jb.rec] != nil || !out[j].found {
			continue
		}
		r := recs[jb.rec].Result
		if jb.field == "stdout" {
			r.Stdout = out[j].text
		} else {
			r.Stderr = out[j].text
		}
	}
	var notFound []string
	for j, jb := range js {
		if errs != nil && errs[jb.rec] != nil || out[j].note == "" {
			continue
		}
		r := recs[jb.rec].Result
		r.Stderr = appendLine(r.Stderr, out[j].note)
		notFound = append(notFound, jb.key)
	}
	if len(notFound) > 0 {
		v.log.Warn("output objects missing or unreadable: stored the inline text with a note",
			"count", len(notFound), "first_key", notFound[0])
	}
	return errs
}

// read reads one object and classifies the outcome.
func (v *Resolver) read(ctx context.Context, jb job) fetchedText {
	start := time.Now()
	text, kept, size, err := v.get(ctx, jb.key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		if cerr := v.confirmMissing(ctx, jb.key); cerr != nil {
			err = cerr // not known to be missing after all: retried later
		}
	}
	var f fetchedText
	outcome := outcomeFetched
	switch {
	case isMissing(err):
		outcome = outcomeMissing
		f.note = fmt.Sprintf("[fanin] %s_object %q not found in object store %q; kept the inline %s", jb.field, jb.key, v.cfg.Bucket, jb.field)
	case isUnreadable(err):
		outcome = outcomeUnreadable
		f.note = fmt.Sprintf("[fanin] %s_object %q in object store %q cannot be read (%v); kept the inline %s", jb.field, jb.key, v.cfg.Bucket, err, jb.field)
	case err != nil:
		outcome = outcomeFailed
		f.err = err
		v.lastFailure.Store(&failure{at: time.Now(), err: err})
	default:
		f.text, f.found = text, true
		if size > v.cfg.MaxObjectBytes {
			outcome = outcomeTruncated
			f.text = appendLine(f.text, fmt.Sprintf("[fanin] %s truncated: kept the first %d of %d bytes of object %q in %q",
				jb.field, kept, size, jb.key, v.cfg.Bucket))
		}
	}
	if f.err == nil {
		v.lastFailure.Store(nil)
	}
	v.metrics.record(ctx, jb.field, outcome, kept, time.Since(start))
	return f
}

// get reads up to MaxObjectBytes of one object: kept of its size bytes. A cut falls on a
// character boundary.
func (v *Resolver) get(ctx context.Context, key string) (text string, kept, size int64, err error) {
	if err := v.connected(); err != nil {
		return "", 0, 0, err
	}
	// The read fails once it has made no progress for StallTimeout: a big object on a slow
	// link is fine, a server gone mid-read is not waited for.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := time.AfterFunc(v.cfg.StallTimeout, func() { cancel(errStalled) })
	defer stalled.Stop()
	store, err := v.objectStore(ctx)
	if err != nil {
		return "", 0, 0, stallCause(ctx, err)
	}
	res, err := store.Get(ctx, key)
	if err != nil {
		return "", 0, 0, stallCause(ctx, err)
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return "", 0, 0, stallCause(ctx, err)
	}
	size = int64(info.Size)
	var sb strings.Builder
	sb.Grow(int(min(size, v.cfg.MaxObjectBytes)))
	// Reading to the end checks the digest; a cut object is not read to the end.
	r := progressReader{io.LimitReader(res, v.cfg.MaxObjectBytes), func() { stalled.Reset(v.cfg.StallTimeout) }}
	if _, err := io.Copy(&sb, r); err != nil {
		return "", 0, 0, stallCause(ctx, err)
	}
	text = sb.String()
	if size > v.cfg.MaxObjectBytes {
		text = cutIncomplete(text)
	}
	kept = int64(len(text))
	if !utf8.ValidString(text) {
		text = ValidUTF8([]byte(text))
	}
	return text, kept, size, nil
}

// errStalled is the cause of a lookup or read cancelled for making no progress.
var errStalled = errors.New("no progress within the stall timeout")

// stallCause adds to err that it came from a stall, when it did.
func stallCause(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errStalled) {
		return fmt.Errorf("%w: %w", errStalled, err)
	}
	return err
}

// progressReader calls progress after each read that returned bytes.
type progressReader struct {
	r        io.Reader
	progress func()
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.progress()
	}
	return n, err
}

// connected fails fast while the connection is down: a request would wait for the reconnect.
func (v *Resolver) connected() error {
	if nc := v.js.Conn(); nc != nil && !nc.IsConnected() {
		return fmt.Errorf("object store: %w", nats.ErrDisconnected)
	}
	return nil
}

// info looks up one object's metadata.
func (v *Resolver) info(ctx context.Context, key string) (*jetstream.ObjectInfo, error) {
	if err := v.connected(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.StallTimeout)
	defer cancel()
	store, err := v.objectStore(ctx)
	if err != nil {
		return nil, err
	}
	return store.GetInfo(ctx, key)
}

func (v *Resolver) objectStore(ctx context.Context) (jetstream.ObjectStore, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.store != nil {
		return v.store, nil
	}
	store, err := v.js.ObjectStore(ctx, v.cfg.Bucket)
	if err != nil {
		return nil, err // not cached: the bucket may be created later
	}
	v.store = store
	return store, nil
}

// each calls f for 0..n-1, Concurrency at a time, and returns when all calls have.
func (v *Resolver) each(ctx context.Context, n int, f func(ctx context.Context, j int)) {
	workers := min(n, v.cfg.Concurrency)
	if workers == 1 {
		for j := range n {
			f(ctx, j)
		}
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				f(ctx, j)
			}
		}()
	}
	for j := range n {
		next <- j
	}
	close(next)
	wg.Wait()
}

// isMissing reports whether err says the object (or its whole bucket) does not exist.
func isMissing(err error) bool {
	return errors.Is(err, jetstream.ErrObjectNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound)
}

// isUnreadable reports whether err says the object exists but reading it again cannot succeed.
func isUnreadable(err error) bool {
	return errors.Is(err, jetstream.ErrDigestMismatch) || errors.Is(err, jetstream.ErrBadObjectMeta) ||
		errors.Is(err, jetstream.ErrCantGetBucket) || errors.Is(err, jetstream.ErrInvalidDigestFormat)
}

// appendLine appends line to s, on a line of its own.
func appendLine(s, line string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s + line
}

// cutIncomplete drops a character that the cut at the end of s split.
func cutIncomplete(s string) string {
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				return s[:i]
			}
			return s
		}
	}
	return s
}

// ValidUTF8 decodes b as UTF-8, replacing each maximal invalid subsequence by one U+FFFD (the
// Unicode "substitution of maximal subparts" practice, as Rust's String::from_utf8_lossy does).
func ValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			out = append(out, b[i:i+size]...)
			i += size
			continue
		}
		out = utf8.AppendRune(out, utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return string(out)
}

// maximalSubpart returns the length (≥ 1) of the longest prefix of b that starts a well-formed
// UTF-8 sequence but does not complete one; b does not start a valid sequence.
func maximalSubpart(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	var need int
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(b); n++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return n
}
