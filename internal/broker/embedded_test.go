package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fanin/internal/fault"
)

func TestStartEmbeddedRefusesAFileAsDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := StartEmbedded(context.Background(), "127.0.0.1:0", file, quiet)
	if f, _ := fault.Field(err); f != "DataDir" || err.Error() != fmt.Sprintf("DataDir: %q: not a directory", file) {
		t.Fatalf("got %v, want a data dir error saying it is not a directory", err)
	}
}

func TestStartEmbeddedCreatesAMissingDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	e, err := StartEmbedded(context.Background(), "127.0.0.1:0", dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	e.Shutdown()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("data dir not created: %v", err)
	}
}

func TestStartEmbeddedSaysThePortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = StartEmbedded(context.Background(), l.Addr().String(), t.TempDir(), quiet)
	var fe *fault.FieldError
	if !errors.As(err, &fe) || fe.Field != "ListenAddr" || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("got %v, want a listen address error saying it is in use", err)
	}
}

func TestStartEmbeddedReportsTheServersFailureAtOnce(t *testing.T) {
	// The data dir is fine, but JetStream cannot create its own directory in it.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jetstream"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The readiness wait is as long as the context allows: the server's own error must end it,
	// not the wait (which would say "not ready after") nor the context.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := StartEmbedded(ctx, "127.0.0.1:0", dir, quiet)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "JetStream") || ctx.Err() != nil {
		t.Fatalf("got %v, want the server's JetStream error at once", err)
	}
}

func TestStartEmbeddedStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := StartEmbedded(ctx, "127.0.0.1:0", t.TempDir(), quiet)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestValidateListenAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:4222": "", ":0": "", "localhost:0": "",
		"4222":            `ListenAddr: "4222": want host:port`,
		"127.0.0.1:99999": `ListenAddr: "127.0.0.1:99999": port "99999" is not between 0 and 65535`,
		"127.0.0.1:x":     `ListenAddr: "127.0.0.1:x": port "x" is not between 0 and 65535`,
	} {
		err := ValidateListenAddr(addr)
		if want == "" {
			if err != nil {
				t.Errorf("ValidateListenAddr(%q) = %v, want nil", addr, err)
			}
			continue
		}
		if f, _ := fault.Field(err); f != "ListenAddr" || err.Error() != want {
			t.Errorf("ValidateListenAddr(%q) = %v, want a *fault.FieldError %q", addr, err, want)
		}
	}
}
