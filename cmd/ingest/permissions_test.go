package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/broker"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// runAuthServer starts a JetStream server with o's users (and domain), plus an admin user with
// every permission for the test's own setup, and returns its URL and the admin's JetStream.
func runAuthServer(t *testing.T, o *server.Options) (string, jetstream.JetStream) {
	t.Helper()
	o.Host, o.Port, o.NoLog, o.NoSigs = "127.0.0.1", -1, true, true
	o.JetStream, o.StoreDir = true, t.TempDir()
	o.Users = append(o.Users, &server.User{Username: "admin", Password: "admin"})
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("admin", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	admin, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return s.ClientURL(), admin
}

// ingestEverything sets up what fanin reads with the admin's JetStream (the streams, a
// broadcast with poison, the output bucket and a result whose stdout is in it), then runs
// ingest with args and environ as the user under test: it must project the broadcast exactly,
// read the object, and `ingest dead-letters replay` its dead letters; with managed, the durables
// exist before. It returns what ingest logged, which names no denied permission.
func ingestEverything(t *testing.T, admin jetstream.JetStream, args []string, environ map[string]string, managed bool) string {
	t.Helper()
	ctx := context.Background()
	if err := broker.CreateStreams(ctx, admin, quiet, broker.EventsStream("EVENTS"), broker.ResultsStream("RESULTS")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ stream, durable, filter string }{
		{"EVENTS", "backend_events_projector", "events.started.>"}, {"RESULTS", "backend_results_projector", "results.>"},
	} {
		if !managed {
			// A filter edited outside fanin: it deletes the durable and creates it again.
			d.filter = strings.Replace(d.filter, ">", "nothing.>", 1)
		}
		if _, err := admin.CreateConsumer(ctx, d.stream, jetstream.ConsumerConfig{Durable: d.durable, FilterSubject: d.filter,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 10000}); err != nil {
			t.Fatal(err)
		}
	}
	store := createBucket(t, admin)
	text := bigText("big", 8<<20) // read in many chunks, with flow control
	if _, err := store.PutString(ctx, "big/stdout", text); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "fanin.db")
	b := testBroadcast(50, 7)
	fleettest.CreateExecution(t, db, b)
	msgs := b.Messages()
	publishAll(t, admin, msgs)

	common := []string{"--db", db, "--sync", "normal", "--metrics-addr=", "--wait", "50ms", "--stats-interval", "0"}
	var logs syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ingest logged:\n%s", logs.String())
		}
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- Main(runCtx, append(append([]string(nil), args...), common...), &logs, &logs, env(environ))
	}()
	natstest.Eventually(t, time.Minute, "both durables recreated with fanin's filter", func() bool {
		for stream, filter := range map[string]string{"EVENTS": "events.started.>", "RESULTS": "results.>"} {
			info, err := admin.Consumer(ctx, stream, map[string]string{"EVENTS": "backend_events_projector", "RESULTS": "backend_results_projector"}[stream])
			if err != nil || info.CachedInfo().Config.FilterSubject != filter {
				return false
			}
		}
		return true
	})
	fleettest.WaitDrained(t, admin, time.Minute)
	fleettest.CheckTables(t, db, b, msgs)
	older := filepath.Join(t.TempDir(), "older.db") // a backup, restored below
	vacuumInto(t, db, older)
	// A missing object is confirmed with the bucket stream's leader before the note is stored.
	publishTo(t, admin, resultWithObject("big", "cut at 256 KiB"), resultWithObject("gone", "inline"))
	fleettest.WaitDrained(t, admin, time.Minute)
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("ingest exited %d:\n%s", code, logs.String())
	}
	checkOutputs := func() {
		t.Helper()
		if got := column(t, db, "stdout", "big"); got != text {
			t.Errorf("stdout from the object store: %d bytes, want %d", len(got), len(text))
		}
		if got := column(t, db, "stderr", "gone"); !strings.Contains(got, `"gone/stdout" not found`) {
			t.Errorf("stderr of a result whose object is missing: %q, want the note", got)
		}
	}
	checkOutputs()

	// The backup restored: it lacks the two results the durable acked since, which fanin
	// finds by reading the stream past the database's last message. It rewinds its own durable;
	// a managed one it refuses, saying how to recreate it.
	restore(t, older, db)
	runCtx, stop = context.WithCancel(ctx)
	go func() {
		done <- Main(runCtx, append(append([]string(nil), args...), common...), &logs, &logs, env(environ))
	}()
	if managed {
		if code := <-done; code != 1 || !strings.Contains(logs.String(), "it is an older copy") {
			t.Fatalf("managed durables, a restored backup: exit %d, want 1 saying the database is an older copy", code)
		}
		stop()
		restore(t, older, db) // the rest of the test replays its dead letters
	} else {
		natstest.Eventually(t, time.Minute, "the restored database rewound and complete", func() bool {
			return strings.Contains(logs.String(), "recreated durable (database behind)") && hasRow(t, db, "big") && hasRow(t, db, "gone")
		})
		fleettest.WaitDrained(t, admin, time.Minute)
		stop()
		if code := <-done; code != 0 {
			t.Fatalf("ingest exited %d:\n%s", code, logs.String())
		}
		checkOutputs()
	}

	// Every dead letter, of both streams.
	poison := fleettest.Expect(msgs, b.PCs).Poison
	code, out, errs := runMainOut(t, append(append([]string{"dead-letters", "replay"}, args...), "--db", db), environ)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("replayed %d of %d", poison, poison)) {
		t.Fatalf("dead-letters replay: exit %d\n%s%s", code, out, errs)
	}
	all := logs.String() + errs
	if strings.Contains(strings.ToLower(all), "permissions violation") {
		t.Errorf("a permission was denied:\n%s", all)
	}
	return all
}

// runMainOut runs Main to its end and returns its exit code, stdout and stderr.
func runMainOut(t *testing.T, args []string, environ map[string]string) (int, string, string) {
	t.Helper()
	var out, errb syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := Main(ctx, args, &out, &errb, env(environ))
	return code, out.String(), errb.String()
}

// TestTheLeastPermissionsAreEnough runs fanin as a user with exactly the permissions of
// deploy/nats/fanin.conf (and, with --managed-durables, fanin-managed.conf), read with the
// server's own parser, and checks that they are no wider than needed where that is cheap.
func TestTheLeastPermissionsAreEnough(t *testing.T) {
	const password = "l3ast-privilege"
	t.Setenv("FANIN_NATS_PASSWORD", password) // the files take the password from the environment
	for _, tc := range []struct {
		file    string
		managed bool
	}{{"fanin.conf", false}, {"fanin-managed.conf", true}} {
		t.Run(tc.file, func(t *testing.T) {
			o, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			url, admin := runAuthServer(t, o)
			args := []string{"--nats-url", url, "--nats-user", "fanin"}
			if tc.managed {
				args = append(args, "--managed-durables")
			}
			logs := ingestEverything(t, admin, args, map[string]string{"NATS_PASSWORD": password}, tc.managed)
			if strings.Contains(logs, password) {
				t.Errorf("the password is in the log:\n%s", logs)
			}

			// Not wider than needed: no other subject, no stream management, no other reads.
			denied := make(chan string, 16)
			next := func() string {
				t.Helper()
				select {
				case e := <-denied:
					return e
				case <-time.After(10 * time.Second):
					t.Fatal("no permissions violation reported within 10s")
					return ""
				}
			}
			nc, err := nats.Connect(url, nats.UserInfo("fanin", password),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err.Error() }))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			for _, subj := range []string{"fleet.commands.all", "events.other.x", "$JS.API.STREAM.DELETE.EVENTS",
				"$JS.API.STREAM.PURGE.RESULTS", "$JS.API.CONSUMER.CREATE.EVENTS.other", "$JS.API.CONSUMER.DELETE.RESULTS.other"} {
				if err := nc.Publish(subj, nil); err != nil {
					t.Fatal(err)
				}
				if got := next(); !strings.Contains(got, "Permissions Violation for Publish to \""+subj+"\"") {
					t.Errorf("publish to %s: %s, want it denied", subj, got)
				}
			}
			if _, err := nc.SubscribeSync("results.>"); err != nil {
				t.Fatal(err)
			}
			if got := next(); !strings.Contains(got, "Permissions Violation for Subscription to \"results.>\"") {
				t.Errorf("subscribe to results.>: %s, want it denied", got)
			}
			if tc.managed {
				for _, subj := range []string{"$JS.API.CONSUMER.DELETE.EVENTS.backend_events_projector",
					"$JS.API.CONSUMER.CREATE.RESULTS.backend_results_projector.results.>"} {
					if err := nc.Publish(subj, nil); err != nil {
						t.Fatal(err)
					}
					if got := next(); !strings.Contains(got, fmt.Sprintf("Permissions Violation for Publish to %q", subj)) {
						t.Errorf("publish to %s: %s, want it denied", subj, got)
					}
				}
			}
			if _, err := admin.Stream(context.Background(), "EVENTS"); err != nil {
				t.Errorf("EVENTS after the denied delete: %v", err)
			}
		})
	}
}

// TestRunsWithANATSContext: everything NATS comes from a context file, as `nats context save`
// writes it: the URL, a user and password, a JetStream domain (which the projections, the
// output reader and dead-letter replay all address) and an inbox prefix (the only inbox the
// user may subscribe to).
func TestRunsWithANATSContext(t *testing.T) {
	url, admin := runAuthServer(t, &server.Options{JetStreamDomain: "hub", Users: []*server.User{{Username: "fanin", Password: "ctx-s3cret",
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{">"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX_fanin.>"}},
		}}}})
	xdg := t.TempDir()
	saveContext(t, xdg, "prod", fmt.Sprintf(`{"description":"fanin","url":%q,"user":"fanin","password":"ctx-s3cret",
		"jetstream_domain":"hub","inbox_prefix":"_INBOX_fanin"}`, url))
	logs := ingestEverything(t, admin, []string{"--context", "prod"}, map[string]string{"XDG_CONFIG_HOME": xdg}, false)
	if strings.Contains(logs, "ctx-s3cret") {
		t.Errorf("the password is in the log:\n%s", logs)
	}
	if !strings.Contains(logs, `msg="NATS settings from a nats CLI context" context=prod`) {
		t.Errorf("the log does not say which context gave the settings:\n%s", logs)
	}

	// The same server answers for its domain and for $JS.API, so a domain that is not its
	// own shows that the projections and the output reader all address the configured one.
	saveContext(t, xdg, "elsewhere", fmt.Sprintf(`{"url":%q,"user":"fanin","password":"ctx-s3cret",
		"jetstream_domain":"elsewhere","inbox_prefix":"_INBOX_fanin"}`, url))
	var out syncBuffer
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--context", "elsewhere", "--db", filepath.Join(t.TempDir(), "fanin.db"), "--metrics-addr="},
			&out, &out, env(map[string]string{"XDG_CONFIG_HOME": xdg}))
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !(strings.Contains(out.String(), "cannot look up the output bucket") &&
		strings.Contains(out.String(), "cannot bind the durable: retrying\" projection=started") &&
		strings.Contains(out.String(), "cannot bind the durable: retrying\" projection=result")) {
		if time.Now().After(deadline) {
			stop()
			<-done
			t.Fatalf("the projections and the output reader did not all find domain elsewhere missing:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}

// vacuumInto writes a copy of the database at path to out, as a backup would.
func vacuumInto(t *testing.T, path, out string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`VACUUM INTO ?`, out); err != nil {
		t.Fatal(err)
	}
}

// restore replaces the database at path (stopped) with a copy of backup.
func restore(t *testing.T, backup, path string) {
	t.Helper()
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// hasRow reports whether execution_results holds resultID.
func hasRow(t *testing.T, path, resultID string) bool {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM execution_results WHERE result_id = ?`, resultID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}
