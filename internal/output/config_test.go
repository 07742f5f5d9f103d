package output

import (
	"errors"
	"testing"

	"fanin/internal/fault"
)

// TestValidateNamesTheFieldOfABadSetting: a setting that cannot work is a *fault.FieldError
// naming its Go field.
func TestValidateNamesTheFieldOfABadSetting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		modify  func(*Config)
		field   string
		wantErr string
	}{
		{"empty bucket", func(c *Config) { c.Bucket = "" }, "Bucket", `Bucket: "" is not a bucket name (letters, digits, _ and - only)`},
		{"bucket with a dot", func(c *Config) { c.Bucket = "result.output" }, "Bucket",
			`Bucket: "result.output" is not a bucket name (letters, digits, _ and - only)`},
		{"no bytes", func(c *Config) { c.MaxObjectBytes = 0 }, "MaxObjectBytes", "MaxObjectBytes: must be at least 1, not 0"},
		{"no concurrency", func(c *Config) { c.Concurrency = 0 }, "Concurrency", "Concurrency: must be at least 1, not 0"},
		{"no stall timeout", func(c *Config) { c.StallTimeout = 0 }, "StallTimeout", "StallTimeout: must be positive, not 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.modify(&c)
			err := c.Validate()
			var fe *fault.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate() = %v (%T), want a *fault.FieldError about %s", err, err, tc.field)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("Validate() = %q, want %q", err, tc.wantErr)
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}
