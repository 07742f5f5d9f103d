package main

import (
	"bytes"
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantOut    []string // substrings of stdout
		wantErr    string   // substring of stderr, which must be one line
		wantErrNot string
		wantOnce   string // substring of stdout that must appear exactly once
	}{
		{name: "help lists every flag with its variable", args: []string{"--help"}, wantCode: 0,
			wantOut: []string{"--nats-url", "NATS_URL", "--nats-creds", "NATS_CREDS", "--db", "FANIN_DB", "--batch", "default 1000",
				"--wait", "default 100ms", "--ack-wait", "default 30s", "--events-stream", "--results-stream",
				"--events-durable", "backend_events_projector", "--results-durable", "backend_results_projector",
				"--sync", "--log-level", "--create-streams", "--embedded-nats", "--data-dir", "default ./data",
				"--nats-tls-ca", "--nats-tls-cert", "--nats-tls-key", "ingest migrate", "ingest demo",
				"--metrics-addr", "FANIN_METRICS_ADDR", "default 127.0.0.1:9464", "OTEL_EXPORTER_OTLP_ENDPOINT",
				"--output-bucket", "default result_output", "--output-max-bytes", "default 16MiB",
				"--output-concurrency", "--output-memory", "default 128MiB", "FANIN_OUTPUT_MEMORY",
				"ingest version", "--version", "--context", "NATS_CONTEXT", "--nats-nkey", "NATS_NKEY", "--nats-user", "NATS_USER",
				"--nats-password", "NATS_PASSWORD", "--nats-token", "NATS_TOKEN", "--nats-inbox-prefix", "NATS_INBOX_PREFIX",
				"--js-domain", "NATS_JS_DOMAIN", "--js-api-prefix", "NATS_JS_API_PREFIX",
				"--pprof", "FANIN_PPROF", "/debug/pprof/"},
			wantOnce: "Usage:"},
		{name: "help command", args: []string{"help"}, wantCode: 0, wantOut: []string{"--batch", "--version"}},
		{name: "version", args: []string{"version"}, wantCode: 0, wantOut: []string{"ingest ", runtime.Version()}, wantOnce: "\n"},
		{name: "version flag", args: []string{"--db", filepath.Join(dir, "v.db"), "--version"}, wantCode: 0,
			wantOut: []string{"ingest ", runtime.Version()}, wantOnce: "\n"},
		{name: "version takes no arguments", args: []string{"version", "--json"}, wantCode: 2, wantErr: "version takes no arguments"},
		{name: "unknown flag", args: []string{"--bogus"}, wantCode: 2, wantErr: "flag provided but not defined: -bogus"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: `unknown command "frobnicate"`},
		{name: "batch out of range", args: []string{"--batch", "0"}, wantCode: 2, wantErr: "--batch: must be between 1 and 10000, not 0"},
		{name: "bad metrics address", args: []string{"--metrics-addr", "9464"}, wantCode: 2, wantErr: "--metrics-addr must be host:port"},
		{name: "bad size", args: []string{"--output-max-bytes", "lots"}, wantCode: 2, wantErr: `"lots" is not a size in bytes`},
		{name: "output budget below two objects", args: []string{"--output-memory", "8MiB"}, wantCode: 2,
			wantErr: "--output-memory (8MiB) must be at least twice --output-max-bytes (16MiB)"},
		{name: "output budget from env", env: map[string]string{"FANIN_OUTPUT_MEMORY": "1MiB", "FANIN_OUTPUT_MAX_BYTES": "256KiB"},
			args: []string{"--output-concurrency", "0"}, wantCode: 2, wantErr: "--output-concurrency: must be at least 1, not 0"},
		{name: "bad bucket name", args: []string{"--output-bucket", "result.output"}, wantCode: 2,
			wantErr: `--output-bucket: "result.output" is not a bucket name`},
		{name: "bad sync", args: []string{"--sync", "sometimes"}, wantCode: 2, wantErr: `--sync: must be "full" or "normal", not "sometimes"`},
		{name: "bad env value names the variable", env: map[string]string{"FANIN_BATCH": "many"}, wantCode: 2, wantErr: "$FANIN_BATCH"},
		{name: "env value checked like the flag", env: map[string]string{"FANIN_BATCH": "20000"}, wantCode: 2, wantErr: "--batch: must be between 1 and 10000, not 20000"},
		{name: "flag wins over env", args: []string{"--batch", "0"}, env: map[string]string{"FANIN_BATCH": "10"}, wantCode: 2, wantErr: "not 0"},
		{name: "database directory missing", args: []string{"--db", filepath.Join(dir, "no/such/dir/fanin.db"), "--nats-url", "nats://127.0.0.1:1"},
			wantCode: 1, wantErr: "no/such/dir/fanin.db"},
		{name: "migrate", args: []string{"migrate", "--db", filepath.Join(dir, "m.db")}, wantCode: 0, wantOut: []string{"applied migrations [1"}},
		{name: "migrate again is a no-op", args: []string{"migrate", "--db", filepath.Join(dir, "m.db")}, wantCode: 0, wantOut: []string{"up to date"}},
		{name: "migrate from env", args: []string{"migrate"}, env: map[string]string{"FANIN_DB": filepath.Join(dir, "e.db")}, wantCode: 0, wantOut: []string{"e.db: applied"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), tc.args, &out, &errb, env(tc.env))
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out.String(), errb.String())
			}
			for _, s := range tc.wantOut {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			if tc.wantOnce != "" && strings.Count(out.String(), tc.wantOnce) != 1 {
				t.Errorf("stdout has %q %d times, want once", tc.wantOnce, strings.Count(out.String(), tc.wantOnce))
			}
			if tc.wantErr != "" {
				e := strings.TrimRight(errb.String(), "\n")
				if !strings.Contains(e, tc.wantErr) || strings.Contains(e, "\n") {
					t.Errorf("stderr = %q, want one line containing %q", e, tc.wantErr)
				}
			}
		})
	}
}

func TestDatabaseFileIsCreatedPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private.db")
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"migrate", "--db", path}, &out, &errb, env(nil)); code != 0 {
		t.Fatalf("migrate: %d %s", code, errb.String())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("database mode %o, want 600", mode)
	}
}

// TestSingleBinaryModeIngestsAndStopsCleanly runs the real command with --embedded-nats, feeds
// it over the network like an agent would, and stops it as SIGTERM does.
func TestSingleBinaryModeIngestsAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	db := filepath.Join(dir, "fanin.db")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--embedded-nats", "127.0.0.1:" + strconv.Itoa(port), "--data-dir", filepath.Join(dir, "data"),
			"--db", db, "--wait", "20ms", "--log-level", "warn", "--metrics-addr", "127.0.0.1:0"}, &out, &errb, env(nil))
	}()

	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	natstest.Eventually(t, 20*time.Second, "embedded server up", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	_, js := natstest.Connect(t, url)
	natstest.Eventually(t, 20*time.Second, "durables created", func() bool {
		_, err1 := js.Consumer(ctx, "EVENTS", "backend_events_projector")
		_, err2 := js.Consumer(ctx, "RESULTS", "backend_results_projector")
		return err1 == nil && err2 == nil
	})
	publishAll(t, js, testBroadcast(200, 9).Messages())
	fleettest.WaitDrained(t, js, 30*time.Second)

	cancel() // what SIGINT/SIGTERM do
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop")
	}
	sdb, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var n int
	if err := sdb.QueryRow(`SELECT count(*) FROM execution_results`).Scan(&n); err != nil || n != 200 {
		t.Fatalf("rows %d (%v), want 200", n, err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestByteSizeParsesUnits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"1048576", 1 << 20, false},
		{"16MiB", 16 << 20, false},
		{"512KiB", 512 << 10, false},
		{"2GiB", 2 << 30, false},
		{"64M", 64 << 20, false},
		{"1 MB", 1 << 20, false},
		{"100B", 100, false},
		{"0", 0, false},
		{"-1", 0, true},
		{"1.5MiB", 0, true},
		{"MiB", 0, true},
		{"99999999999GiB", 0, true},
	} {
		var b byteSize
		err := b.Set(tc.in)
		if (err != nil) != tc.err || !tc.err && int64(b) != tc.want {
			t.Errorf("Set(%q) = %d, %v; want %d, error %v", tc.in, b, err, tc.want, tc.err)
		}
	}
	for in, want := range map[byteSize]string{16 << 20: "16MiB", 1 << 30: "1GiB", 1536: "1536", 3 << 10: "3KiB", 0: "0"} {
		if got := in.String(); got != want {
			t.Errorf("String(%d) = %q, want %q", int64(in), got, want)
		}
	}
}
