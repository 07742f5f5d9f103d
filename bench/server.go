package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// serverEnv, when set in the environment, makes the bench binary (or its test binary) serve
// JetStream from the directory it names instead of benchmarking: the harness starts its server
// that way, in a child process, so the measured process holds only the ingester — its CPU,
// heap, allocations and bytes written are fanin's, not the server's.
const serverEnv = "FANIN_BENCH_NATS_STORE"

// natsServer is the benchmark's JetStream server, in this process or in a child.
type natsServer struct {
	url   string
	inner *server.Server // in process
	cmd   *exec.Cmd      // child process
	stdin io.Closer      // closing it stops the child
}

// startServer starts an embedded JetStream server with file storage under dir, in a child
// process unless inProcess is set.
func startServer(dir string, inProcess bool) (*natsServer, error) {
	if inProcess {
		s, err := newServer(dir)
		if err != nil {
			return nil, err
		}
		return &natsServer{url: s.ClientURL(), inner: s}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serverEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	ns := &natsServer{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "nats://") {
		ns.stop()
		return nil, fmt.Errorf("nats server: child did not report its URL (%q): %v", line, err)
	}
	ns.url = strings.TrimSpace(line)
	return ns, nil
}

// stop shuts the server down and waits for it.
func (s *natsServer) stop() {
	if s.inner != nil {
		s.inner.Shutdown()
		s.inner.WaitForShutdown()
		return
	}
	s.stdin.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// cpu returns the CPU time the server's child process has used, or 0 in process.
func (s *natsServer) cpu() time.Duration {
	if s == nil || s.cmd == nil {
		return 0
	}
	return procCPU(s.cmd.Process.Pid)
}

func newServer(dir string) (*server.Server, error) {
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats server: not ready after 10s")
	}
	return s, nil
}

// serveNATS is the child's side: serve JetStream from dir, print the URL, and stop when stdin
// closes (the parent is done or gone).
func serveNATS(dir string) error {
	s, err := newServer(dir)
	if err != nil {
		return err
	}
	fmt.Println(s.ClientURL())
	io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

// procCPU reads a process's user + system time from /proc/<pid>/stat, or 0.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of stat
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	const hz = 100                              // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz
}
