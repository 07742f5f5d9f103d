package sink

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"fanin/internal/fault"
)

// otherGroup returns a group the process may give its files, other than its own: a
// supplementary group, or as root any group. ok is false when there is none.
func otherGroup(t *testing.T) (gid int, ok bool) {
	t.Helper()
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g != os.Getegid() {
			return g, true
		}
	}
	if os.Geteuid() == 0 {
		return 65534, true // nogroup
	}
	return 0, false
}

// fileOwner returns the mode bits and the group of path.
func fileOwner(t *testing.T, path string) (fs.FileMode, int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm(), int(fi.Sys().(*syscall.Stat_t).Gid)
}

func TestTheDatabaseFilesGetTheModeAndGroupSet(t *testing.T) {
	gid, ok := otherGroup(t)
	if !ok {
		gid = os.Getegid() // the mode is still checked; the group change cannot be
		t.Log("no supplementary group: the group is the process's own")
	}
	cfg := testConfig(t)
	cfg.Mode, cfg.Group = 0o640, strconv.Itoa(gid)
	old := syscall.Umask(0o077) // the mode is set, not left to the umask
	s := openTestSink(t, cfg)
	syscall.Umask(old)
	mustPoison(t, s, poisonOf(1, t0, "a"))
	for _, suffix := range []string{"", "-wal", "-shm"} {
		mode, g := fileOwner(t, cfg.Path+suffix)
		if mode != 0o640 || g != gid {
			t.Errorf("%s: mode %#o group %d, want 0640 and %d", filepath.Base(cfg.Path+suffix), mode, g, gid)
		}
	}

	// An existing database set to another mode gets this one at the next Open.
	s.Close()
	cfg.Mode = 0o660
	s = openTestSink(t, cfg)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if mode, _ := fileOwner(t, cfg.Path+suffix); mode != 0o660 {
			t.Errorf("%s reopened with Mode 0660: mode %#o", filepath.Base(cfg.Path+suffix), mode)
		}
	}
	// Closed, the -wal and -shm stay, for readers that cannot create them.
	s.Close()
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(cfg.Path + suffix); err != nil {
			t.Errorf("after Close: %v; want the file kept", err)
		}
	}
}

func TestWithoutModeANewDatabaseIs0600AndTheWALGoesAtClose(t *testing.T) {
	cfg := testConfig(t)
	s := openTestSink(t, cfg)
	if mode, _ := fileOwner(t, cfg.Path); mode != 0o600 {
		t.Errorf("mode %#o, want 0600", mode)
	}
	s.Close()
	if _, err := os.Stat(cfg.Path + "-wal"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("-wal after Close: %v, want it deleted as SQLite does by default", err)
	}
}

func TestModesAndGroupsThatCannotWorkAreRefused(t *testing.T) {
	for _, tc := range []struct {
		mode  fs.FileMode
		group string
		want  string
	}{
		{0o440, "", "owner read and write"},
		{0o750, "", "must not be executable"},
		{0o4640, "", "not a permission mode"},
		{0o1000000, "", "not a permission mode"},
		{0, "no-such-group-fanin", "no such group"},
	} {
		cfg := DefaultConfig()
		cfg.Mode, cfg.Group = tc.mode, tc.group
		err := cfg.Validate()
		if field, _ := fault.Field(err); err == nil || !strings.Contains(err.Error(), tc.want) ||
			(field != "Mode" && field != "Group") {
			t.Errorf("Mode %#o Group %q: Validate = %v, want a Mode or Group error saying %q", uint32(tc.mode), tc.group, err, tc.want)
		}
	}
}

// readerEnv makes the test binary a reader: TestReaderProcess opens the database it names
// read-only and prints how many dead letters it holds.
const readerEnv = "FANIN_SINK_TEST_READER"

// TestReaderProcess is not a test: it is the reader TestAReaderInTheGroupReadsWhileFaninWrites
// runs as another user.
func TestReaderProcess(t *testing.T) {
	path := os.Getenv(readerEnv)
	if path == "" {
		t.Skip("the reader subprocess of TestAReaderInTheGroupReadsWhileFaninWrites")
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM dead_letters`).Scan(&n); err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("rows:", n)
}

// TestAReaderInTheGroupReadsWhileFaninWrites runs a reader as another user (nobody), in the
// database's group only, with mode 0640: it reads while the writer is open and writing, and
// after it closed (the kept -wal and -shm), in a directory it cannot write. It needs root,
// to run the reader as another user.
func TestAReaderInTheGroupReadsWhileFaninWrites(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the reader as another user")
	}
	const readers = 65534 // nogroup: the reader's only group
	dir, err := os.MkdirTemp("", "fanin-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // the reader may enter, not create files
	bin := filepath.Join(dir, "reader")
	copyFile(t, os.Args[0], bin)

	cfg := DefaultConfig()
	cfg.Path, cfg.Mode, cfg.Group = filepath.Join(dir, "fanin.db"), 0o640, strconv.Itoa(readers)
	s := openTestSink(t, cfg)
	read := func() string {
		t.Helper()
		cmd := exec.Command(bin, "-test.run=^TestReaderProcess$")
		cmd.Env = append(os.Environ(), readerEnv+"="+cfg.Path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: readers, Groups: []uint32{readers}}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("reader: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "rows: ") || strings.HasPrefix(l, "error: ") {
				return l
			}
		}
		t.Fatalf("reader said nothing:\n%s", out)
		return ""
	}
	for i := uint64(1); i <= 3; i++ {
		mustPoison(t, s, poisonOf(i, t0, "x"))
		if got, want := read(), fmt.Sprintf("rows: %d", i); got != want {
			t.Fatalf("reader in the group, the writer open: %q, want %q", got, want)
		}
	}
	s.Close()
	if got := read(); got != "rows: 3" {
		t.Fatalf("reader in the group, the writer closed: %q, want rows: 3", got)
	}

	// Outside the group, the reader is refused: the mode is what lets it in.
	os.Chown(cfg.Path, -1, 0)
	if got := read(); !strings.HasPrefix(got, "error: ") {
		t.Fatalf("reader outside the group: %q, want an error", got)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
