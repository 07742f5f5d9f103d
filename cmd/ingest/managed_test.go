package main

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// runMain runs Main with args until it exits by itself, and returns its exit code and stderr.
func runMain(t *testing.T, args []string, environ map[string]string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	var errb syncBuffer
	done := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- Main(ctx, args, &out, &errb, env(environ)) }()
	select {
	case code := <-done:
		return code, errb.String()
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatalf("ingest still running after 30s\nstderr: %s", errb.String())
		return -1, ""
	}
}

// With --managed-durables, a durable fanin cannot use without losing messages stops ingest:
// exit 1, one "ingest stopped" line saying what is wrong and the nats commands that recreate
// it, and the durable left as it is. The same for an empty database whose durables acked
// messages before: fanin does not replay, the operator does.
func TestManagedDurablesThatWouldLoseMessagesStopIngest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, js jetstream.JetStream, db, url string) // creates the streams and durables
		want  []string
	}{
		{"results durable with ack none", func(t *testing.T, js jetstream.JetStream, _, _ string) {
			natstest.CreateStream(t, js, "EVENTS", "events.>")
			results := natstest.CreateStream(t, js, "RESULTS", "results.>")
			if _, err := results.CreateConsumer(context.Background(), jetstream.ConsumerConfig{Durable: "backend_results_projector",
				AckPolicy: jetstream.AckNonePolicy, FilterSubject: "results.>"}); err != nil {
				t.Fatal(err)
			}
		}, []string{"durable backend_results_projector on RESULTS cannot feed this database without losing messages",
			"ack_policy AckNone, want AckExplicit", "nats consumer rm -f RESULTS backend_results_projector",
			"nats consumer add RESULTS backend_results_projector --pull --deliver all --ack explicit --filter 'results.>'"}},
		{"an empty database, durables that acked before", func(t *testing.T, js jetstream.JetStream, db, url string) {
			cfg := testConfig(t, url)
			cfg.DB.Path = db
			b := testBroadcast(50, 11)
			fleettest.CreateExecution(t, db, b)
			r := startApp(t, cfg) // an unmanaged run creates the durables and projects into db
			publishAll(t, js, b.Messages())
			fleettest.WaitDrained(t, js, time.Minute)
			r.stop()
			execSQL(t, db, `DELETE FROM execution_results`, `DELETE FROM dead_letters`)
		}, []string{"but this database is empty", "nats consumer rm -f", "--deliver all"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Run(t)
			_, js := natstest.Connect(t, srv.ClientURL())
			db := filepath.Join(t.TempDir(), "fanin.db")
			tc.setup(t, js, db, srv.ClientURL())
			before := durables(t, js)

			code, stderr := runMain(t, []string{"--nats-url", srv.ClientURL(), "--db", db, "--metrics-addr=", "--managed-durables"}, nil)
			if code != 1 {
				t.Fatalf("exit code %d, want 1\nstderr: %s", code, stderr)
			}
			var stopped []string
			for _, line := range strings.Split(stderr, "\n") {
				if strings.Contains(line, `msg="ingest stopped"`) {
					stopped = append(stopped, line)
				}
			}
			if len(stopped) != 1 {
				t.Fatalf("want one \"ingest stopped\" line, got %q\nstderr: %s", stopped, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stopped[0], w) {
					t.Errorf("%q lacks %q", stopped[0], w)
				}
			}
			if after := durables(t, js); !reflect.DeepEqual(after, before) {
				t.Errorf("the managed durables were changed:\n got  %v\n want %v", after, before)
			}
		})
	}
}

// durables returns the creation time and configuration of every consumer on EVENTS and RESULTS.
func durables(t *testing.T, js jetstream.JetStream) map[string]any {
	t.Helper()
	ctx := context.Background()
	all := map[string]any{}
	for _, name := range []string{"EVENTS", "RESULTS"} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for info := range s.ListConsumers(ctx).Info() {
			all[name+"/"+info.Name] = []any{info.Created, info.Config}
		}
	}
	return all
}

// TestManagedDurablesExcludeAdopting: adopting (or rewinding) recreates the durables, which
// managed durables forbid: a usage error, exit 2, before anything is opened.
func TestManagedDurablesExcludeAdopting(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"flags", []string{"--managed-durables", "--adopt-durables"}, nil, "--adopt-durables and --managed-durables exclude each other"},
		{"environment", []string{"--adopt-durables"}, map[string]string{"FANIN_MANAGED_DURABLES": "true"},
			"recreate them yourself to deliver the whole stream ($FANIN_MANAGED_DURABLES is set)"},
		{"rewinding", []string{"--managed-durables", "--rewind-durables"}, nil, "--rewind-durables and --managed-durables exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "fanin.db")
			code, stderr := runMain(t, append(tc.args, "--db", db, "--metrics-addr="), tc.env)
			if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit code %d, stderr %q; want 2 and one line with %q", code, stderr, tc.want)
			}
		})
	}
}
