package faults

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"fanin/internal/natstest"
)

const servingMsg = "serving /metrics, /healthz and /readyz"

// servedAddr returns the host:port p logged it serves /metrics, /healthz and /readyz on, and
// the note logged with it ("" when the address was the one asked for).
func servedAddr(t *testing.T, p *proc) (addr, note string) {
	t.Helper()
	p.waitLog(servingMsg, 1, 30*time.Second)
	var v struct{ Addr, Note string }
	if err := json.Unmarshal([]byte(p.logLines(servingMsg)[0]), &v); err != nil {
		t.Fatalf("log line %q: %v", p.logLines(servingMsg)[0], err)
	}
	return strings.TrimPrefix(v.Addr, "http://"), v.Note
}

// TestInstancesOnOneHostWithTheDefaultMetricsAddr starts three ingesters on one host, the same
// durables and the same database, all with the default --metrics-addr: each stays up and
// serves /readyz, those that found the default busy on a free port they log. An address the
// operator chose that is busy still exits 1, from the flag as from the environment.
func TestInstancesOnOneHostWithTheDefaultMetricsAddr(t *testing.T) {
	srv := natstest.Run(t)
	db := newDB(t, broadcast(10, 30))
	dir := t.TempDir()
	// ingestArgs without its "--metrics-addr=": the default, as an operator would leave it.
	args := slices.DeleteFunc(ingestArgs(srv.ClientURL(), db), func(a string) bool { return a == "--metrics-addr=" })

	var ps []*proc
	for range 3 {
		// One after the other: which one gets the default is then not a race (nor is the test
		// wrong when something else on the machine holds it: all three then log the note).
		p := start(t, dir, args, nil)
		servedAddr(t, p)
		ps = append(ps, p)
	}
	seen := map[string]bool{}
	busy := 0
	for i, p := range ps {
		addr, note := servedAddr(t, p)
		if seen[addr] {
			t.Fatalf("instance %d serves on %s, as another does", i, addr)
		}
		seen[addr] = true
		t.Logf("instance %d serves on %s (%s)", i, addr, note)
		switch {
		case addr == "127.0.0.1:9464" && note != "":
			t.Errorf("instance %d on the default address with a note: %q", i, note)
		case addr != "127.0.0.1:9464":
			if !strings.HasPrefix(addr, "127.0.0.1:") || !strings.Contains(note, "127.0.0.1:9464 is busy") {
				t.Errorf("instance %d serves on %s with note %q: want 127.0.0.1 and a note that the default is busy", i, addr, note)
			}
			busy++
		}
		natstest.Eventually(t, 30*time.Second, addr+"/readyz 200", func() bool {
			code, _ := readyz(addr)
			return code == 200
		})
	}
	if busy < 2 {
		t.Errorf("%d instances found the default busy, want at least 2 of 3", busy)
	}
	for i, p := range ps {
		select {
		case <-p.done:
			t.Fatalf("instance %d exited: %v", i, p.err)
		default:
		}
	}

	taken, _ := servedAddr(t, ps[0])
	flagged := start(t, dir, append(args, "--metrics-addr", taken), nil)
	env := exec.Command(ingestBin, args...)
	env.Env = []string{"FANIN_METRICS_ADDR=" + taken} // startCommand adds the rest of the environment
	fromEnv := startCommand(t, dir, env)
	for name, p := range map[string]*proc{"--metrics-addr": flagged, "$FANIN_METRICS_ADDR": fromEnv} {
		if code := p.wait(30 * time.Second); code != 1 {
			t.Errorf("%s %s (busy): exit code %d, want 1", name, taken, code)
		}
		if l := p.logs(); !strings.Contains(l, "ingest: --metrics-addr: ") || !strings.Contains(l, "address already in use") {
			t.Errorf("%s %s (busy): log %q, want the line naming --metrics-addr and the address in use", name, taken, l)
		}
	}

	for _, p := range ps {
		p.stop()
	}
}
