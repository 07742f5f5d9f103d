package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// TestReadOnlyDatabaseAtStart starts the ingester on a database file it may read but not
// write. What it does (pinned here): it exits 1 at once with one clear line naming the file
// and the cause, having acked nothing; it does not wait for the file to become writable, so
// recovery takes a restart — which then loses nothing.
//
// As root, file modes do not stop writes, so the binary runs as nobody (65534) on a root-owned
// 0644 file; as another user the file is chmod 0444.
func TestReadOnlyDatabaseAtStart(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	b := broadcast(500, 31)
	msgs := b.Messages()

	dir, err := os.MkdirTemp("", "fanin-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777) // SQLite creates -wal and -shm next to the file
	db := filepath.Join(dir, "fanin.db")
	fleettest.CreateExecution(t, db, b)
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(db + suffix)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		os.Chmod(db, 0o644)
	} else {
		os.Chmod(db, 0o444)
	}
	createStreams(t, js)
	publish(t, js, msgs)

	args := ingestArgs(srv.ClientURL(), db)
	p := start(t, dir, args, cred)
	code := p.wait(30 * time.Second)
	log := p.logs()
	t.Logf("exit %d; log:\n%s", code, tail(log, 600))
	if code != 1 {
		t.Errorf("exit code %d on a read-only database, want 1", code)
	}
	if !strings.Contains(log, db) || !(strings.Contains(log, "permission denied") || strings.Contains(log, "readonly")) {
		t.Errorf("the error does not name the file and the cause")
	}
	if n := acked(js); n > 0 {
		t.Fatalf("%d messages acked on a read-only database", n)
	}

	os.Chmod(db, 0o666)
	p = start(t, dir, args, cred)
	fleettest.WaitDrained(t, js, time.Minute)
	p.waitLog("projecting", 2, 10*time.Second)
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	fleettest.CheckTables(t, db, b, msgs)
}

// TestDatabaseFileUnwritableMidRun makes the database unwritable under a running ingester.
// chmod does not do it (SQLite keeps its descriptors open, and root ignores modes), and
// renaming the file away does not either in WAL mode (no write failed within 20 s of it);
// the immutable attribute (chattr +i on the database and its -wal) does: every write through
// the open descriptors fails with EPERM. While it lasts nothing may be acked; once the
// attribute is removed the ingester catches up without a restart.
func TestDatabaseFileUnwritableMidRun(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and chattr (the immutable attribute)")
	}
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	b := broadcast(1000, 32)
	msgs := b.Messages()
	half := len(msgs) / 2
	db := newDB(t, b)
	p := start(t, t.TempDir(), ingestArgs(srv.ClientURL(), db), nil)
	p.waitLog("projecting", 2, 30*time.Second)
	publish(t, js, msgs[:half])
	fleettest.WaitDrained(t, js, time.Minute)
	floor := acked(js)

	files := []string{db, db + "-wal"}
	if out, err := exec.Command("chattr", append([]string{"+i"}, files...)...).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v: %s", err, out)
	}
	mutable := func() { exec.Command("chattr", append([]string{"-i"}, files...)...).Run() }
	t.Cleanup(mutable)
	publish(t, js, msgs[half:])
	unwritable := time.Now()
	natstest.Eventually(t, 20*time.Second, "a failed write in the log", func() bool {
		return len(p.logLines("write failed: naking the batch")) > 0
	})
	for time.Since(unwritable) < 3*time.Second {
		if n := acked(js); n != floor {
			t.Fatalf("ack floors moved from %d to %d while the database could not be written", floor, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	failed := p.logLines("write failed: naking the batch")
	t.Logf("while unwritable: %d failed writes; first: %s", len(failed), failed[0])
	mutable()
	fleettest.WaitDrained(t, js, time.Minute)
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	fleettest.CheckTables(t, db, b, msgs)
}
