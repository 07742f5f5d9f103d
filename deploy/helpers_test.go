package deploy_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// promtool returns the path of Prometheus's promtool. Where it is missing the test is skipped
// with one line — but fails under CI ($CI or $FANIN_REQUIRE_TOOLS set, as .ci/run does, which
// installs Debian's prometheus package): there a file nothing checks must not pass silently.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" || os.Getenv("FANIN_REQUIRE_TOOLS") != "" {
		t.Fatalf("promtool is not on PATH, and CI requires it (apt-get install prometheus): %v", err)
	}
	t.Skip("promtool is not on PATH (apt-get install prometheus); skipped outside CI")
	return ""
}

// run runs promtool with args in dir and returns its output; it fails the test when promtool
// does.
func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
