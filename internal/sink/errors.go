package sink

import (
	"context"
	"errors"
	"strconv"

	"github.com/mattn/go-sqlite3"

	"fanin/internal/fault"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("sink closed")

// classify marks err permanent (fault.Permanent) when it is the database refusing the data
// itself — a constraint, a value too big, a type mismatch — so that retrying the same rows can
// never succeed. Everything else (SQLITE_BUSY, I/O errors, a full disk, a read-only file, a
// cancelled context) may pass when its cause goes away, and is left transient.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case sqlite3.ErrConstraint, sqlite3.ErrTooBig, sqlite3.ErrMismatch, sqlite3.ErrRange:
		return fault.Permanent(err)
	}
	return err
}

// statusCode is SQLite's result code of err ("5" for SQLITE_BUSY), or "" when err is not
// SQLite's.
func statusCode(err error) string {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return strconv.Itoa(int(se.Code))
	}
	return ""
}
