package faults

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalWhileNATSIsUnreachableExitsZero sends SIGTERM or SIGHUP to the real binary while
// NATS cannot be reached: while connecting, while waiting to create the streams, and while
// binding the durables. A stop asked for by a signal exits 0 once the graceful shutdown
// completed (nothing was acked that is not in the database; the rest is redelivered), whatever
// the ingester was waiting for.
func TestSignalWhileNATSIsUnreachableExitsZero(t *testing.T) {
	for name, sig := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGHUP": syscall.SIGHUP} {
		for _, tc := range []struct {
			name  string
			extra []string
			after string // the log line to wait for before the signal
		}{
			{name: "connecting", after: "NATS is not reachable yet: retrying in the background"},
			{name: "creating streams", extra: []string{"--create-streams"}, after: "cannot create the streams yet: retrying"},
			{name: "binding", after: "cannot bind the durable: retrying"}, // after the output bucket probe gives up (10 s)
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				p := start(t, dir, unreachableArgs(dir, tc.extra...), nil)
				p.waitLog(tc.after, 1, 60*time.Second)
				p.signal(sig)
				if code := p.wait(30 * time.Second); code != 0 {
					t.Fatalf("exit code %d after %s, want 0", code, sig)
				}
				if !strings.Contains(p.logs(), "ingest: "+sig.String()+": shutting down") {
					t.Errorf("no line saying %s started the shutdown", sig)
				}
			})
		}
	}
}

// TestSIGHUPIgnoredAtStartStaysIgnored: under nohup (SIGHUP ignored when ingest starts), a
// hangup does not stop ingest; SIGTERM still does.
func TestSIGHUPIgnoredAtStartStaysIgnored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The shell ignores SIGHUP and execs ingest, which inherits the ignored disposition.
	script := `trap '' HUP; exec "$0" "$@"`
	p := startCommand(t, dir, exec.Command("/bin/sh", append([]string{"-c", script, ingestBin}, unreachableArgs(dir)...)...))
	p.waitLog("NATS is not reachable yet: retrying in the background", 1, 30*time.Second)
	p.signal(syscall.SIGHUP)
	select {
	case <-p.done:
		t.Fatalf("SIGHUP stopped ingest under nohup (exit code %d)", p.cmd.ProcessState.ExitCode())
	case <-time.After(time.Second):
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// unreachableArgs runs ingest against a port nothing listens on, logging JSON.
func unreachableArgs(dir string, extra ...string) []string {
	return append([]string{"--nats-url", "nats://127.0.0.1:1", "--db", filepath.Join(dir, "fanin.db"),
		"--log-format", "json", "--metrics-addr=", "--shutdown-timeout", "20s"}, extra...)
}
