// Package telemetry sets up fanin's OpenTelemetry: the tracer and meter providers (OTLP export
// when the standard OTEL_* variables ask for it, Prometheus text on a private registry), the
// HTTP listener serving /metrics, /healthz and /readyz, and a slog handler that stamps log
// records with the active trace and span ids.
//
// With no OTLP endpoint configured and Prometheus off, every provider is the OpenTelemetry
// no-op one: nothing is recorded and the instrumented code pays nothing per message.
package telemetry

import (
	"errors"
	"os"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"fanin/internal/fault"
)

// Config says which telemetry to build. The OTLP exporters, the sampler and the resource read
// the rest of the standard OTEL_* variables (endpoint, headers, TLS, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL…)
// from the process environment themselves.
type Config struct {
	// ServiceName is service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES sets it
	// (default "fanin").
	ServiceName string
	// Build is the binary's version: service.version on the resource (unless
	// OTEL_RESOURCE_ATTRIBUTES sets it) and the labels of the fanin.build.info gauge (default
	// ReadBuild()).
	Build Build
	// Prometheus makes a Prometheus exporter on a private registry (Telemetry.Gatherer), for
	// /metrics. False: metrics go only to OTLP, if configured.
	Prometheus bool
	// Getenv reads the variables that decide which exporters exist: OTEL_SDK_DISABLED,
	// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT,
	// OTEL_EXPORTER_OTLP[_{TRACES,METRICS}]_PROTOCOL, OTEL_{TRACES,METRICS}_EXPORTER ("none"
	// turns one off) and OTEL_SPAN_LINK_COUNT_LIMIT. Nil means os.Getenv.
	Getenv func(string) string
	// SpanExporter, when not nil, receives every sampled span too (synchronously, so use a
	// fast one): tests and benchmarks use it to trace without a collector.
	SpanExporter sdktrace.SpanExporter
}

// DefaultConfig returns fanin's defaults: service "fanin", the running binary's build,
// Prometheus on, the process environment.
func DefaultConfig() Config {
	return Config{ServiceName: "fanin", Build: ReadBuild(), Prometheus: true, Getenv: os.Getenv}
}

// Validate reports a setting that cannot work: a field, as a *fault.FieldError naming it
// ("ServiceName"), or an OTEL_* variable, naming the variable.
func (c Config) Validate() error {
	if c.ServiceName == "" {
		return fault.Fieldf("ServiceName", "must not be empty")
	}
	for _, signal := range []string{"TRACES", "METRICS"} {
		if _, err := c.protocol(signal); err != nil {
			return err
		}
	}
	return nil
}

// env reads a variable through Getenv.
func (c Config) env(key string) string {
	if c.Getenv == nil {
		return os.Getenv(key)
	}
	return c.Getenv(key)
}

// disabled reports whether OTEL_SDK_DISABLED turns every OTLP exporter off.
func (c Config) disabled() bool { return c.env("OTEL_SDK_DISABLED") == "true" }

// otlp reports whether the signal ("TRACES" or "METRICS") is to be exported over OTLP: an
// endpoint is set for it and its OTEL_<signal>_EXPORTER is not "none".
func (c Config) otlp(signal string) bool {
	if c.disabled() || c.env("OTEL_"+signal+"_EXPORTER") == "none" {
		return false
	}
	return c.env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || c.env("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// Protocols of OTLP export.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// protocol returns the OTLP protocol of the signal: OTEL_EXPORTER_OTLP_<signal>_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf (the specification's default).
func (c Config) protocol(signal string) (string, error) {
	key := "OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"
	p := c.env(key)
	if p == "" {
		key = "OTEL_EXPORTER_OTLP_PROTOCOL"
		p = c.env(key)
	}
	switch p {
	case "":
		return ProtocolHTTP, nil
	case ProtocolGRPC, ProtocolHTTP:
		return p, nil
	}
	return "", errors.New("$" + key + " must be grpc or http/protobuf, not " + quote(p))
}

func quote(s string) string { return `"` + s + `"` }
