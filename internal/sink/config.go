package sink

import (
	"time"

	"fanin/internal/fault"
)

// Sync modes for Config.Sync.
const (
	// SyncFull fsyncs the WAL at every commit: an acked message survives a power cut.
	SyncFull = "full"
	// SyncNormal fsyncs only at checkpoints: a process crash loses nothing, but an OS crash or
	// power cut can roll back the last commits, whose messages were already acked.
	SyncNormal = "normal"
)

// Config says where the database lives and how hard it works to keep each commit.
type Config struct {
	// Path is the SQLite database file. It is created, with mode 0600, when missing; its
	// directory must exist.
	Path string
	// Sync is SyncFull (the default) or SyncNormal.
	Sync string
	// BusyTimeout is how long a write waits for another process's lock before it fails with a
	// transient error (default 5s).
	BusyTimeout time.Duration
	// CacheSizeMiB is SQLite's page cache for the writer connection, in MiB (default 64).
	CacheSizeMiB int
}

// DefaultConfig returns the settings fanin runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Path:         "fanin.db",
		Sync:         SyncFull,
		BusyTimeout:  5 * time.Second,
		CacheSizeMiB: 64,
	}
}

// Validate reports the first setting that cannot work, as a *fault.FieldError naming its
// field ("Path").
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return fault.Fieldf("Path", "must name a database file")
	case c.Sync != SyncFull && c.Sync != SyncNormal:
		return fault.Fieldf("Sync", "must be %q or %q, not %q", SyncFull, SyncNormal, c.Sync)
	case c.BusyTimeout < 0:
		return fault.Fieldf("BusyTimeout", "must not be negative, not %s", c.BusyTimeout)
	case c.CacheSizeMiB < 1 || c.CacheSizeMiB > 16384:
		return fault.Fieldf("CacheSizeMiB", "must be between 1 and 16384, not %d", c.CacheSizeMiB)
	}
	return nil
}
