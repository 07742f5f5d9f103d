package sink

import (
	"io/fs"
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
	// Path is the SQLite database file. It is created, with mode 0600 (or Mode), when missing;
	// its directory must exist.
	Path string
	// Mode is the permission bits Open gives the database file and its -wal and -shm, new or
	// not, for readers under other users (0640: the group reads; see Group). Zero (the
	// default): a new file is created 0600, an existing one left as it is. The owner must read
	// and write; no execute bits.
	Mode fs.FileMode
	// Group is the group (a name or a numeric id) Open gives the database file and its -wal and
	// -shm; "" (the default): the files keep theirs. The process must be a member of it, or
	// root. With Mode or Group set, the -wal and -shm files are kept when the database is
	// closed (SQLite's persistent WAL), so a reader that cannot create them in the directory
	// can still open the database while fanin is stopped.
	Group string
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
	case checkMode(c.Mode) != nil:
		return checkMode(c.Mode)
	case c.Group != "" && groupError(c.Group) != nil:
		return groupError(c.Group)
	case c.BusyTimeout < 0:
		return fault.Fieldf("BusyTimeout", "must not be negative, not %s", c.BusyTimeout)
	case c.CacheSizeMiB < 1 || c.CacheSizeMiB > 16384:
		return fault.Fieldf("CacheSizeMiB", "must be between 1 and 16384, not %d", c.CacheSizeMiB)
	}
	return nil
}

// groupError reports why the group name cannot be Config.Group: no such group on this host.
func groupError(name string) error {
	_, err := lookupGroup(name)
	return err
}
