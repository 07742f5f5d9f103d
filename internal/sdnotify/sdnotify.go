// Package sdnotify speaks systemd's service notification protocol (sd_notify(3)): one
// datagram of newline-separated VAR=value assignments to the unix socket $NOTIFY_SOCKET names.
// It is what a Type=notify unit needs: READY=1 once the service is ready, STATUS= for
// "systemctl status", STOPPING=1 when a shutdown starts, and WATCHDOG=1 at least every
// WatchdogSec while the service is healthy.
//
// Outside systemd (no $NOTIFY_SOCKET) every call is a no-op, so callers never need to ask.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// The states a Notifier sends.
const (
	// Ready tells systemd that start-up is finished: a Type=notify unit is "active" from here,
	// and its watchdog (WatchdogSec=) starts counting.
	Ready = "READY=1"
	// Stopping tells systemd that the service is shutting down by itself or on a signal.
	Stopping = "STOPPING=1"
	// Watchdog keeps the watchdog from firing for another WatchdogSec.
	Watchdog = "WATCHDOG=1"
)

// Status is the STATUS= state: one line shown by "systemctl status". Newlines are replaced by
// spaces, since a newline would end the assignment.
func Status(text string) string {
	return "STATUS=" + strings.ReplaceAll(text, "\n", " ")
}

// Notifier sends states to the socket of $NOTIFY_SOCKET. A nil *Notifier (no socket) sends
// nothing and reports no error. It is safe for concurrent use.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns the Notifier of the environment getenv reads: nil, and no error, when
// $NOTIFY_SOCKET is unset. A socket path starting with '@' is in the abstract namespace (Go's
// net package maps the '@' to the leading NUL byte). A value that is neither a path nor an
// abstract name is an error: systemd only ever sets those.
func New(getenv func(string) string) (*Notifier, error) {
	socket := getenv("NOTIFY_SOCKET")
	switch {
	case socket == "":
		return nil, nil
	case !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@"):
		return nil, fmt.Errorf("$NOTIFY_SOCKET %q is neither an absolute path nor an abstract socket (@name)", socket)
	}
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// sendTimeout bounds a Send: a datagram socket whose reader (systemd) does not read blocks the
// sender once its queue is full.
const sendTimeout = time.Second

// Send sends the states in one datagram (e.g. Ready and Status("ingesting")). It waits at
// most a second for room in the socket's queue, so a stuck service manager cannot stall the
// caller.
func (n *Notifier) Send(states ...string) error {
	if n == nil || len(states) == 0 {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	if _, err := conn.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// ErrNoWatchdog is returned by WatchdogInterval when systemd expects no watchdog pings from
// this process.
var ErrNoWatchdog = errors.New("no watchdog for this process")

// WatchdogInterval returns how often the process with pid should send Watchdog: half of
// $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises. It returns ErrNoWatchdog when
// $WATCHDOG_USEC is unset, or when $WATCHDOG_PID is set to another process (the variables were
// inherited, and meant for the parent); an error when either is malformed.
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, ErrNoWatchdog
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("$WATCHDOG_PID %q is not a process id", p)
		}
		if n != pid {
			return 0, ErrNoWatchdog
		}
	}
	us, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || us <= 0 {
		return 0, fmt.Errorf("$WATCHDOG_USEC %q is not a positive number of microseconds", usec)
	}
	return time.Duration(us) * time.Microsecond / 2, nil
}
