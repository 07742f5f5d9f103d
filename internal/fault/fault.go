// Package fault is fanin's error vocabulary: every failure is either permanent — retrying the
// same thing can never succeed — or transient, and a setting that cannot work names its field.
//
// A failure is classified once, where it is known (the decoder knows a payload is poison, the
// store knows a constraint refused a row, a config knows its field is out of range), and every
// caller decides by IsPermanent. Errors are permanent when something in their chain says so:
// a value made with Permanent, a *FieldError, or any error with a Permanent() bool method that
// returns true. Everything else is transient.
package fault

import (
	"errors"
	"fmt"
)

// Permanent marks err as permanent. It returns nil for a nil err; the result unwraps to err,
// so errors.Is and errors.As see through it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

type permanent struct{ err error }

func (p *permanent) Error() string   { return p.err.Error() }
func (p *permanent) Unwrap() error   { return p.err }
func (p *permanent) Permanent() bool { return true }

// IsPermanent reports whether err, or an error it wraps, says it is permanent. A nil err is not.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// FieldError is a setting that cannot work: a field of a library's configuration, named as
// the library's user sets it ("BatchSize", "Config.URL"). It is permanent. A command line maps
// Field to its own flag; see Field.
type FieldError struct {
	Field string // the field, as its Go name
	Err   error  // what is wrong with it
}

// Fieldf returns a *FieldError for field whose Err is fmt.Errorf(format, args...).
func Fieldf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

func (e *FieldError) Error() string   { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error   { return e.Err }
func (e *FieldError) Permanent() bool { return true }

// Field returns the field a *FieldError in err's chain names, and that error, or "" and nil.
func Field(err error) (string, *FieldError) {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field, fe
	}
	return "", nil
}
