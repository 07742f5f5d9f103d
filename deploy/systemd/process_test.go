package systemd

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"fanin/internal/sdnotify"
	"fanin/internal/sdnotifytest"
)

// startIngest runs the binary as systemd would under fanin.service: single-binary mode on a
// free port, a database in a temp dir, $NOTIFY_SOCKET and a 200ms watchdog, GOTRACEBACK=crash,
// no core file. It returns the process and its exit, once it has one.
func startIngest(t *testing.T) (*exec.Cmd, *sdnotifytest.Socket, chan error) {
	t.Helper()
	dir := t.TempDir()
	sock := sdnotifytest.Listen(t)
	cmd := exec.Command("/bin/sh", "-c", `ulimit -c 0; exec "$0" "$@"`, ingestBin,
		"--embedded-nats", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
		"--db", filepath.Join(dir, "fanin.db"), "--metrics-addr=", "--log-format", "json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NOTIFY_SOCKET=" + sock.Path,
		"WATCHDOG_USEC=200000", "GOTRACEBACK=crash"}
	log, err := os.Create(filepath.Join(dir, "ingest.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); log.Close() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("ingest's log:\n%s", b)
		}
	})
	return cmd, sock, done
}

// TestTheBinaryNotifiesSystemd: READY=1, then watchdog pings, then STOPPING=1 and exit 0 on
// SIGTERM (KillSignal=).
func TestTheBinaryNotifiesSystemd(t *testing.T) {
	cmd, sock, done := startIngest(t)
	sock.Wait(t, sdnotify.Ready, 1, time.Minute)
	sock.Wait(t, sdnotify.Watchdog, 2, time.Minute)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("still running a minute after SIGTERM")
	}
	sock.Wait(t, sdnotify.Stopping, 1, time.Second)
}

// TestAWatchdogKillIsRestarted: the watchdog's SIGABRT (and a panic) end ingest by the signal
// under GOTRACEBACK=crash, not with Go's exit code 2, which RestartPreventExitStatus=2 would
// take for a usage error and never restart.
func TestAWatchdogKillIsRestarted(t *testing.T) {
	cmd, sock, done := startIngest(t)
	sock.Wait(t, sdnotify.Ready, 1, time.Minute)
	cmd.Process.Signal(syscall.SIGABRT)
	var err error
	select {
	case err = <-done:
		done <- err
	case <-time.After(time.Minute):
		t.Fatal("still running a minute after SIGABRT")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("after SIGABRT: %v", err)
	}
	ws := exit.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGABRT {
		t.Fatalf("after SIGABRT: %v (exit status %d), want killed by SIGABRT", err, ws.ExitStatus())
	}
}
