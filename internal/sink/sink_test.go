package sink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fanin/internal/codec"
	"fanin/internal/fault"
)

// pragma reads back one integer or text pragma of the sink's connection.
func pragma[T any](t *testing.T, s *Sink, name string) T {
	t.Helper()
	var v T
	if err := s.db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestOpenSetsPragmas(t *testing.T) {
	tests := []struct {
		sync        string
		synchronous int // what PRAGMA synchronous reports: 1 NORMAL, 2 FULL
	}{
		{SyncFull, 2},
		{SyncNormal, 1},
	}
	for _, tt := range tests {
		t.Run(tt.sync, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Sync = tt.sync
			cfg.BusyTimeout = 1234 * time.Millisecond
			cfg.CacheSizeMiB = 3
			s := openTestSink(t, cfg)

			if got := pragma[string](t, s, "journal_mode"); got != "wal" {
				t.Errorf("journal_mode = %q, want wal", got)
			}
			if got := pragma[int](t, s, "synchronous"); got != tt.synchronous {
				t.Errorf("synchronous = %d, want %d", got, tt.synchronous)
			}
			if got := pragma[int](t, s, "busy_timeout"); got != 1234 {
				t.Errorf("busy_timeout = %d, want 1234", got)
			}
			if got := pragma[int](t, s, "cache_size"); got != -3*1024 {
				t.Errorf("cache_size = %d, want %d (KiB, negative)", got, -3*1024)
			}
			if got := pragma[int](t, s, "wal_autocheckpoint"); got != walAutocheckpointPages {
				t.Errorf("wal_autocheckpoint = %d, want %d", got, walAutocheckpointPages)
			}
			if got := pragma[int](t, s, "journal_size_limit"); got != journalSizeLimit {
				t.Errorf("journal_size_limit = %d, want %d", got, journalSizeLimit)
			}
			if got := pragma[int](t, s, "foreign_keys"); got != 0 {
				t.Errorf("foreign_keys = %d, want 0", got)
			}
		})
	}
}

func TestOpenCreatesDatabaseFileWithMode0600(t *testing.T) {
	cfg := testConfig(t)
	s := openTestSink(t, cfg)
	mustWrite(t, s, started("r1", "pc1").record(t, 1, t0)) // the WAL and its index exist now

	// The rows hold command output: SQLite gives its -wal and -shm files the database's mode.
	for _, path := range []string{cfg.Path, cfg.Path + "-wal", cfg.Path + "-shm"} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", filepath.Base(path), got)
		}
	}
}

func TestOpenNonDatabaseFileNamesThePath(t *testing.T) {
	cfg := testConfig(t)
	if err := os.WriteFile(cfg.Path, []byte("this is not an SQLite database, just a text file that is long enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("Open of a text file succeeded")
	}
	if !strings.Contains(err.Error(), cfg.Path) {
		t.Fatalf("Open error %q does not name the path %s", err, cfg.Path)
	}
}

func TestOpenPathWithSpecialCharacters(t *testing.T) {
	// The path goes through a file: URI; characters that mean something in a URI must still
	// name the file itself.
	cfg := testConfig(t)
	cfg.Path = filepath.Join(t.TempDir(), "a dir?x=1#frag%20", "fan in.db")
	if err := os.Mkdir(filepath.Dir(cfg.Path), 0o700); err != nil {
		t.Fatal(err)
	}
	openTestSink(t, cfg)
	if _, err := os.Stat(cfg.Path); err != nil {
		t.Fatalf("database file not at %q: %v", cfg.Path, err)
	}
}

func TestOpenInMissingDirectoryNamesThePath(t *testing.T) {
	cfg := testConfig(t)
	cfg.Path = filepath.Join(t.TempDir(), "missing", "fanin.db")

	s, err := Open(context.Background(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("Open in a missing directory succeeded")
	}
	if !strings.Contains(err.Error(), cfg.Path) {
		t.Fatalf("Open error %q does not name the path %s", err, cfg.Path)
	}
}

func TestOpenRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.Sync = "sometimes"
	s, err := Open(context.Background(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("Open with an invalid config succeeded")
	}
	if _, statErr := os.Stat(cfg.Path); !os.IsNotExist(statErr) {
		t.Fatalf("Open with an invalid config created %s (stat: %v)", cfg.Path, statErr)
	}
}

func TestCloseIsIdempotentAndStopsWrites(t *testing.T) {
	s, err := Open(context.Background(), testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Write(context.Background(), nil); err != ErrClosed {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Migrate(context.Background()); err != ErrClosed {
		t.Fatalf("Migrate after Close = %v, want ErrClosed", err)
	}
}

func TestEmptyReportsProjectedRowsAndDeadLetters(t *testing.T) {
	s := newTestSink(t)
	empty := func() bool {
		t.Helper()
		ok, err := s.Empty(context.Background())
		if err != nil {
			t.Fatalf("Empty: %v", err)
		}
		return ok
	}
	if !empty() {
		t.Fatal("a fresh database is not Empty")
	}
	if _, err := s.Write(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !empty() {
		t.Fatal("an empty Write made the database non-Empty")
	}

	poisoned := newTestSink(t)
	if _, err := poisoned.Write(context.Background(),
		[]codec.Record{rawRecord(codec.KindStarted, 1, "events.started.x.y", []byte("nope"), t0)}); err != nil {
		t.Fatal(err)
	}
	if ok, err := poisoned.Empty(context.Background()); err != nil || ok {
		t.Fatalf("Empty with one dead letter = %v, %v; want false, nil", ok, err)
	}

	mustWrite(t, s, started("r1", "pc1").record(t, 1, t0))
	if empty() {
		t.Fatal("Empty with one projected row")
	}
}

// TestConfigValidate: a setting that cannot work is a *fault.FieldError naming its Go field.
func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	tests := []struct {
		name    string
		change  func(*Config)
		field   string // "" for a valid config; else the field the error names
		wantErr string // the whole message
	}{
		{"default", func(*Config) {}, "", ""},
		{"sync normal", func(c *Config) { c.Sync = SyncNormal }, "", ""},
		{"zero busy timeout", func(c *Config) { c.BusyTimeout = 0 }, "", ""},
		{"smallest cache", func(c *Config) { c.CacheSizeMiB = 1 }, "", ""},
		{"largest cache", func(c *Config) { c.CacheSizeMiB = 16384 }, "", ""},
		{"empty path", func(c *Config) { c.Path = "" }, "Path", "Path: must name a database file"},
		{"empty sync", func(c *Config) { c.Sync = "" }, "Sync", `Sync: must be "full" or "normal", not ""`},
		{"unknown sync", func(c *Config) { c.Sync = "off" }, "Sync", `Sync: must be "full" or "normal", not "off"`},
		{"upper-case sync", func(c *Config) { c.Sync = "FULL" }, "Sync", `Sync: must be "full" or "normal", not "FULL"`},
		{"negative busy timeout", func(c *Config) { c.BusyTimeout = -time.Millisecond }, "BusyTimeout",
			"BusyTimeout: must not be negative, not -1ms"},
		{"zero cache", func(c *Config) { c.CacheSizeMiB = 0 }, "CacheSizeMiB", "CacheSizeMiB: must be between 1 and 16384, not 0"},
		{"negative cache", func(c *Config) { c.CacheSizeMiB = -1 }, "CacheSizeMiB", "CacheSizeMiB: must be between 1 and 16384, not -1"},
		{"cache too big", func(c *Config) { c.CacheSizeMiB = 16385 }, "CacheSizeMiB", "CacheSizeMiB: must be between 1 and 16384, not 16385"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.change(&c)
			err := c.Validate()
			var fe *fault.FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.field == "":
			case !errors.As(err, &fe) || fe.Field != tt.field:
				t.Fatalf("Validate() = %v (%T), want a *fault.FieldError about %s", err, err, tt.field)
			case err.Error() != tt.wantErr:
				t.Fatalf("Validate() = %q, want %q", err, tt.wantErr)
			}
		})
	}
}
