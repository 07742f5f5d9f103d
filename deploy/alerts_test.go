package deploy_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"fanin/deploy"
)

// TestAlertsAreValidRules: promtool accepts alerts.yml (every expression parses, every
// template renders) and finds no duplicated rule.
func TestAlertsAreValidRules(t *testing.T) {
	out := run(t, "prometheus", "check", "rules", "--lint=all", "alerts.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules:\n%s", out)
	}
}

// TestAlertsPassTheirUnitTests runs alerts_test.yml: each alert on synthetic series, firing
// where it must, with its labels and annotations, and quiet where it must not page.
func TestAlertsPassTheirUnitTests(t *testing.T) {
	out := run(t, "prometheus", "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// TestEveryAlertIsTestedFiringAndQuiet: alerts_test.yml has, for every alert of alerts.yml, a
// case where it fires and one where it must not; an alert added without tests fails here.
func TestEveryAlertIsTestedFiringAndQuiet(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range file.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	rules := alerts(t)
	for _, r := range rules {
		if !fires[r.Alert] {
			t.Errorf("alerts_test.yml never expects %s to fire", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("alerts_test.yml never expects %s to stay quiet", r.Alert)
		}
	}
	for name := range fires {
		if !slices.ContainsFunc(rules, func(r deploy.Rule) bool { return r.Alert == name }) {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not have", name)
		}
	}
}

// TestEveryAlertSaysWhatAndWhereToLook: a severity, a summary, a description, and a runbook_url
// into the README.
func TestEveryAlertSaysWhatAndWhereToLook(t *testing.T) {
	for _, r := range alerts(t) {
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s has no %s", r.Alert, a)
			}
		}
		if u := r.Annotations["runbook_url"]; !strings.HasPrefix(u, "README.md#") {
			t.Errorf("%s: runbook_url %q, want README.md#section", r.Alert, u)
		}
	}
}

func alerts(t *testing.T) []deploy.Rule {
	t.Helper()
	rules, err := deploy.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatal("alerts.yml has no alert")
	}
	return rules
}
