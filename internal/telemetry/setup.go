package telemetry

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Telemetry is fanin's set of providers. Hand TracerProvider and MeterProvider to the code that
// records (batch.WithTracerProvider, batch.WithMeterProvider); nothing is installed globally.
type Telemetry struct {
	// TracerProvider is the SDK provider when spans are exported, else the no-op provider.
	TracerProvider trace.TracerProvider
	// MeterProvider is the SDK provider when metrics are read (Prometheus or OTLP), else the
	// no-op provider.
	MeterProvider metric.MeterProvider
	// Gatherer serves the Prometheus text format (nil unless Config.Prometheus).
	Gatherer prometheus.Gatherer

	tracing, metrics bool
	shutdown         []func(context.Context) error // in order: spans first, then metrics
}

// Tracing reports whether spans are recorded and exported.
func (t *Telemetry) Tracing() bool { return t.tracing }

// Metrics reports whether metrics are read (Prometheus or OTLP): without, MeterProvider is
// the no-op one and polling for gauges is wasted.
func (t *Telemetry) Metrics() bool { return t.metrics }

// Setup builds the providers cfg asks for. It connects to nothing yet: the OTLP exporters dial
// on their first export. Call Shutdown to flush.
func Setup(ctx context.Context, cfg Config) (_ *Telemetry, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Telemetry{TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: metricnoop.NewMeterProvider()}
	defer func() {
		if err != nil {
			t.Shutdown(context.Background())
		}
	}()
	traces := cfg.otlp("TRACES") || cfg.SpanExporter != nil
	metrics := cfg.otlp("METRICS") || cfg.Prometheus
	if !traces && !metrics {
		return t, nil
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if traces {
		if err := t.setupTraces(ctx, cfg, res); err != nil {
			return nil, err
		}
	}
	if metrics {
		if err := t.setupMetrics(ctx, cfg, res); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// newResource describes the process: service.name and service.version (cfg's, unless the
// environment names them), OTEL_RESOURCE_ATTRIBUTES, the SDK, the host and the process.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := resource.WithAttributes(semconv.ServiceName(cfg.ServiceName))
	if cfg.Build.Version != "" {
		attrs = resource.WithAttributes(semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(cfg.Build.Version))
	}
	// Later options win: the environment overrides fanin's defaults.
	res, err := resource.New(ctx, attrs, resource.WithTelemetrySDK(), resource.WithHost(),
		resource.WithProcessPID(), resource.WithProcessRuntimeName(), resource.WithProcessRuntimeVersion(),
		resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	return res, nil
}

// setupTraces makes the tracer provider: a batching OTLP exporter when configured, plus
// cfg.SpanExporter. The sampler is the SDK's default, which honours OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (parentbased_always_on when unset).
func (t *Telemetry) setupTraces(ctx context.Context, cfg Config, res *resource.Resource) error {
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithRawSpanLimits(spanLimits(cfg))}
	if cfg.otlp("TRACES") {
		exp, err := newSpanExporter(ctx, cfg)
		if err != nil {
			return err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	if cfg.SpanExporter != nil {
		opts = append(opts, sdktrace.WithSyncer(cfg.SpanExporter))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	t.TracerProvider, t.tracing = tp, true
	t.shutdown = append(t.shutdown, tp.Shutdown)
	return nil
}

// spanLimits are the SDK's (OTEL_SPAN_*_LIMIT), except that the number of links is unlimited
// unless OTEL_SPAN_LINK_COUNT_LIMIT says otherwise: a batch's process span links every message
// of it, up to BatchSize × the group size, and the SDK would keep only the last 128.
func spanLimits(cfg Config) sdktrace.SpanLimits {
	l := sdktrace.NewSpanLimits()
	if cfg.env("OTEL_SPAN_LINK_COUNT_LIMIT") == "" {
		l.LinkCountLimit = -1
	}
	return l
}

func newSpanExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	proto, _ := cfg.protocol("TRACES") // validated
	var (
		exp sdktrace.SpanExporter
		err error
	)
	if proto == ProtocolGRPC {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (%s): %w", proto, err)
	}
	return exp, nil
}

// setupMetrics makes the meter provider with its readers: Prometheus on a private registry
// (with the Go runtime and process collectors beside it), and a periodic OTLP exporter
// (OTEL_METRIC_EXPORT_INTERVAL, default 60 s) when configured; and sets the build info gauge.
func (t *Telemetry) setupMetrics(ctx context.Context, cfg Config, res *resource.Resource) error {
	opts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	if cfg.Prometheus {
		reg := prometheus.NewRegistry()
		if err := reg.Register(collectors.NewGoCollector()); err != nil {
			return fmt.Errorf("register Go collector: %w", err)
		}
		if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return fmt.Errorf("register process collector: %w", err)
		}
		exp, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return fmt.Errorf("prometheus exporter: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(exp))
		t.Gatherer = reg
	}
	if cfg.otlp("METRICS") {
		proto, _ := cfg.protocol("METRICS") // validated
		var (
			exp sdkmetric.Exporter
			err error
		)
		if proto == ProtocolGRPC {
			exp, err = otlpmetricgrpc.New(ctx)
		} else {
			exp, err = otlpmetrichttp.New(ctx)
		}
		if err != nil {
			return fmt.Errorf("OTLP metric exporter (%s): %w", proto, err)
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	t.MeterProvider, t.metrics = mp, true
	t.shutdown = append(t.shutdown, mp.Shutdown)
	return recordBuild(mp, cfg.Build)
}

// Shutdown flushes and stops the providers: the spans still queued are exported, then the
// last metrics, all within ctx. It is idempotent.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		if err := f(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	t.shutdown = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("flush telemetry: %w", err)
	}
	return nil
}
