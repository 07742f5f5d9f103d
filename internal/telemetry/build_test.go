package telemetry_test

import (
	"context"
	"runtime"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"fanin/internal/telemetry"
)

func TestBuildIsToldInOneLine(t *testing.T) {
	for _, tc := range []struct {
		b    telemetry.Build
		want string
	}{
		{telemetry.Build{Version: "(devel)", GoVersion: "go1.26.0"}, "(devel) go1.26.0"},
		{telemetry.Build{Version: "v1.2.3", Revision: "0123abc", Time: "2026-05-20T12:00:00Z", GoVersion: "go1.26.0"},
			"v1.2.3 (revision 0123abc, 2026-05-20T12:00:00Z) go1.26.0"},
		{telemetry.Build{Version: "v1.2.4-0.20260520120000-0123abc+dirty", Revision: "0123abc", Time: "2026-05-20T12:00:00Z",
			Modified: true, GoVersion: "go1.26.0"},
			"v1.2.4-0.20260520120000-0123abc+dirty (revision 0123abc, 2026-05-20T12:00:00Z, modified) go1.26.0"},
	} {
		if got := tc.b.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.b, got, tc.want)
		}
	}
}

func TestReadBuildKnowsTheToolchain(t *testing.T) {
	b := telemetry.ReadBuild()
	if b.Version == "" || b.GoVersion != runtime.Version() {
		t.Fatalf("ReadBuild() = %+v, want a version and Go %s", b, runtime.Version())
	}
}

func TestTheBuildIsOnTheResourceAndInBuildInfo(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	cfg := telemetry.DefaultConfig()
	cfg.Getenv, cfg.SpanExporter = env(nil), exp
	cfg.Build = telemetry.Build{Version: "v1.2.3", Revision: "0123abc", Modified: true, GoVersion: "go1.26.0"}
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	span.End()
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1", len(spans))
	}
	if v, _ := spans[0].Resource.Set().Value(attribute.Key("service.version")); v.Emit() != "v1.2.3" {
		t.Errorf("resource service.version = %q, want v1.2.3", v.Emit())
	}

	mfs, err := tel.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "fanin_build_info" {
			continue
		}
		found = true
		if n := len(mf.GetMetric()); n != 1 {
			t.Fatalf("fanin_build_info has %d series, want 1", n)
		}
		m := mf.GetMetric()[0]
		if m.GetGauge().GetValue() != 1 {
			t.Errorf("fanin_build_info = %v, want 1", m.GetGauge().GetValue())
		}
		for k, v := range map[string]string{"version": "v1.2.3", "revision": "0123abc-modified", "goversion": "go1.26.0"} {
			if !hasLabel(m.GetLabel(), k, v) {
				t.Errorf("fanin_build_info labels %v, want %s=%q", m.GetLabel(), k, v)
			}
		}
	}
	if !found {
		t.Fatal("no fanin_build_info")
	}
}
