package telemetry

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Build says which code the running binary is: what `ingest version` prints, the
// service.version of the telemetry resource and the labels of the fanin_build_info gauge.
type Build struct {
	// Version is the main module's version: a tag (v1.2.3), a pseudo-version that Go derived
	// from the VCS, or "(devel)" when there is none (go run, go test, a build outside a
	// repository).
	Version string
	// Revision, Time and Modified describe the VCS checkout the binary was built from: the
	// commit, its time (RFC 3339) and whether the tree had uncommitted changes. Revision and
	// Time are "" when the build recorded no VCS state (go run, -buildvcs=false).
	Revision string
	Time     string
	Modified bool
	// GoVersion is the toolchain that built the binary (go1.26.0).
	GoVersion string
}

// ReadBuild returns the running binary's Build, from runtime/debug.ReadBuildInfo.
func ReadBuild() Build {
	b := Build{Version: "(devel)"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	b.GoVersion = info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the build in one line: "v1.2.3 (revision 0123abc…, 2026-05-20T12:00:00Z,
// modified) go1.26.0"; the parenthesis is left out when the build recorded no VCS state.
func (b Build) String() string {
	var vcs []string
	if b.Revision != "" {
		vcs = append(vcs, "revision "+b.Revision)
	}
	if b.Time != "" {
		vcs = append(vcs, b.Time)
	}
	if b.Modified {
		vcs = append(vcs, "modified")
	}
	s := b.Version
	if len(vcs) > 0 {
		s += " (" + strings.Join(vcs, ", ") + ")"
	}
	if b.GoVersion != "" {
		s += " " + b.GoVersion
	}
	return s
}

// ScopeName is the instrumentation scope of the fanin.build.info and fanin.ready gauges.
const ScopeName = "fanin/internal/telemetry"

// recordBuild sets the fanin.build.info gauge (fanin_build_info in Prometheus) to 1, labelled
// with the build's version, revision (suffixed "-modified" when the tree had uncommitted
// changes) and Go version: the usual way to join a version onto other series
// (`* on(instance) group_left(version) fanin_build_info`).
func recordBuild(mp metric.MeterProvider, b Build) error {
	g, err := mp.Meter(ScopeName).Int64Gauge("fanin.build.info",
		metric.WithDescription("Always 1, labelled with the version, VCS revision and Go version the binary was built from."))
	if err != nil {
		return fmt.Errorf("build info gauge: %w", err)
	}
	revision := b.Revision
	if b.Modified {
		revision += "-modified"
	}
	g.Record(context.Background(), 1, metric.WithAttributes(
		attribute.String("version", b.Version),
		attribute.String("revision", revision),
		attribute.String("goversion", b.GoVersion),
	))
	return nil
}
