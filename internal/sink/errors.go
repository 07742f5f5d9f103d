package sink

import (
	"context"
	"errors"

	"github.com/mattn/go-sqlite3"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("sink closed")

// IsPermanent reports whether err is the database refusing the data itself — a constraint, a
// value too big, a type mismatch — so that retrying the same rows can never succeed.
// Everything else (SQLITE_BUSY, I/O errors, a full disk, a read-only file, a cancelled context)
// may pass when its cause goes away, and is transient.
func IsPermanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrConstraint, sqlite3.ErrTooBig, sqlite3.ErrMismatch, sqlite3.ErrRange:
		return true
	}
	return false
}
