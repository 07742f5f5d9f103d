package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRetryFlagsSetBothProjections: --retry-initial and --retry-max, from the command line or
// the environment, are the first and longest delay of both projections' retries.
func TestRetryFlagsSetBothProjections(t *testing.T) {
	for _, tc := range []struct {
		name             string
		args             []string
		env              map[string]string
		initial, longest time.Duration
	}{
		{name: "defaults", initial: 100 * time.Millisecond, longest: 30 * time.Second},
		{name: "flags", args: []string{"--retry-initial", "250ms", "--retry-max", "10s"},
			initial: 250 * time.Millisecond, longest: 10 * time.Second},
		{name: "environment", env: map[string]string{"FANIN_RETRY_INITIAL": "1s", "FANIN_RETRY_MAX": "2m"},
			initial: time.Second, longest: 2 * time.Minute},
		{name: "the command line wins", args: []string{"--retry-max", "5s"}, env: map[string]string{"FANIN_RETRY_MAX": "2m"},
			initial: 100 * time.Millisecond, longest: 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("test", "", &bytes.Buffer{})
			cfg := ingestFlags(fs)
			if err := fs.parse(tc.args, env(tc.env)); err != nil {
				t.Fatal(err)
			}
			if err := cfg.finish(); err != nil {
				t.Fatal(err)
			}
			for _, p := range []struct {
				name             string
				initial, longest time.Duration
			}{
				{"started", cfg.Events.RetryInitial, cfg.Events.RetryMax},
				{"results", cfg.Results.RetryInitial, cfg.Results.RetryMax},
			} {
				if p.initial != tc.initial || p.longest != tc.longest {
					t.Errorf("%s projection: RetryInitial %s, RetryMax %s; want %s, %s", p.name, p.initial, p.longest, tc.initial, tc.longest)
				}
			}
		})
	}
}

// TestRetrySettingsThatCanNeverWorkAreUsageErrors: a first delay under 1ms (a busy loop, or a
// nak that redelivers at once) or a longest delay below the first exits 2 with one line naming
// the flags, before anything is opened.
func TestRetrySettingsThatCanNeverWorkAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{name: "no first delay", args: []string{"--retry-initial", "0"},
			wantErr: "--retry-initial: must be at least 1ms, not 0s: every retry would come at once"},
		{name: "a first delay too short", args: []string{"--retry-initial", "10us", "--retry-max", "1s"},
			wantErr: "--retry-initial: must be at least 1ms, not 10µs"},
		{name: "a negative first delay", env: map[string]string{"FANIN_RETRY_INITIAL": "-1s"},
			wantErr: "--retry-initial: must be at least 1ms, not -1s"},
		{name: "longest below the first", args: []string{"--retry-max", "50ms"},
			wantErr: "--retry-max: 50ms must be no less than --retry-initial (100ms)"},
		{name: "longest below the first, from the environment", env: map[string]string{"FANIN_RETRY_INITIAL": "1m", "FANIN_RETRY_MAX": "30s"},
			wantErr: "--retry-max: 30s must be no less than --retry-initial (1m0s)"},
		{name: "not a duration", args: []string{"--retry-max", "soon"}, wantErr: `invalid value "soon" for flag -retry-max`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "fanin.db")
			args := append(append([]string(nil), tc.args...), "--db", db, "--metrics-addr=")
			var out, errb bytes.Buffer
			if code := Main(context.Background(), args, &out, &errb, env(tc.env)); code != 2 {
				t.Fatalf("exit code %d, want 2\nstderr: %s", code, errb.String())
			}
			e := strings.TrimSuffix(errb.String(), "\n")
			if strings.Contains(e, "\n") || !strings.Contains(e, tc.wantErr) {
				t.Errorf("stderr = %q, want one line with %q", e, tc.wantErr)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("the database was opened before the usage error (stat: %v)", err)
			}
		})
	}
}
