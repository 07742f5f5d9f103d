package main

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"fanin/deploy"
	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// TestAlertsAndDashboardNameWhatMetricsExposes runs a real ingest through what operators alert
// on — a dead letter, naks from a locked database, large output read and missing — scrapes
// /metrics, and looks up every metric and label that deploy/prometheus/alerts.yml and
// deploy/grafana/fanin.json name: a metric renamed, or a label dropped, fails here rather than
// silencing an alert. Every fanin_* and messaging_* metric exposed must be on the dashboard.
func TestAlertsAndDashboardNameWhatMetricsExposes(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	cfg.DB.BusyTimeout = 100 * time.Millisecond
	ctx := context.Background()
	objects := createBucket(t, js)
	if _, err := objects.PutString(ctx, "big/stdout", bigText("big", 300<<10)); err != nil {
		t.Fatal(err)
	}
	b := testBroadcast(50, 17) // with poison: dead letters
	fleettest.CreateExecution(t, cfg.DB.Path, b)
	r := startApp(t, cfg)
	base := "http://" + r.server.Addr()
	natstest.Eventually(t, 20*time.Second, "/readyz 200", func() bool {
		code, _ := probe(t, base+"/readyz")
		return code == 200
	})

	// Another process holds the write lock: transactions fail and their batches are naked.
	locker, err := sql.Open("sqlite3", "file:"+cfg.DB.Path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	tx, err := locker.Begin()
	if err != nil {
		t.Fatal(err)
	}
	publishAll(t, js, b.Messages())
	natstest.Eventually(t, 20*time.Second, "naks while the database is locked", func() bool {
		naked, _ := series(gather(t, r), "fanin_messages_naked_total", map[string]string{"reason": "write_failed"})
		return naked > 0
	})
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	publishTo(t, js, resultWithObject("big", "cut at 256 KiB"), resultWithObject("gone", "inline"))
	fleettest.WaitDrained(t, js, 30*time.Second)

	// The backlog gauges appear with the durables' first read, every 5 s.
	natstest.Eventually(t, 20*time.Second, "the lag and backlog gauges of both projections", func() bool {
		fams := gather(t, r)
		for _, name := range []string{"fanin_lag_seconds", "fanin_consumer_num_pending"} {
			for _, proj := range []string{"started", "result"} {
				if _, ok := series(fams, name, map[string]string{"projection": proj}); !ok {
					return false
				}
			}
		}
		return true
	})

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exposed, err := deploy.ParseExposition(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fanin_messages_dead_lettered_total", "fanin_transaction_duration_seconds_count", "fanin_output_read_duration_seconds_bucket"} {
		if exposed[want] == nil {
			t.Fatalf("the run did not expose %s: it does not exercise what the alerts and the dashboard read", want)
		}
	}
	if !exposed["fanin_transaction_duration_seconds_count"]["error_type"] {
		t.Fatal("no failed transaction on /metrics (error_type): the locked database did not fail a write")
	}

	rules, err := deploy.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range rules {
		if errs := exposed.Check(rule.Expr); len(errs) > 0 {
			t.Errorf("alert %s: %v", rule.Alert, errors.Join(errs...))
		}
	}
	d, err := deploy.ReadDashboard()
	if err != nil {
		t.Fatal(err)
	}
	queries, err := d.Queries()
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	for _, q := range queries {
		expr := deploy.Expand(q.Expr)
		if errs := exposed.Check(expr); len(errs) > 0 {
			t.Errorf("dashboard %s: %v", q.Where, errors.Join(errs...))
		}
		refs, _ := deploy.Parse(expr)
		for _, s := range refs.Selectors {
			shown[family(s.Metric)] = true
		}
	}
	for name := range exposed {
		if (strings.HasPrefix(name, "fanin_") || strings.HasPrefix(name, "messaging_")) && !shown[family(name)] {
			t.Errorf("/metrics exposes %s, which no panel of the dashboard shows", name)
		}
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// family is the metric a series name belongs to: a histogram's without _bucket, _sum or _count.
func family(series string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(series, suffix); ok {
			return f
		}
	}
	return series
}
