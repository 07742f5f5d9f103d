package faults

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/fleet"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// freePorts returns n TCP ports free at the moment (the cluster's route ports must be known
// before the servers start).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// runCluster starts a three-node JetStream cluster in-process: unique names and store dirs,
// one cluster name, routes to every node.
func runCluster(t *testing.T) []*server.Server {
	t.Helper()
	cports := freePorts(t, 3)
	var routes []string
	for _, p := range cports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var srvs []*server.Server
	for i := range 3 {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i+1)),
			NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "fanin", Host: "127.0.0.1", Port: cports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatalf("server %d: %v", i+1, err)
		}
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		srvs = append(srvs, s)
	}
	for _, s := range srvs {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("%s not ready", s.Name())
		}
	}
	return srvs
}

// TestClusterStreamLeaderLostMidIngest runs the ingester against a three-node JetStream
// cluster whose streams have three replicas, and shuts down the RESULTS stream leader
// mid-ingest: the ingester rides through the leader change and loses nothing.
func TestClusterStreamLeaderLostMidIngest(t *testing.T) {
	srvs := runCluster(t)
	var urls []string
	for _, s := range srvs {
		urls = append(urls, s.ClientURL())
	}
	url := strings.Join(urls, ",")
	_, js := natstest.Connect(t, url)
	createStreams(t, js, 3)

	b := broadcast(2000, 41)
	msgs := b.Messages()
	half := len(msgs) / 2
	db := newDB(t, b)
	var args []string
	for _, a := range ingestArgs(url, db) {
		if a != "--create-streams" {
			args = append(args, a)
		}
	}
	p := start(t, t.TempDir(), args, nil)
	p.waitLog("projecting", 2, 60*time.Second)
	publish(t, js, msgs[:half])
	natstest.Eventually(t, 30*time.Second, "ingest under way", func() bool { return countRows(t, db, "execution_results") > 0 })

	var leader *server.Server
	for _, s := range srvs {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "RESULTS") {
			leader = s
		}
	}
	if leader == nil {
		t.Fatal("no RESULTS stream leader")
	}
	t.Logf("shutting down %s, leader of RESULTS (and of EVENTS: %v) with %d rows committed",
		leader.Name(), leader.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "EVENTS"), countRows(t, db, "execution_results"))
	lost := time.Now()
	leader.Shutdown()
	leader.WaitForShutdown()
	natstest.Eventually(t, 30*time.Second, "a new RESULTS leader", func() bool {
		for _, s := range srvs {
			if s != leader && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "RESULTS") {
				return true
			}
		}
		return false
	})
	t.Logf("new leader elected after %s", time.Since(lost).Round(time.Millisecond))
	publishRetrying(t, js, msgs[half:])
	fleettest.WaitDrained(t, js, 2*time.Minute)
	t.Logf("ingester log: %d disconnects, %d failed fetches, %d failed writes",
		len(p.logLines("NATS disconnected")), len(p.logLines("fetch failed: retrying with backoff")), len(p.logLines("write failed: naking the batch")))
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	fleettest.CheckTables(t, db, b, msgs)
}

// publishRetrying publishes msgs one at a time, retrying a message whose PubAck does not come
// (a cluster settling after a leader change) with the same Msg-Id, so a retry that did land
// the first time is deduplicated by the stream and the expected tables stay exact.
func publishRetrying(t *testing.T, js jetstream.JetStream, msgs []fleet.Message) {
	t.Helper()
	for i, m := range msgs {
		id := fmt.Sprintf("faults-%s-%d", m.Subject, i)
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := js.Publish(ctx, m.Subject, m.Payload, jetstream.WithMsgID(id))
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %v", m.Subject, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
