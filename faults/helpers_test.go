package faults

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/broker"
	"fanin/internal/fleet"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// ingestBin is the real binary, built once by TestMain (without -race: these tests are about
// the process, and an instrumented binary would be several times slower).
var ingestBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fanin-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // the read-only test runs the binary as another user
	ingestBin = filepath.Join(dir, "ingest")
	build := exec.Command("go", "build", "-o", ingestBin, "./cmd/ingest")
	build.Dir = ".." // the module root
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ingest: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	pg.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// soak reports whether the long variants were asked for (FANIN_SOAK=1, `make soak`).
func soak() bool { return os.Getenv("FANIN_SOAK") == "1" }

// broadcast is the fleet the tests ingest: duplicates, failures, legacy results and poison.
func broadcast(pcs int, seed uint64) fleet.Broadcast {
	return fleet.Broadcast{
		ExecID: "exec-1", RequestID: "req-1", ManifestID: "inventory-hw", Version: "1.0.0",
		PCs: pcs, Seed: seed, FailureRate: 0.05, DuplicateRate: 0.1, Poison: 5, LegacyResults: 0.05,
	}
}

// proc is one ingest subprocess.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  string // path of its stderr (JSON log lines)
	done chan struct{}
	err  error // set when done is closed
}

// ingestArgs are the flags every test starts the binary with; extra ones are appended.
func ingestArgs(url, db string, extra ...string) []string {
	return append([]string{
		"--nats-url", url, "--db", db, "--sync", "normal", "--wait", "50ms", "--ack-wait", "6s",
		"--create-streams", "--log-format", "json", "--stats-interval", "1s", "--shutdown-timeout", "20s",
		"--metrics-addr=", // no fixed listening port: replicas and other engineers' runs share the machine
	}, extra...)
}

// start runs the binary with args; its log goes to a file in dir. The process is killed when
// the test ends, if it still runs.
func start(t *testing.T, dir string, args []string, cred *syscall.Credential) *proc {
	t.Helper()
	cmd := exec.Command(ingestBin, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return startCommand(t, dir, cmd)
}

// startCommand is start for any command: the bare binary, or a shell that prepares the process
// and then execs ingest. Its environment is the test's without FANIN_*, NATS_* and OTEL_*.
func startCommand(t *testing.T, dir string, cmd *exec.Cmd) *proc {
	t.Helper()
	f, err := os.CreateTemp(dir, "ingest-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	for _, kv := range os.Environ() { // hermetic: no setting leaks in from the environment
		if !strings.HasPrefix(kv, "FANIN_") && !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start ingest: %v", err)
	}
	p := &proc{t: t, cmd: cmd, log: f.Name(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("log of ingest pid %d (last 3000 bytes):\n%s", cmd.Process.Pid, tail(p.logs(), 3000))
		}
	})
	return p
}

func (p *proc) logs() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// logLines returns the log lines whose "msg" is msg.
func (p *proc) logLines(msg string) []string {
	var out []string
	for _, l := range strings.Split(p.logs(), "\n") {
		if strings.Contains(l, `"msg":"`+msg+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits until the log has n lines with msg.
func (p *proc) waitLog(msg string, n int, timeout time.Duration) {
	p.t.Helper()
	natstest.Eventually(p.t, timeout, fmt.Sprintf("%d log lines %q", n, msg), func() bool { return len(p.logLines(msg)) >= n })
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when killed by a signal).
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("ingest pid %d still running after %s", p.cmd.Process.Pid, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and fails the test unless the process exits 0 within 30 s.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		p.t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// kill SIGKILLs the process and waits for it.
func (p *proc) kill() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	p.wait(10 * time.Second)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// createExecution migrates the database at path and adds the executions row the backend
// creates before it broadcasts.
// newDB returns the path of a database in a fresh directory, migrated, with b's executions row.
func newDB(t *testing.T, b fleet.Broadcast) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fanin.db")
	fleettest.CreateExecution(t, path, b)
	return path
}

func publish(t *testing.T, js jetstream.JetStream, msgs []fleet.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := fleet.Publish(ctx, js, msgs, false); err != nil {
		t.Fatal(err)
	}
}

// publishAsync publishes msgs in the background; the returned function waits for it.
func publishAsync(t *testing.T, js jetstream.JetStream, msgs []fleet.Message) (wait func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		errc <- fleet.Publish(ctx, js, msgs, false)
	}()
	var once sync.Once
	return func() {
		t.Helper()
		once.Do(func() {
			if err := <-errc; err != nil {
				t.Fatalf("publish: %v", err)
			}
		})
	}
}

// createStreams creates EVENTS and RESULTS with the original settings and the given replicas
// (0: 1), as an operator would before starting fanin.
func createStreams(t *testing.T, js jetstream.JetStream, replicas ...int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, cfg := range []jetstream.StreamConfig{broker.EventsStream("EVENTS"), broker.ResultsStream("RESULTS")} {
		if len(replicas) > 0 {
			cfg.Replicas = replicas[0]
			cfg.MaxBytes = 256 << 20
		}
		for {
			// Short attempts: a cluster still electing its meta leader does not answer at all.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := js.CreateStream(ctx, cfg)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("create stream %s: %v", cfg.Name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// consumerInfo returns the durable's state, or nil when it cannot be read.
func consumerInfo(js jetstream.JetStream, stream, durable string) *jetstream.ConsumerInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		return nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}

// acked returns how many stream messages the two durables have acknowledged (their ack
// floors), or -1 when a durable cannot be read.
func acked(js jetstream.JetStream) int64 {
	var n int64
	for _, sd := range [][2]string{{"EVENTS", "backend_events_projector"}, {"RESULTS", "backend_results_projector"}} {
		info := consumerInfo(js, sd[0], sd[1])
		if info == nil {
			return -1
		}
		n += int64(info.AckFloor.Stream)
	}
	return n
}

// countRows returns the rows of table, read in a separate read-only connection.
func countRows(t *testing.T, path, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}
