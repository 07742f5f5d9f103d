package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// modeFaninLitestream is fanin with `litestream replicate` (-litestream) replicating its
// database to a file replica beside it, litestream's default checkpoint settings.
const modeFaninLitestream = "fanin-litestream"

// replicator is one `litestream replicate` process.
type replicator struct {
	cmd  *exec.Cmd
	log  string // its output: debug level, where each sync says whether it had to snapshot
	done chan error

	once        sync.Once
	resnapshots int
	cpu         time.Duration // user + system time, once it has exited
	err         error
}

// startLitestream starts bin replicating the database at db to a file replica in a directory
// beside it, and waits for its first sync (the first snapshot).
func startLitestream(ctx context.Context, bin, db string) (*replicator, error) {
	dir := db + "-litestream"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("litestream: %w", err)
	}
	config := filepath.Join(dir, "litestream.yml")
	yml := fmt.Sprintf("logging:\n  level: debug\ndbs:\n  - path: %s\n    replica:\n      type: file\n      path: %s\n",
		db, filepath.Join(dir, "replica"))
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		return nil, fmt.Errorf("litestream: %w", err)
	}
	r := &replicator{log: filepath.Join(dir, "litestream.log"), done: make(chan error, 1)}
	f, err := os.Create(r.log)
	if err != nil {
		return nil, fmt.Errorf("litestream: %w", err)
	}
	r.cmd = exec.Command(bin, "replicate", "-config", config)
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start litestream: %w", err)
	}
	go func() { r.done <- r.cmd.Wait(); f.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for !bytes.Contains(r.logs(), []byte("snap=true")) {
		select {
		case err := <-r.done:
			return nil, fmt.Errorf("litestream exited before its first sync (%v): %s", err, r.logs())
		case <-ctx.Done():
			r.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, errors.New("litestream: no first sync within 30s")
		}
	}
	return r, nil
}

func (r *replicator) logs() []byte {
	b, _ := os.ReadFile(r.log)
	return b
}

// stop sends SIGTERM (litestream syncs a last time), waits for it to exit, and reports how
// many times it had to take a full snapshot again because the WAL changed behind its back
// (restarted, truncated or overwritten by another process's checkpoint). It is idempotent.
func (r *replicator) stop() (resnapshots int, err error) {
	r.once.Do(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case r.err = <-r.done:
		case <-time.After(60 * time.Second):
			r.cmd.Process.Kill()
			r.err = fmt.Errorf("still running 60s after SIGTERM: %w", <-r.done)
		}
		if st := r.cmd.ProcessState; st != nil {
			r.cpu = st.UserTime() + st.SystemTime()
		}
		if r.err != nil {
			r.err = fmt.Errorf("litestream: %w", r.err)
		}
		for line := range bytes.SplitSeq(r.logs(), []byte("\n")) {
			if bytes.Contains(line, []byte("snap=true")) && bytes.Contains(line, []byte("reason=")) {
				r.resnapshots++
			}
		}
	})
	return r.resnapshots, r.err
}
