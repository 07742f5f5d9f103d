package main

import (
	"database/sql"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"fanin/internal/fleettest"
	"fanin/internal/natstest"
)

// scrape fetches url and parses it as the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return families
}

// probe returns the status code and body of GET url.
func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// series sums the samples of family name whose labels include want (counter and gauge values,
// histogram counts); found is false when there is none.
// gather reads the metrics of r as /metrics would serve them.
func gather(t *testing.T, r *running) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := r.tel.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		fams[mf.GetName()] = mf
	}
	return fams
}

func series(families map[string]*dto.MetricFamily, name string, want map[string]string) (total float64, found bool) {
	mf := families[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range want {
			ok := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			total += m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			total += m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total, found
}

func TestOperatorSeesProgressOnMetricsAndTraces(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	spans := tracetest.NewInMemoryExporter()
	cfg.Telemetry.SpanExporter = spans
	b := testBroadcast(300, 11)
	fleettest.CreateExecution(t, cfg.DB.Path, b)
	r := startApp(t, cfg)
	base := "http://" + r.server.Addr()

	natstest.Eventually(t, 20*time.Second, "/readyz 200", func() bool {
		code, _ := probe(t, base+"/readyz")
		return code == 200
	})
	if code, body := probe(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	msgs := b.Messages()
	publishAll(t, js, msgs)
	fleettest.WaitDrained(t, js, 30*time.Second)
	want := fleettest.Expect(msgs, b.PCs)

	fams := scrape(t, base+"/metrics")
	types := map[string]dto.MetricType{
		"messaging_client_consumed_messages_total":    dto.MetricType_COUNTER,
		"messaging_process_duration_seconds":          dto.MetricType_HISTOGRAM,
		"messaging_client_operation_duration_seconds": dto.MetricType_HISTOGRAM,
		"fanin_rows_written_total":                    dto.MetricType_COUNTER,
		"fanin_duplicates_ignored_total":              dto.MetricType_COUNTER,
		"fanin_messages_acked_total":                  dto.MetricType_COUNTER,
		"fanin_messages_dead_lettered_total":          dto.MetricType_COUNTER,
		"fanin_batch_size":                            dto.MetricType_HISTOGRAM,
		"fanin_transaction_duration_seconds":          dto.MetricType_HISTOGRAM,
		"fanin_lag_seconds":                           dto.MetricType_GAUGE,
		"fanin_consumer_num_pending":                  dto.MetricType_GAUGE,
		"fanin_consumer_num_ack_pending":              dto.MetricType_GAUGE,
		"fanin_consumer_num_redelivered":              dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		mf := fams[name]
		if mf == nil {
			t.Errorf("/metrics lacks %s", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("%s is a %s, want a %s", name, mf.GetType(), typ)
		}
		for _, proj := range []string{"started", "result"} {
			if _, ok := series(fams, name, map[string]string{"projection": proj}); !ok {
				t.Errorf("%s has no series for projection %s", name, proj)
			}
		}
	}
	inserted, _ := series(fams, "fanin_rows_written_total", map[string]string{"operation": "insert"})
	updated, _ := series(fams, "fanin_rows_written_total", map[string]string{"operation": "update"})
	// Each PC's row is inserted by its first message and updated by (or merged with) the other.
	if inserted != float64(b.PCs) || updated < 1 {
		t.Errorf("rows written: %v inserted, %v updated; want %d inserted and some updated", inserted, updated, b.PCs)
	}
	if dups, _ := series(fams, "fanin_duplicates_ignored_total", nil); dups < 1 {
		t.Errorf("duplicates ignored %v, want some (the broadcast repeats 10%% of its messages)", dups)
	}
	if dead, _ := series(fams, "fanin_messages_dead_lettered_total", map[string]string{"reason": "poison"}); dead != float64(want.Poison) {
		t.Errorf("poison dead letters %v, want %d", dead, want.Poison)
	}
	consumed, _ := series(fams, "messaging_client_consumed_messages_total", map[string]string{"messaging_system": "nats"})
	if consumed < float64(len(msgs)) {
		t.Errorf("consumed %v, want at least %d", consumed, len(msgs))
	}

	var tx int
	for _, s := range spans.GetSpans() {
		if s.Name != "transaction" {
			continue
		}
		tx++
		attrs := map[string]string{}
		for _, kv := range s.Attributes {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if attrs["db.system.name"] != "sqlite" || attrs["db.operation.name"] != "BEGIN IMMEDIATE" || attrs["fanin.rows.inserted"] == "" {
			t.Fatalf("transaction span attributes %v, want db.system.name sqlite, db.operation.name BEGIN IMMEDIATE and the row counts", attrs)
		}
	}
	if tx == 0 {
		t.Error("no transaction span")
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestReadyzSaysWhatIsWrong(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL())
	cfg.DB.BusyTimeout = 100 * time.Millisecond
	b := testBroadcast(100, 13)
	fleettest.CreateExecution(t, cfg.DB.Path, b)
	r := startApp(t, cfg)
	readyz := "http://" + r.server.Addr() + "/readyz"
	waitFor := func(what string, code int, substr string) {
		t.Helper()
		natstest.Eventually(t, 20*time.Second, what, func() bool {
			c, body := probe(t, readyz)
			return c == code && strings.Contains(body, substr)
		})
	}
	waitFor("ready", 200, "ready")

	// Another process holds the write lock: the writes fail, and /readyz says so.
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
	waitFor("not ready while locked", 503, "database: last write failed")
	if v, found := series(gather(t, r), "fanin_ready", nil); !found || v != 0 {
		t.Errorf("fanin_ready = %v (found %v) while /readyz answers 503, want 0", v, found)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitDrained(t, js, 30*time.Second)
	waitFor("ready again", 200, "ready")
	if v, found := series(gather(t, r), "fanin_ready", nil); !found || v != 1 {
		t.Errorf("fanin_ready = %v (found %v) while /readyz answers 200, want 1", v, found)
	}

	// NATS goes away.
	srv.Shutdown()
	waitFor("not ready without NATS", 503, "nats: not connected")
	r.stop()
}

func TestTelemetryIsOffWithoutAnAddressOrAnEndpoint(t *testing.T) {
	srv := natstest.Run(t)
	cfg := testConfig(t, srv.ClientURL())
	cfg.MetricsAddr = ""
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	r := startApp(t, cfg)
	if r.server != nil || r.tel.Tracing() || r.tel.Metrics() {
		t.Fatalf("server %v, tracing %v, metrics %v: want all off", r.server, r.tel.Tracing(), r.tel.Metrics())
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// An idle ingester, nothing published: every counter's known series is on /metrics at 0, so
// that rate() and absent() read a healthy idle instance as such; and the build is there.
func TestAnIdleIngesterExposesItsCountersAtZero(t *testing.T) {
	srv := natstest.Run(t)
	cfg := testConfig(t, srv.ClientURL())
	r := startApp(t, cfg)
	base := "http://" + r.server.Addr()

	type want struct {
		name   string
		labels map[string]string
	}
	var wants []want
	for _, proj := range []string{"started", "result"} {
		p := func(kv ...string) map[string]string {
			m := map[string]string{"projection": proj}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		}
		wants = append(wants,
			want{"messaging_client_consumed_messages_total", p("messaging_system", "nats")},
			want{"fanin_messages_acked_total", p()},
			want{"fanin_messages_redelivered_total", p()},
			want{"fanin_messages_naked_total", p("reason", "write_failed")},
			want{"fanin_messages_dead_lettered_total", p("reason", "rejected")},
			want{"fanin_messages_dead_lettered_total", p("reason", "poison", "field", "payload")},
			want{"fanin_rows_written_total", p("operation", "insert")},
			want{"fanin_rows_written_total", p("operation", "update")},
			want{"fanin_duplicates_ignored_total", p()},
		)
	}
	wants = append(wants, want{"fanin_messages_naked_total", map[string]string{"projection": "result", "reason": "resolve_failed"}})
	for _, field := range []string{"stdout", "stderr"} {
		for _, outcome := range []string{"fetched", "truncated", "missing", "unreadable", "failed"} {
			wants = append(wants, want{"fanin_output_objects_total", map[string]string{"fanin_output_outcome": outcome, "fanin_output_field": field}})
		}
		wants = append(wants, want{"fanin_output_bytes_total", map[string]string{"fanin_output_field": field}})
	}

	var fams map[string]*dto.MetricFamily
	natstest.Eventually(t, 20*time.Second, "fanin_messages_acked_total of both projections (created at 0 when they start)", func() bool {
		fams = scrape(t, base+"/metrics")
		_, started := series(fams, "fanin_messages_acked_total", map[string]string{"projection": "started"})
		_, result := series(fams, "fanin_messages_acked_total", map[string]string{"projection": "result"})
		return started && result
	})
	for _, w := range wants {
		v, found := series(fams, w.name, w.labels)
		switch {
		case !found:
			t.Errorf("/metrics has no %s%v", w.name, w.labels)
		case v != 0:
			t.Errorf("%s%v = %v on an idle ingester, want 0", w.name, w.labels, v)
		}
	}
	if v, found := series(fams, "fanin_build_info", map[string]string{"goversion": runtime.Version()}); !found || v != 1 {
		t.Errorf("fanin_build_info{goversion=%q} = %v (found %v), want 1", runtime.Version(), v, found)
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestProfilerIsOnTheMetricsListenerOnlyWhenAskedFor: /debug/pprof/ is a 404 by default, and
// served beside /metrics with --pprof.
func TestProfilerIsOnTheMetricsListenerOnlyWhenAskedFor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pprof    bool
		wantCode int
	}{
		{"off by default", false, 404},
		{"on with --pprof", true, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Run(t) // each its own: the durables would feed the first test's database
			cfg := testConfig(t, srv.ClientURL())
			cfg.Pprof = tc.pprof
			r := startApp(t, cfg)
			base := "http://" + r.server.Addr()
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
				if code, _ := probe(t, base+path); code != tc.wantCode {
					t.Errorf("GET %s: %d, want %d", path, code, tc.wantCode)
				}
			}
			if code, _ := probe(t, base+"/metrics"); code != 200 {
				t.Errorf("GET /metrics: %d, want 200", code)
			}
			if code := r.stop(); code != 0 {
				t.Fatalf("exit code %d", code)
			}
		})
	}
}
