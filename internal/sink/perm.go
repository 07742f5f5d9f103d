package sink

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"

	"fanin/internal/fault"
)

// The files of a WAL database: the database itself, then these suffixes.
var walSuffixes = []string{"-wal", "-shm"}

// checkMode reports why m cannot be Config.Mode, or nil.
func checkMode(m fs.FileMode) error {
	switch {
	case m == 0:
		return nil
	case m&^fs.ModePerm != 0:
		return fault.Fieldf("Mode", "%#o is not a permission mode (0000 to 0777, like 0640)", uint32(m))
	case m&0o600 != 0o600:
		return fault.Fieldf("Mode", "%#o must let the owner read and write (like 0640 or 0660)", uint32(m))
	case m&0o111 != 0:
		return fault.Fieldf("Mode", "%#o must not be executable (like 0640 or 0660)", uint32(m))
	}
	return nil
}

// lookupGroup returns the id of the group name, a group name or a numeric id.
func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if _, numeric := err.(user.UnknownGroupError); numeric {
			if id, nerr := strconv.Atoi(name); nerr == nil && id >= 0 {
				if g, err = user.LookupGroupId(name); err != nil {
					return id, nil // a gid without a name in the group database is still a gid
				}
			}
		}
		if err != nil {
			return 0, fault.Fieldf("Group", "%q: no such group on this host", name)
		}
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fault.Fieldf("Group", "%q: group id %q is not a number", name, g.Gid)
	}
	return id, nil
}

// sharesFiles reports whether the database's files are set for readers under other users
// (Mode or Group), in which case their mode and group are applied at Open and the -wal and
// -shm files kept when fanin closes the database.
func (c Config) sharesFiles() bool { return c.Mode != 0 || c.Group != "" }

// applyPerm gives the database file and its -wal and -shm (those that exist) Config.Mode and
// Config.Group. SQLite creates -wal and -shm with the database file's mode but, unless it runs
// as root, with the process's group: that is why fanin sets the group of all three itself.
func applyPerm(cfg Config) error {
	if !cfg.sharesFiles() {
		return nil
	}
	gid := -1
	if cfg.Group != "" {
		var err error
		if gid, err = lookupGroup(cfg.Group); err != nil {
			return err
		}
	}
	for _, suffix := range append([]string{""}, walSuffixes...) {
		path := cfg.Path + suffix
		if suffix != "" {
			if _, err := os.Lstat(path); os.IsNotExist(err) {
				continue
			}
		}
		if gid >= 0 {
			if err := os.Chown(path, -1, gid); err != nil {
				return fmt.Errorf("give %s to group %s (is fanin a member?): %w", path, cfg.Group, err)
			}
		}
		if cfg.Mode != 0 {
			if err := os.Chmod(path, cfg.Mode); err != nil {
				return fmt.Errorf("set the mode of %s: %w", path, err)
			}
		}
	}
	return nil
}
