package faults

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// smallFS mounts a tmpfs of size bytes under a temp dir, or skips the test where that is not
// allowed (it needs root).
func smallFS(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a size-limited tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file into dir until the filesystem is full, and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
}

func readyz(addr string) (int, string) {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDiskFullMidRun puts the database on a 64 MiB tmpfs, fills the filesystem mid-ingest, then
// frees it: writes fail with SQLITE_FULL, nothing is acked, /readyz says why, and the ingester
// catches up without a restart.
func TestDiskFullMidRun(t *testing.T) {
	dir := smallFS(t, 64<<20)
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	b := broadcast(1000, 41)
	msgs := b.Messages()
	half := len(msgs) / 2
	db := filepath.Join(dir, "fanin.db")
	fleettest.CreateExecution(t, db, b)
	addr := "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
	p := start(t, t.TempDir(), append(ingestArgs(srv.ClientURL(), db), "--metrics-addr", addr), nil)
	p.waitLog("projecting", 2, 30*time.Second)
	publish(t, js, msgs[:half])
	fleettest.WaitDrained(t, js, time.Minute)
	floor := acked(js)
	rows := countRows(t, db, "execution_results")

	filler := fill(t, dir)
	publish(t, js, msgs[half:])
	natstest.Eventually(t, 30*time.Second, "a failed write in the log", func() bool {
		return len(p.logLines("write failed: naking the batch")) > 0
	})
	failed := p.logLines("write failed: naking the batch")[0]
	if !strings.Contains(failed, "full") {
		t.Errorf("the log does not say the disk is full: %s", failed)
	}
	natstest.Eventually(t, 10*time.Second, "/readyz reporting the database", func() bool {
		code, body := readyz(addr)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "database")
	})
	for start := time.Now(); time.Since(start) < 2*time.Second; time.Sleep(200 * time.Millisecond) {
		if n := acked(js); n != floor {
			t.Fatalf("ack floors moved from %d to %d while the disk was full", floor, n)
		}
	}
	if n := countRows(t, db, "execution_results"); n != rows {
		t.Fatalf("rows changed from %d to %d while the disk was full", rows, n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitDrained(t, js, time.Minute)
	natstest.Eventually(t, 10*time.Second, "/readyz ready again", func() bool {
		code, _ := readyz(addr)
		return code == http.StatusOK
	})
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	fleettest.CheckTables(t, db, b, msgs)
}
