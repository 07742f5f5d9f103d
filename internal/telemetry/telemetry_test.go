package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"fanin/internal/telemetry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the OTLP/HTTP exporter's client and of the test servers.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env returns a Getenv over vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestWithoutExportersEverythingIsNoop(t *testing.T) {
	cfg := telemetry.DefaultConfig()
	cfg.Prometheus, cfg.Getenv = false, env(nil)
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if _, ok := tel.TracerProvider.(tracenoop.TracerProvider); !ok || tel.Tracing() {
		t.Errorf("tracer provider %T (tracing %v), want the no-op one", tel.TracerProvider, tel.Tracing())
	}
	if _, ok := tel.MeterProvider.(metricnoop.MeterProvider); !ok {
		t.Errorf("meter provider %T, want the no-op one", tel.MeterProvider)
	}
	if tel.Gatherer != nil {
		t.Error("a Prometheus gatherer without Prometheus")
	}
}

func TestTracesHonourTheStandardEnvironment(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "fanin-eu")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test,service.namespace=fleet")
	exp := tracetest.NewInMemoryExporter()
	cfg := telemetry.DefaultConfig()
	cfg.Prometheus, cfg.Getenv, cfg.SpanExporter = false, env(nil), exp
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	span.End()
	spans := exp.GetSpans() // exported at End (a syncer); Shutdown would clear them
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1", len(spans))
	}
	res := spans[0].Resource.Set()
	for k, want := range map[string]string{"service.name": "fanin-eu", "deployment.environment.name": "test", "service.namespace": "fleet"} {
		if v, _ := res.Value(attribute.Key(k)); v.Emit() != want {
			t.Errorf("resource %s = %q, want %q", k, v.Emit(), want)
		}
	}

	// OTEL_TRACES_SAMPLER is the SDK's own business: always_off records nothing.
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	exp.Reset()
	tel, err = telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, span = tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	if span.IsRecording() {
		t.Error("span recording with OTEL_TRACES_SAMPLER=always_off")
	}
	span.End()
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported with always_off", n)
	}
	tel.Shutdown(context.Background())
}

// collector is an OTLP/HTTP endpoint that counts the requests to each path.
type collector struct {
	mu   sync.Mutex
	hits map[string]int
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	c.mu.Lock()
	c.hits[r.URL.Path]++
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
}

func (c *collector) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits[path]
}

func TestOTLPExportIsSetByTheEndpointAndFlushedOnShutdown(t *testing.T) {
	col := &collector{hits: map[string]int{}}
	srv := httptest.NewServer(col)
	defer srv.Close()
	// The exporters read the endpoint from the process environment; Getenv decides they exist.
	vars := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
	for k, v := range vars {
		t.Setenv(k, v)
	}
	cfg := telemetry.DefaultConfig()
	cfg.Prometheus, cfg.Getenv = false, env(vars)
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !tel.Tracing() {
		t.Fatal("tracing off with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	span.End()
	c, _ := tel.MeterProvider.Meter("test").Int64Counter("work.done")
	c.Add(context.Background(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if col.count("/v1/traces") == 0 || col.count("/v1/metrics") == 0 {
		t.Fatalf("collector got %v, want the spans and the metrics flushed at shutdown", col.hits)
	}
}

func TestOTLPProtocolIsChecked(t *testing.T) {
	cfg := telemetry.DefaultConfig()
	cfg.Prometheus = false
	cfg.Getenv = env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
	if _, err := telemetry.Setup(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "$OTEL_EXPORTER_OTLP_PROTOCOL") {
		t.Fatalf("Setup with http/json: %v, want an error naming the variable", err)
	}
	// gRPC builds without dialing: nothing listens there.
	cfg.Getenv = env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	tel.Shutdown(ctx) // nothing to flush reaches a closed port: the error is expected
}

func TestServerServesMetricsHealthAndReadiness(t *testing.T) {
	cfg := telemetry.DefaultConfig()
	cfg.Getenv = env(nil)
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	counter, _ := tel.MeterProvider.Meter("test").Int64Counter("fanin.things")
	counter.Add(context.Background(), 3, metricAttr("projection", "started"))

	var connected atomic.Bool
	var checks atomic.Int32
	ready := telemetry.NewReadiness(50*time.Millisecond, telemetry.Check{Name: "nats", Func: func(context.Context) error {
		checks.Add(1)
		if !connected.Load() {
			return errNotConnected
		}
		return nil
	}})
	srv := telemetry.NewServer("127.0.0.1:0", tel.Gatherer, ready, quiet)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	base := "http://" + srv.Addr()

	code, body := get(t, base+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	code, body = get(t, base+"/readyz")
	if code != 503 || body != "not ready: nats: not connected\n" {
		t.Errorf("/readyz while disconnected: %d %q", code, body)
	}
	get(t, base+"/readyz")
	if n := checks.Load(); n != 1 {
		t.Errorf("%d checks for two probes within the cache TTL, want 1", n)
	}
	connected.Store(true)
	time.Sleep(60 * time.Millisecond)
	if code, body = get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz when connected: %d %q", code, body)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	mf := families["fanin_things_total"]
	if mf == nil {
		t.Fatalf("fanin_things_total missing; have %d families", len(families))
	}
	m := mf.GetMetric()[0]
	if m.GetCounter().GetValue() != 3 || !hasLabel(m.GetLabel(), "projection", "started") {
		t.Errorf("fanin_things_total = %v", m)
	}
	if families["go_goroutines"] == nil || families["target_info"] == nil {
		t.Error("runtime metrics or target_info missing")
	}
}

func TestLogHandlerAddsTheActiveSpan(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil))).With("projection", "started")
	exp := tracetest.NewInMemoryExporter()
	cfg := telemetry.DefaultConfig()
	cfg.Prometheus, cfg.Getenv, cfg.SpanExporter = false, env(nil), exp
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	ctx, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	log.WarnContext(ctx, "in a span")
	span.End()
	log.Warn("outside")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var in, out map[string]any
	json.Unmarshal([]byte(lines[0]), &in)
	json.Unmarshal([]byte(lines[1]), &out)
	sc := span.SpanContext()
	if in["trace_id"] != sc.TraceID().String() || in["span_id"] != sc.SpanID().String() || in["projection"] != "started" {
		t.Errorf("record in a span: %v, want trace_id %s span_id %s", in, sc.TraceID(), sc.SpanID())
	}
	if _, ok := out["trace_id"]; ok {
		t.Errorf("record outside a span has a trace_id: %v", out)
	}
}

// TestProfilingIsServedOnlyWhenAskedFor: without WithProfiling, /debug/pprof/ is a 404; with
// it, the index and the named profiles are served beside /metrics.
func TestProfilingIsServedOnlyWhenAskedFor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []telemetry.ServerOption
		wantCode int
	}{
		{"off by default", nil, 404},
		{"on when asked for", []telemetry.ServerOption{telemetry.WithProfiling()}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := telemetry.NewServer("127.0.0.1:0", nil, telemetry.NewReadiness(0), quiet, tc.opts...)
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			base := "http://" + srv.Addr()
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
				if code, _ := get(t, base+path); code != tc.wantCode {
					t.Errorf("GET %s: %d, want %d", path, code, tc.wantCode)
				}
			}
			if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
				t.Errorf("/healthz: %d %q", code, body)
			}
			if tc.wantCode == 200 {
				if _, body := get(t, base+"/debug/pprof/"); !strings.Contains(body, "goroutine") {
					t.Errorf("/debug/pprof/ does not list the goroutine profile:\n%s", body)
				}
			}
		})
	}
}
