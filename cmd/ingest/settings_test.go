package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that Main may write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSettingsThatCanNeverWorkAreUsageErrors runs each through Main: exit code 2 and one line on
// stderr naming the flag, at once, before anything is opened (no database file appears), instead
// of a process that retries forever.
func TestSettingsThatCanNeverWorkAreUsageErrors(t *testing.T) {
	xdg := t.TempDir() // NATS contexts, as the nats CLI saves them
	saveContext(t, xdg, "nsc", `{"url":"nats://127.0.0.1:4222","nsc":"nsc://op/acc/user"}`)
	saveContext(t, xdg, "badkey", `{"url":"nats://127.0.0.1:4222","nkey":"/nonexistent/fanin.nk"}`)
	saveContext(t, xdg, "badurl", `{"url":"nats://fanin:hunter2@127.0.0.1:99999"}`)
	saveContext(t, xdg, "twoways", `{"user":"fanin","password":"hunter2","creds":"/etc/fanin.creds"}`)
	saveContext(t, xdg, "broken", `{"url":"nats://127.0.0.1:4222","password":"hunter2",`)
	inXDG := map[string]string{"XDG_CONFIG_HOME": xdg}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{name: "port out of range", args: []string{"--nats-url", "nats://127.0.0.1:99999"},
			wantErr: `--nats-url: "nats://127.0.0.1:99999": port 99999 is not between 1 and 65535`},
		{name: "http scheme", args: []string{"--nats-url", "http://127.0.0.1:4222"},
			wantErr: `--nats-url: "http://127.0.0.1:4222": scheme "http" is not nats, tls, ws or wss`},
		{name: "empty entries", args: []string{"--nats-url", ",,"}, wantErr: "--nats-url: entry 1 of 3 is empty"},
		{name: "an empty entry among good ones", args: []string{"--nats-url", "nats://a:4222, ,nats://b:4222"},
			wantErr: "--nats-url: entry 2 of 3 is empty"},
		{name: "bare word", args: []string{"--nats-url", "garbage"}, wantErr: `--nats-url: "garbage": want host:port`},
		{name: "empty URL", args: []string{"--nats-url", ""}, wantErr: "--nats-url: must not be empty"},
		{name: "bad URL from the environment", env: map[string]string{"NATS_URL": "nats://127.0.0.1:99999"},
			wantErr: `--nats-url: "nats://127.0.0.1:99999": port 99999`},
		{name: "a password is not shown", args: []string{"--nats-url", "nats://fanin:hunter2@127.0.0.1:99999"},
			wantErr: `"nats://fanin:xxxxx@127.0.0.1:99999"`},
		{name: "half a key pair", args: []string{"--nats-tls-cert", "c.pem"}, wantErr: "--nats-tls-key: must be set with --nats-tls-cert: they go together"},

		{name: "durable with a dot and a space", args: []string{"--events-durable", "a.b c"},
			wantErr: `--events-durable: "a.b c": must not contain whitespace, '.', '*', '>', '/' or '\'`},
		{name: "stream with a wildcard", args: []string{"--results-stream", "a*"}, wantErr: `--results-stream: "a*": must not contain`},
		{name: "stream with >", args: []string{"--events-stream", "a>"}, wantErr: `--events-stream: "a>": must not contain`},
		{name: "durable with a slash", args: []string{"--results-durable", "a/b"}, wantErr: `--results-durable: "a/b": must not contain`},
		{name: "durable with a backslash", args: []string{"--results-durable", `a\b`}, wantErr: `--results-durable: "a\\b": must not contain`},
		{name: "durable with a tab", env: map[string]string{"FANIN_EVENTS_DURABLE": "a\tb"}, wantErr: `--events-durable: "a\tb": must not contain`},
		{name: "stream name too long", args: []string{"--events-stream", strings.Repeat("E", 256)},
			wantErr: "--events-stream: \"EEEEEEEEEEEEEEEEEEEE\"…: 256 bytes, more than JetStream's 255"},
		{name: "empty durable", args: []string{"--results-durable", ""}, wantErr: "--results-durable: must not be empty"},

		{name: "embedded server and a URL", args: []string{"--embedded-nats", "127.0.0.1:0", "--nats-url", "nats://10.0.0.1:4222"},
			wantErr: "--embedded-nats and --nats-url exclude each other"},
		{name: "embedded server and NATS_URL", args: []string{"--embedded-nats", "127.0.0.1:0"},
			env: map[string]string{"NATS_URL": "nats://10.0.0.1:4222"}, wantErr: "--embedded-nats and --nats-url exclude each other ($NATS_URL is set)"},
		{name: "embedded server from the environment and a URL", args: []string{"--nats-url", "nats://10.0.0.1:4222"},
			env: map[string]string{"FANIN_EMBEDDED_NATS": "127.0.0.1:0"}, wantErr: "--embedded-nats and --nats-url exclude each other ($FANIN_EMBEDDED_NATS is set)"},
		{name: "both from the environment", env: map[string]string{"FANIN_EMBEDDED_NATS": "127.0.0.1:0", "NATS_URL": "nats://10.0.0.1:4222"},
			wantErr: "--embedded-nats and --nats-url exclude each other ($FANIN_EMBEDDED_NATS and $NATS_URL are set)"},
		{name: "embedded server and TLS", args: []string{"--embedded-nats", "127.0.0.1:0", "--nats-tls-ca", "ca.pem"},
			wantErr: "--embedded-nats and --nats-tls-ca exclude each other: the embedded server serves plain nats://"},
		{name: "embedded server and NATS_CERT", args: []string{"--embedded-nats", "127.0.0.1:0"},
			env: map[string]string{"NATS_CERT": "c.pem", "NATS_KEY": "k.pem"}, wantErr: "--embedded-nats and --nats-tls-cert exclude each other: the embedded server serves plain nats:// ($NATS_CERT is set)"},
		{name: "embedded server without a host", args: []string{"--embedded-nats", "4222"},
			wantErr: `--embedded-nats: "4222": want host:port`},
		{name: "embedded server port out of range", args: []string{"--embedded-nats", "127.0.0.1:70000"},
			wantErr: `--embedded-nats: "127.0.0.1:70000": port "70000" is not between 0 and 65535`},

		{name: "two ways to authenticate", args: []string{"--nats-user", "fanin", "--nats-password", "hunter2", "--nats-token", "t0ken"},
			wantErr: "--nats-token: excludes --nats-user: give one way to authenticate"},
		{name: "a user in the URL and another", args: []string{"--nats-url", "nats://fanin:hunter2@127.0.0.1:4222", "--nats-user", "fanin"},
			wantErr: "--nats-user: excludes the user or token in --nats-url"},
		{name: "a password without a user", env: map[string]string{"NATS_PASSWORD": "hunter2"}, wantErr: "--nats-password: needs --nats-user"},
		{name: "nkey file missing", args: []string{"--nats-nkey", "/nonexistent/fanin.nk"},
			wantErr: `--nats-nkey: "/nonexistent/fanin.nk": open /nonexistent/fanin.nk: no such file or directory`},
		{name: "creds file missing", env: map[string]string{"NATS_CREDS": "/nonexistent/fanin.creds"},
			wantErr: "--nats-creds: open /nonexistent/fanin.creds: no such file or directory"},
		{name: "a domain and an API prefix", args: []string{"--js-domain", "hub", "--js-api-prefix", "$JS.hub.API"},
			wantErr: "--js-api-prefix: excludes --js-domain"},
		{name: "an inbox prefix with a wildcard", args: []string{"--nats-inbox-prefix", "_INBOX.>"},
			wantErr: `--nats-inbox-prefix: "_INBOX.>": must not contain '*', '>' or whitespace`},
		{name: "embedded server and a user", args: []string{"--embedded-nats", "127.0.0.1:0"}, env: map[string]string{"NATS_USER": "fanin"},
			wantErr: "--embedded-nats and --nats-user exclude each other: the embedded server has no users and its JetStream no domain ($NATS_USER is set)"},
		{name: "embedded server and a domain", args: []string{"--embedded-nats", "127.0.0.1:0", "--js-domain", "hub"},
			wantErr: "--embedded-nats and --js-domain exclude each other"},
		{name: "embedded server and a context", args: []string{"--embedded-nats", "127.0.0.1:0", "--context", "prod"},
			wantErr: "--embedded-nats and --context exclude each other"},
		{name: "a context that does not exist", args: []string{"--context", "prod"}, env: inXDG,
			wantErr: `NATS context "prod": no such context (` + filepath.Join(xdg, "nats", "context", "prod.json") + " does not exist)"},
		{name: "a context name that is a path", args: []string{"--context", "../prod"}, env: inXDG, wantErr: `NATS context "../prod": not a context name`},
		{name: "a context using nsc", env: map[string]string{"XDG_CONFIG_HOME": xdg, "NATS_CONTEXT": "nsc"},
			wantErr: `NATS context "nsc" (` + filepath.Join(xdg, "nats", "context", "nsc.json") + "): nsc is not supported"},
		{name: "a context whose nkey is missing", args: []string{"--context", "badkey"}, env: inXDG,
			wantErr: `NATS context "badkey" (` + filepath.Join(xdg, "nats", "context", "badkey.json") + `): nkey: "/nonexistent/fanin.nk": open`},
		{name: "a context with a bad URL", args: []string{"--context", "badurl"}, env: inXDG,
			wantErr: `NATS context "badurl" (` + filepath.Join(xdg, "nats", "context", "badurl.json") + `): url: "nats://fanin:xxxxx@127.0.0.1:99999": port 99999`},
		{name: "a context with two ways to authenticate", args: []string{"--context", "twoways"}, env: inXDG,
			wantErr: `NATS context "twoways" (` + filepath.Join(xdg, "nats", "context", "twoways.json") + "): user: excludes creds"},
		{name: "a context that does not parse", args: []string{"--context", "broken"}, env: inXDG, wantErr: "not a context file"},

		{name: "replay checks the NATS settings before the database", args: []string{"dead-letters", "replay", "--context", "nsc"}, env: inXDG,
			wantErr: `NATS context "nsc" (` + filepath.Join(xdg, "nats", "context", "nsc.json") + "): nsc is not supported"},

		{name: "profiler without a listener", args: []string{"--pprof"},
			wantErr: "--pprof needs --metrics-addr: the profiler is served on its listener"},
		{name: "profiler from the environment without a listener", env: map[string]string{"FANIN_PPROF": "true"},
			wantErr: "--pprof needs --metrics-addr: the profiler is served on its listener ($FANIN_PPROF is set)"},

		{name: "db mode not octal", args: []string{"--db-mode", "rw-r-----"}, wantErr: `"rw-r-----" for flag -db-mode: "rw-r-----" is not an octal permission mode`},
		{name: "db mode the owner cannot write", args: []string{"--db-mode", "0440"}, wantErr: "--db-mode: 0440 must let the owner read and write"},
		{name: "db mode executable", env: map[string]string{"FANIN_DB_MODE": "0750"}, wantErr: "--db-mode: 0750 must not be executable"},
		{name: "db mode with setuid", args: []string{"--db-mode", "4640"}, wantErr: "--db-mode: 04640 is not a permission mode"},
		{name: "db group unknown", args: []string{"--db-group", "no-such-group-fanin"}, wantErr: `--db-group: "no-such-group-fanin": no such group`},
		{name: "two writers on SQLite", args: []string{"--db-writers", "2"},
			wantErr: "--db-writers: 2, but SQLite has one writer: 0 or 1 with a SQLite --db"},
		{name: "writers from the environment on SQLite", env: map[string]string{"FANIN_DB_WRITERS": "4"},
			wantErr: "--db-writers: 4, but SQLite has one writer: 0 or 1 with a SQLite --db ($FANIN_DB_WRITERS is set)"},
		{name: "negative writers", args: []string{"--db-writers", "-1"},
			wantErr: "--db-writers: must be between 0 (the store's choice) and 16, not -1"},
		{name: "migrate checks the settings too", args: []string{"migrate", "--nats-url", "garbage"}, wantErr: `--nats-url: "garbage": want host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "fanin.db")
			args := append(append([]string(nil), tc.args...), "--db", db, "--metrics-addr=")
			var out, errb bytes.Buffer
			// A generous bound that only a process retrying forever reaches: Main must return on
			// its own, not because it was cancelled.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			code := Main(ctx, args, &out, &errb, env(tc.env))
			if ctx.Err() != nil {
				t.Fatalf("Main returned only when cancelled (exit %d): it retried instead of reporting a usage error", code)
			}
			if code != 2 {
				t.Fatalf("exit code %d, want 2\nstderr: %s", code, errb.String())
			}
			e := strings.TrimSuffix(errb.String(), "\n")
			if !strings.HasPrefix(e, "ingest: ") || !strings.HasSuffix(e, " (see ingest --help)") ||
				strings.Contains(e, "\n") || !strings.Contains(e, tc.wantErr) {
				t.Errorf("stderr = %q, want one line \"ingest: …%s… (see ingest --help)\"", e, tc.wantErr)
			}
			if strings.Contains(e, "hunter2") {
				t.Errorf("stderr shows the password: %q", e)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("the database was opened before the usage error (stat: %v)", err)
			}
		})
	}
}

// TestSettingsThatMayWorkLaterAreNotUsageErrors: a URL whose host does not resolve yet, or a
// server that is down, is waited for; a valid list is accepted. Checked through finish, which is
// what decides exit code 2.
func TestSettingsThatMayWorkLaterAreNotUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--nats-url", "nats://nats-not-yet-in-dns:4222"},
		{"--nats-url", "nats://127.0.0.1:1"},
		{"--nats-url", "nats://a:4222, tls://b:4443"},
		{"--nats-url", "127.0.0.1:4222"},
		{"--nats-url", "wss://nats.example.com"},
		{"--embedded-nats", "127.0.0.1:0"},
		{"--embedded-nats", "127.0.0.1:0", "--nats-url", "nats://127.0.0.1:4222", "--embedded-nats", ""}, // the last one wins: off
		{"--events-durable", "fanin-2_events", "--results-stream", "RÉSULTATS"},
	} {
		fs := newFlagSet("test", "", &bytes.Buffer{})
		cfg := ingestFlags(fs)
		if err := fs.parse(args, env(nil)); err != nil {
			t.Fatalf("%q: parse: %v", args, err)
		}
		if err := cfg.finish(); err != nil {
			t.Errorf("%q: %v, want no error", args, err)
		}
	}
}

// TestDBWritersFollowTheDatabase: --db-writers is left to the store unless set (0: PostgreSQL
// takes two, SQLite one), and the PostgreSQL pool has a connection for every transaction in
// flight, both projections', plus one.
func TestDBWritersFollowTheDatabase(t *testing.T) {
	const pgDB = "host=/run/postgresql dbname=fanin"
	for _, tc := range []struct {
		name         string
		args         []string
		env          map[string]string
		wantWriters  int
		wantMaxConns int // 0: SQLite, no pool
	}{
		{name: "SQLite", wantWriters: 0},
		{name: "SQLite, one writer asked", args: []string{"--db-writers", "1"}, wantWriters: 1},
		{name: "PostgreSQL", args: []string{"--db", pgDB}, wantWriters: 0, wantMaxConns: 6},
		{name: "PostgreSQL, one writer", args: []string{"--db", pgDB, "--db-writers", "1"}, wantWriters: 1, wantMaxConns: 6},
		{name: "PostgreSQL, four writers", args: []string{"--db", pgDB}, env: map[string]string{"FANIN_DB_WRITERS": "4"},
			wantWriters: 4, wantMaxConns: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("test", "", &bytes.Buffer{})
			cfg := ingestFlags(fs)
			if err := fs.parse(tc.args, env(tc.env)); err != nil {
				t.Fatal(err)
			}
			if err := cfg.finish(); err != nil {
				t.Fatal(err)
			}
			if cfg.Events.Writers != tc.wantWriters || cfg.Results.Writers != tc.wantWriters {
				t.Errorf("writers %d (events), %d (results), want %d", cfg.Events.Writers, cfg.Results.Writers, tc.wantWriters)
			}
			if tc.wantMaxConns != 0 && cfg.PG.MaxConns != tc.wantMaxConns {
				t.Errorf("PostgreSQL pool of %d connections, want %d", cfg.PG.MaxConns, tc.wantMaxConns)
			}
		})
	}
}

// TestDemoIgnoresNATSURLInTheEnvironment: the demo always uses its embedded server, so a
// NATS_URL exported for the nats CLI does not make it a usage error.
func TestDemoIgnoresNATSURLInTheEnvironment(t *testing.T) {
	fs := newFlagSet("ingest demo", "", &bytes.Buffer{})
	cfg := ingestFlags(fs)
	if err := fs.parse(nil, env(map[string]string{"NATS_URL": "nats://10.0.0.1:4222"})); err != nil {
		t.Fatal(err)
	}
	cfg.EmbeddedNATS = "127.0.0.1:0" // what cmdDemo does
	if err := cfg.finish(); err != nil {
		t.Fatalf("finish: %v", err)
	}
}

// TestEmbeddedServerThatCannotStartSaysWhy: a data dir that is a file, or a port something else
// listens on, exits 1 (the setting may work once the file or the listener is gone) with one
// line naming the flag, without waiting for a readiness timeout.
func TestEmbeddedServerThatCannotStartSaysWhy(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "data dir is a file", args: []string{"--embedded-nats", "127.0.0.1:0", "--data-dir", file},
			wantErr: `ingest: --data-dir: "` + file + `": not a directory`},
		{name: "port taken", args: []string{"--embedded-nats", l.Addr().String(), "--data-dir", filepath.Join(dir, "js")},
			wantErr: `ingest: --embedded-nats: "` + l.Addr().String() + `": address already in use`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--db", filepath.Join(t.TempDir(), "fanin.db"), "--metrics-addr=", "--log-level", "error")
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			code := Main(ctx, args, &out, &errb, env(nil))
			if ctx.Err() != nil {
				t.Fatalf("Main returned only when cancelled (exit %d): it retried instead of failing", code)
			}
			e := strings.TrimSuffix(errb.String(), "\n")
			if code != 1 || strings.Contains(e, "\n") || !strings.HasPrefix(e, tc.wantErr) {
				t.Fatalf("exit code %d, stderr %q; want 1 and one line starting %q", code, e, tc.wantErr)
			}
		})
	}
}

// TestSignalWhileWaitingForNATSExitsZero cancels Main's context, as SIGTERM or SIGHUP does,
// while NATS is unreachable: while connecting and while waiting to create the streams. Each is
// a completed graceful shutdown: exit 0. (faults/signals_test.go sends the real signals to the
// binary, also while it binds the durables, which starts only after the output bucket probe
// has given up.)
func TestSignalWhileWaitingForNATSExitsZero(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
		after string // log line to wait for before the signal
	}{
		{name: "connecting", after: "NATS is not reachable yet"},
		{name: "creating the streams", extra: []string{"--create-streams"}, after: "cannot create the streams yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			logs := &syncBuffer{}
			args := append([]string{"--nats-url", "nats://127.0.0.1:1", "--db", filepath.Join(t.TempDir(), "fanin.db"),
				"--metrics-addr=", "--shutdown-timeout", "10s"}, tc.extra...)
			done := make(chan int, 1)
			go func() { done <- Main(ctx, args, &bytes.Buffer{}, logs, env(nil)) }()
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(logs.String(), tc.after) {
				if time.Now().After(deadline) {
					t.Fatalf("no %q in the log:\n%s", tc.after, logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("exit code %d, want 0; log:\n%s", code, logs.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatal("did not stop")
			}
		})
	}
}
