package sdnotify_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"fanin/internal/sdnotify"
	"fanin/internal/sdnotifytest"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestSendWritesOneDatagramOfStates(t *testing.T) {
	sock := sdnotifytest.Listen(t)
	n, err := sdnotify.New(env(map[string]string{"NOTIFY_SOCKET": sock.Path}))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Send(sdnotify.Ready, sdnotify.Status("ingesting\ninto fanin.db")); err != nil {
		t.Fatal(err)
	}
	if err := n.Send(sdnotify.Stopping); err != nil {
		t.Fatal(err)
	}
	sock.Wait(t, sdnotify.Stopping, 1, 10*time.Second)
	want := []string{"READY=1\nSTATUS=ingesting into fanin.db", "STOPPING=1"}
	if got := sock.Messages(); !slices.Equal(got, want) {
		t.Fatalf("datagrams = %q, want %q", got, want)
	}
}

func TestSendReachesAnAbstractSocket(t *testing.T) {
	name := "@fanin-sdnotify-test-" + strconv.Itoa(os.Getpid())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n, err := sdnotify.New(env(map[string]string{"NOTIFY_SOCKET": name}))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Send(sdnotify.Watchdog); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	k, err := conn.Read(buf)
	if err != nil || string(buf[:k]) != "WATCHDOG=1" {
		t.Fatalf("read %q, %v; want WATCHDOG=1", buf[:k], err)
	}
}

func TestWithoutNotifySocketNothingIsSent(t *testing.T) {
	n, err := sdnotify.New(env(nil))
	if err != nil || n != nil {
		t.Fatalf("New without $NOTIFY_SOCKET = %v, %v; want nil, nil", n, err)
	}
	if err := n.Send(sdnotify.Ready); err != nil {
		t.Fatalf("a nil Notifier's Send = %v, want nil", err)
	}
	if _, err := sdnotify.New(env(map[string]string{"NOTIFY_SOCKET": "relative/path"})); err == nil {
		t.Fatal("a relative $NOTIFY_SOCKET was accepted")
	}
}

func TestSendToAMissingSocketFails(t *testing.T) {
	n, err := sdnotify.New(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "gone.sock")}))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Send(sdnotify.Ready); err == nil {
		t.Fatal("Send to a socket nobody listens on succeeded")
	}
}

func TestWatchdogIntervalIsHalfOfWatchdogUsecForThisProcessOnly(t *testing.T) {
	const pid = 4242
	for _, tc := range []struct {
		name string
		vars map[string]string
		want time.Duration
		err  error // nil: any error when bad is set
		bad  bool
	}{
		{"unset", nil, 0, sdnotify.ErrNoWatchdog, false},
		{"no pid", map[string]string{"WATCHDOG_USEC": "30000000"}, 15 * time.Second, nil, false},
		{"this pid", map[string]string{"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"}, time.Second, nil, false},
		{"another pid", map[string]string{"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, 0, sdnotify.ErrNoWatchdog, false},
		{"bad usec", map[string]string{"WATCHDOG_USEC": "30s"}, 0, nil, true},
		{"zero usec", map[string]string{"WATCHDOG_USEC": "0"}, 0, nil, true},
		{"bad pid", map[string]string{"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "x"}, 0, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sdnotify.WatchdogInterval(env(tc.vars), pid)
			switch {
			case tc.bad && (err == nil || errors.Is(err, sdnotify.ErrNoWatchdog)):
				t.Fatalf("WatchdogInterval = %v, %v; want a malformed-variable error", got, err)
			case !tc.bad && !errors.Is(err, tc.err):
				t.Fatalf("WatchdogInterval = %v, %v; want error %v", got, err, tc.err)
			case got != tc.want:
				t.Fatalf("WatchdogInterval = %v, want %v", got, tc.want)
			}
		})
	}
}
