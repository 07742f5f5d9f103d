// Package output completes results whose stdout or stderr exceeded what the agent sends inline:
// it reads the text from the JetStream Object Store bucket the result names.
package output

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/codec"
)

// Bucket is the Object Store bucket agents put large outputs in.
const Bucket = "result_output"

// Resolver fetches large outputs. It is safe for concurrent use.
type Resolver struct {
	js     jetstream.JetStream
	bucket string

	mu    sync.Mutex
	store jetstream.ObjectStore // nil until the bucket has been found
}

// NewResolver returns a resolver reading from bucket (usually Bucket). It does no I/O.
func NewResolver(js jetstream.JetStream, bucket string) *Resolver {
	return &Resolver{js: js, bucket: bucket}
}

// Resolve replaces r.Stdout / r.Stderr by the content of the objects r.StdoutObject /
// r.StderrObject name, decoded as UTF-8 with each invalid sequence replaced by U+FFFD. A
// missing object or bucket is not an error: the inline text is kept and a one-line note naming
// the key is appended to r.Stderr. Any other failure (NATS down, a timeout) is returned, and
// the result should be retried later.
func (v *Resolver) Resolve(ctx context.Context, r *codec.Result) error {
	if r.StdoutObject == "" && r.StderrObject == "" {
		return nil
	}
	var notes []string
	for _, o := range []struct {
		field, key string
		dst        *string
	}{
		{"stdout_object", r.StdoutObject, &r.Stdout},
		{"stderr_object", r.StderrObject, &r.Stderr},
	} {
		if o.key == "" {
			continue
		}
		text, found, err := v.get(ctx, o.key)
		if err != nil {
			return fmt.Errorf("%s %q: %w", o.field, o.key, err)
		}
		if !found {
			notes = append(notes, fmt.Sprintf("[fanin] %s %q not found in object store %q; kept the inline text", o.field, o.key, v.bucket))
			continue
		}
		*o.dst = text
	}
	for _, n := range notes {
		if r.Stderr != "" && r.Stderr[len(r.Stderr)-1] != '\n' {
			r.Stderr += "\n"
		}
		r.Stderr += n
	}
	return nil
}

// get reads one object. found is false when the bucket or the object does not exist.
func (v *Resolver) get(ctx context.Context, key string) (text string, found bool, err error) {
	store, err := v.objectStore(ctx)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	b, err := store.GetBytes(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return ValidUTF8(b), true, nil
}

func (v *Resolver) objectStore(ctx context.Context) (jetstream.ObjectStore, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.store != nil {
		return v.store, nil
	}
	store, err := v.js.ObjectStore(ctx, v.bucket)
	if err != nil {
		return nil, err // not cached: the bucket may be created later
	}
	v.store = store
	return store, nil
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
