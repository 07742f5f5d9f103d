package main

import (
	"fmt"
	"io"

	"fanin/internal/telemetry"
)

// versionLine is what `ingest version` and `ingest --version` print: the module version and
// the VCS state the binary was built from, from runtime/debug.ReadBuildInfo.
func versionLine(b telemetry.Build) string { return "ingest " + b.String() }

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		return usageError(stderr, fmt.Errorf("version takes no arguments, not %q", args[0]))
	}
	fmt.Fprintln(stdout, versionLine(telemetry.ReadBuild()))
	return 0
}

// versionFlag registers --version on the run command's flags.
func versionFlag(fs *flagSet) *bool {
	return fs.Bool("version", false, "print the version (module version, VCS revision and time, Go version) and exit")
}
