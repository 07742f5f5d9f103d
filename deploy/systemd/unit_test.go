// Package systemd holds fanin's systemd unit; its test checks the unit with systemd's own
// tools against the ingest binary built from this tree.
package systemd

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// requireTools is set by .ci/run: a tool a test needs is then a failure when missing, not a
// skip.
const requireTools = "FANIN_REQUIRE_TOOLS"

// lookTool returns the path of a command a test needs; missing, the test fails under CI and is
// skipped elsewhere.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(requireTools) == "1" {
			t.Fatalf("%s is required ($%s=1): %v", name, requireTools, err)
		}
		t.Skipf("%s not installed (apt-get install systemd); $%s=1 makes this a failure", name, requireTools)
	}
	return path
}

// ingestBin is the ingest binary, built by TestMain.
var ingestBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fanin-systemd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ingestBin = filepath.Join(dir, "ingest")
	build := exec.Command("go", "build", "-o", ingestBin, "./cmd/ingest")
	build.Dir = "../.." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ingest: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// unit is a unit file of this directory as tested: ExecStart runs bin, the ingest binary built
// from this tree.
type unit struct {
	path     string   // the copy systemd-analyze reads
	bin      string   // the binary ExecStart runs
	args     []string // ExecStart's arguments
	settings map[string][]string
}

// units are the unit files here, each checked by every test.
var units = []string{"fanin.service", "fanin-purge.service", "fanin-purge.timer"}

// loadUnits writes copies of the unit files into one temp dir (a timer finds its service
// there), each ExecStart running ingestBin: systemd-analyze verify requires the binary to
// exist.
func loadUnits(t *testing.T) map[string]unit {
	t.Helper()
	dir := t.TempDir()
	out := map[string]unit{}
	for _, name := range units {
		out[name] = loadUnit(t, name, dir)
	}
	return out
}

func loadUnit(t *testing.T, name, dir string) unit {
	t.Helper()
	u := unit{bin: ingestBin, path: filepath.Join(dir, name), settings: map[string][]string{}}
	text, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			u.settings[k] = append(u.settings[k], v)
			if k == "ExecStart" {
				fields := strings.Fields(v)
				if fields[0] != "/usr/local/bin/ingest" {
					t.Fatalf("%s: ExecStart runs %s, want /usr/local/bin/ingest", name, fields[0])
				}
				u.args = fields[1:]
				line = "ExecStart=" + strings.Join(append([]string{u.bin}, u.args...), " ")
			}
		}
		lines = append(lines, line)
	}
	if err := os.WriteFile(u.path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUnitsVerify: systemd-analyze verify finds nothing to say about the units — no unknown
// setting, no bad value, an executable ExecStart, a timer whose service exists.
func TestUnitsVerify(t *testing.T) {
	analyze := lookTool(t, "systemd-analyze")
	var paths []string
	for _, u := range loadUnits(t) {
		paths = append(paths, u.path)
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, paths...)...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	err := cmd.Run()
	if err != nil || strings.TrimSpace(stderr.String()) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
}

// exposureLimit is the most systemd-analyze security may score fanin.service, in tenths (0 is
// the best, 100 the worst; it prints 10 as 1.0); README.md gives the score.
const exposureLimit = "20"

// TestServicesExposureIsLow scores each service's hardening offline.
func TestServicesExposureIsLow(t *testing.T) {
	analyze := lookTool(t, "systemd-analyze")
	for name, u := range loadUnits(t) {
		if !strings.HasSuffix(name, ".service") {
			continue
		}
		out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold="+exposureLimit, u.path).CombinedOutput()
		score := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
		if score == nil {
			t.Fatalf("systemd-analyze security %s: %v, no overall score in:\n%s", name, err, out)
		}
		t.Logf("%s: exposure level %s", name, score[1])
		if err != nil {
			t.Errorf("%s: exposure level %s is above %s:\n%s", name, score[1], exposureLimit, out)
		}
	}
}

// TestUnitMatchesTheBinary: both ExecStarts' flags are ingest's, a usage error is not restarted,
// the stop timeout leaves room for --shutdown-timeout, and every variable fanin.env sets is
// one ingest reads.
func TestUnitMatchesTheBinary(t *testing.T) {
	all := loadUnits(t)
	for _, name := range []string{"fanin.service", "fanin-purge.service"} {
		u := all[name]
		out, err := exec.Command(u.bin, append(u.args, "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: ingest %s --help: %v (a flag ingest does not know?)\n%s", name, strings.Join(u.args, " "), err, out)
		}
	}
	u := all["fanin.service"]
	out, err := exec.Command(u.bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	help := string(out)

	want := map[string]string{"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
		"RestartPreventExitStatus": "2", "KillSignal": "SIGTERM", "Environment": "GOTRACEBACK=crash"}
	for k, v := range want {
		if got := u.settings[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%q, want %s=%s", k, got, k, v)
		}
	}

	shutdown := 30 * time.Second // ingest's default
	for i, a := range u.args {
		if a == "--shutdown-timeout" && i+1 < len(u.args) {
			if shutdown, err = time.ParseDuration(u.args[i+1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop, err := time.ParseDuration(strings.Join(u.settings["TimeoutStopSec"], ""))
	if err != nil || stop <= shutdown {
		t.Errorf("TimeoutStopSec=%v (%v) must exceed --shutdown-timeout %s: systemd would kill a graceful shutdown",
			u.settings["TimeoutStopSec"], err, shutdown)
	}

	env, err := os.ReadFile("fanin.env")
	if err != nil {
		t.Fatal(err)
	}
	assign := regexp.MustCompile(`(?m)^#?([A-Z_]+)=`)
	for _, m := range assign.FindAllStringSubmatch(string(env), -1) {
		if name := m[1]; !strings.HasPrefix(name, "OTEL_") && !strings.Contains(help, "env "+name) {
			t.Errorf("fanin.env sets %s, which ingest --help does not list", name)
		}
	}
}
