package fault_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"fanin/internal/fault"
)

type declared bool

func (d declared) Error() string   { return "declared" }
func (d declared) Permanent() bool { return bool(d) }

func TestIsPermanent(t *testing.T) {
	base := errors.New("disk full")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"context", context.Canceled, false},
		{"marked", fault.Permanent(base), true},
		{"marked, wrapped", fmt.Errorf("write: %w", fault.Permanent(base)), true},
		{"field", fault.Fieldf("BatchSize", "must be at least 1, not %d", 0), true},
		{"field, wrapped", fmt.Errorf("events: %w", fault.Fieldf("Durable", "empty")), true},
		{"declares true", declared(true), true},
		{"declares false", declared(false), false},
		{"joined with one permanent", errors.Join(base, fault.Permanent(base)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fault.IsPermanent(tc.err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestPermanentKeepsTheChain(t *testing.T) {
	base := errors.New("constraint")
	err := fmt.Errorf("write: %w", fault.Permanent(base))
	if !errors.Is(err, base) {
		t.Errorf("errors.Is(%v, base) = false", err)
	}
	if err.Error() != "write: constraint" {
		t.Errorf("Error() = %q", err.Error())
	}
	if fault.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}

func TestField(t *testing.T) {
	err := fmt.Errorf("results: %w", fault.Fieldf("BatchSize", "must be between 1 and 10000, not %d", 0))
	field, fe := fault.Field(err)
	if field != "BatchSize" || fe == nil {
		t.Fatalf("Field(%v) = %q, %v", err, field, fe)
	}
	if got, want := fe.Error(), "BatchSize: must be between 1 and 10000, not 0"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if field, fe := fault.Field(errors.New("x")); field != "" || fe != nil {
		t.Errorf("Field(plain) = %q, %v", field, fe)
	}
}
