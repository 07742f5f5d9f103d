// Package sdnotifytest plays systemd's side of the notification protocol in tests: a unixgram
// socket in a temp dir that records every datagram a service sends to $NOTIFY_SOCKET.
package sdnotifytest

import (
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Socket is a listening notification socket. Its reader goroutine ends with the test.
type Socket struct {
	// Path is the value for $NOTIFY_SOCKET.
	Path string

	mu       sync.Mutex
	messages []string // datagrams, in arrival order
}

// Listen opens a socket in a temp dir (closed by t.Cleanup).
func Listen(t testing.TB) *Socket {
	t.Helper()
	s := &Socket{Path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return // closed
			}
			s.mu.Lock()
			s.messages = append(s.messages, string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// Messages returns the datagrams received so far, in order.
func (s *Socket) Messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// Index returns the position of the first datagram holding the line state ("READY=1"), or -1.
func (s *Socket) Index(state string) int {
	return slices.IndexFunc(s.Messages(), func(m string) bool {
		return slices.Contains(strings.Split(m, "\n"), state)
	})
}

// Count returns how many datagrams hold the line state.
func (s *Socket) Count(state string) int {
	n := 0
	for _, m := range s.Messages() {
		if slices.Contains(strings.Split(m, "\n"), state) {
			n++
		}
	}
	return n
}

// Wait waits until n datagrams hold the line state, polling; it fails the test after timeout.
func (s *Socket) Wait(t testing.TB, state string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.Count(state) < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %d %q notifications; got %q", timeout, n, state, s.Messages())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
