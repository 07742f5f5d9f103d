package batch_test

import (
	"errors"
	"testing"
	"time"

	"fanin/internal/batch"
	"fanin/internal/fault"
)

// TestValidateNamesTheFieldOfABadSetting: each setting that cannot work is a *fault.FieldError
// naming the Go field the library's user set, with the whole message in the library's words.
func TestValidateNamesTheFieldOfABadSetting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		modify  func(*batch.Config)
		field   string
		wantErr string
	}{
		{"no stream", func(c *batch.Config) { c.Stream = "" }, "Stream", "Stream: must not be empty"},
		{"no durable", func(c *batch.Config) { c.Durable = "" }, "Durable", "Durable: must not be empty"},
		{"no filter", func(c *batch.Config) { c.FilterSubject = "" }, "FilterSubject", "FilterSubject: must not be empty"},
		{"unknown kind", func(c *batch.Config) { c.Kind = 99 }, "Kind", "Kind: unknown event kind 99"},
		{"batch too small", func(c *batch.Config) { c.BatchSize = 0 }, "BatchSize", "BatchSize: must be between 1 and 10000, not 0"},
		{"batch too big", func(c *batch.Config) { c.BatchSize = 10001 }, "BatchSize", "BatchSize: must be between 1 and 10000, not 10001"},
		{"group negative", func(c *batch.Config) { c.GroupBatches = -1 }, "GroupBatches",
			"GroupBatches: must be between 0 (automatic) and 100, not -1"},
		{"batch bytes too small", func(c *batch.Config) { c.MaxBatchBytes = 1000 }, "MaxBatchBytes",
			"MaxBatchBytes: must be at least 64 KiB, not 1000"},
		{"wait zero", func(c *batch.Config) { c.MaxWait = 0 }, "MaxWait", "MaxWait: must be between 1ms and 1m, not 0s"},
		{"wait too long", func(c *batch.Config) { c.MaxWait = 2 * time.Minute; c.AckWait = 5 * time.Minute }, "MaxWait",
			"MaxWait: must be between 1ms and 1m, not 2m0s"},
		{"ack wait too short", func(c *batch.Config) { c.AckWait = 5 * time.Second }, "AckWait",
			"AckWait: 5s must be at least twice MaxWait plus 5s, room for a slow commit"},
		{"max ack pending caps the fetch", func(c *batch.Config) { c.MaxAckPending = 10 }, "MaxAckPending",
			"MaxAckPending: 10 must be at least twice BatchSize (1000), or a Fetch is silently capped"},
		{"writers negative", func(c *batch.Config) { c.Writers = -1 }, "Writers",
			"Writers: must be between 0 (the store's choice) and 16, not -1"},
		{"too many writers", func(c *batch.Config) { c.Writers = 17 }, "Writers",
			"Writers: must be between 0 (the store's choice) and 16, not 17"},
		{"complete memory too small", func(c *batch.Config) { c.CompleteMemory = 1000 }, "CompleteMemory",
			"CompleteMemory: must be at least 1 MiB, not 1000 bytes"},
		{"complete memory negative", func(c *batch.Config) { c.CompleteMemory = -1 }, "CompleteMemory",
			"CompleteMemory: must be at least 1 MiB, not -1 bytes"},
		{"no initial retry", func(c *batch.Config) { c.RetryInitial = 0 }, "RetryInitial",
			"RetryInitial: must be at least 1ms, not 0s: every retry would come at once"},
		{"initial retry too short", func(c *batch.Config) { c.RetryInitial = time.Microsecond }, "RetryInitial",
			"RetryInitial: must be at least 1ms, not 1µs: every retry would come at once"},
		{"retry max below initial", func(c *batch.Config) { c.RetryMax = time.Millisecond }, "RetryMax",
			"RetryMax: 1ms must be no less than RetryInitial (100ms)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := batch.Started()
			tc.modify(&c)
			err := c.Validate()
			var fe *fault.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate() = %v (%T), want a *fault.FieldError about %s", err, err, tc.field)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("Validate() = %q, want %q", err, tc.wantErr)
			}
			if !fault.IsPermanent(err) {
				t.Errorf("Validate() = %v: not permanent", err)
			}
		})
	}
	for _, c := range []batch.Config{batch.Started(), batch.Results()} {
		if err := c.Validate(); err != nil {
			t.Errorf("defaults of %s invalid: %v", c.Stream, err)
		}
	}
}
