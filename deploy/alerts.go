package deploy

import (
	_ "embed"
	"fmt"

	"go.yaml.in/yaml/v3"
)

//go:embed prometheus/alerts.yml
var alertsYAML []byte

// Rule is one alerting rule of alerts.yml.
type Rule struct {
	Group       string            `yaml:"-"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Alerts returns the alerting rules of alerts.yml, in order.
func Alerts() ([]Rule, error) {
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []Rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(alertsYAML, &file); err != nil {
		return nil, fmt.Errorf("read alerts.yml: %w", err)
	}
	var rules []Rule
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				return nil, fmt.Errorf("alerts.yml: group %s holds a rule that is no alert (%q)", g.Name, r.Expr)
			}
			r.Group = g.Name
			rules = append(rules, r)
		}
	}
	return rules, nil
}
