package pgsink

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"fanin/internal/fault"
)

// classify marks err permanent (fault.Permanent) when it is the database refusing the data
// itself, so that retrying the same rows can never succeed: SQLSTATE class 23 (integrity
// constraint), class 22 (data exception: a NUL byte in text, a value out of range) and 54000
// (a value too big for an index). Everything else may pass when its cause goes away and is left
// transient: class 40 (serialization failure, deadlock: Write retries those first), 08 (a lost
// connection), 57P01–57P03 (admin shutdown, a crash, a server starting), 25006 (a read-only
// standby after a failover), 53 (out of disk, memory or connections), a cancelled context, a
// dial error.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	var race *errRace
	if !errors.As(err, &pe) || errors.As(err, &race) {
		return err
	}
	switch {
	case strings.HasPrefix(pe.Code, "23"), strings.HasPrefix(pe.Code, "22"), pe.Code == "54000":
		return fault.Permanent(err)
	}
	return err
}

// retryable reports whether err is a serialization failure (40001), a deadlock (40P01), or a
// row another transaction inserted under this one (errRace): the transaction lost a race and
// is tried again, up to maxAttempts.
func retryable(err error) bool {
	var race *errRace
	if errors.As(err, &race) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// statusCode is the SQLSTATE of err ("40P01"), or "" when err carries none.
func statusCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Redact returns msg with every password connString (or PGPASSWORD) holds replaced by
// "xxxxx", in plain and URL-escaped form.
func Redact(msg, connString string) string {
	for _, pw := range passwords(connString) {
		if len(pw) < 2 {
			continue // a one-character "password" would blank the whole message
		}
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
		msg = strings.ReplaceAll(msg, url.QueryEscape(pw), "xxxxx")
		msg = strings.ReplaceAll(msg, url.PathEscape(pw), "xxxxx")
	}
	return msg
}

func passwords(connString string) []string {
	var pws []string
	if u, err := url.Parse(connString); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			pws = append(pws, pw)
		}
		if pw := u.Query().Get("password"); pw != "" {
			pws = append(pws, pw)
		}
	}
	if cc, err := pgx.ParseConfig(connString); err == nil && cc.Password != "" {
		pws = append(pws, cc.Password)
	}
	return pws
}

// redactedError is an error whose text has the passwords taken out; it unwraps to the original,
// so errors.As still finds the *pgconn.PgError.
type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redacted wraps err so that its text shows no password of connString.
func redacted(err error, connString string) error {
	if err == nil {
		return nil
	}
	msg := Redact(err.Error(), connString)
	if msg == err.Error() {
		return err
	}
	return &redactedError{err: err, msg: msg}
}
