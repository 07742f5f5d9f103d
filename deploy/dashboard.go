package deploy

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

//go:embed grafana/fanin.json
var dashboardJSON []byte

// Dashboard is the part of grafana/fanin.json's model the checks read.
type Dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []Panel `json:"panels"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is one panel of the dashboard, rows included.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *Datasource `json:"datasource"`
	} `json:"targets"`
}

// Datasource is a panel's or a query's data source reference.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is one template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or an object with a "query" string
	Datasource *Datasource     `json:"datasource"`
}

// ReadDashboard returns the dashboard of grafana/fanin.json.
func ReadDashboard() (*Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("read grafana/fanin.json: %w", err)
	}
	return &d, nil
}

// Query is one PromQL expression of the dashboard.
type Query struct {
	// Where says where it is: `panel "Lag" query A`, `variable instance`.
	Where string
	// Expr is the expression as written, with Grafana's variables. A query variable's
	// label_values(selector, label) is given as `count by (label) (selector)`, which asks the
	// same of the series.
	Expr string
}

// labelValues is a query variable's label_values(selector, label).
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// Queries returns every PromQL expression of the dashboard: each panel's targets', then each
// query variable's.
func (d *Dashboard) Queries() ([]Query, error) {
	var qs []Query
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			qs = append(qs, Query{Where: fmt.Sprintf("panel %q query %s", p.Title, t.RefID), Expr: t.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("variable %s: a query that is neither a string nor an object: %s", v.Name, v.Query)
			}
			q = obj.Query
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q)
		}
		qs = append(qs, Query{Where: "variable " + v.Name, Expr: fmt.Sprintf("count by (%s) (%s)", m[2], m[1])})
	}
	return qs, nil
}

// Builtins are the Grafana variables Expand replaces, with what it puts in their place: each
// is a range or a step, so any valid duration will do.
var Builtins = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "3h",
}

// variable matches a Grafana variable: $name, ${name} or ${name:format}.
var variable = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(?::\w+)?\}`)

// Variables returns the names of the Grafana variables expr uses.
func Variables(expr string) []string {
	var names []string
	for _, m := range variable.FindAllStringSubmatch(expr, -1) {
		names = append(names, m[1]+m[2])
	}
	return names
}

// Expand replaces the Builtins in expr by durations, so that it parses as PromQL. The
// dashboard's own variables are left: they appear only inside matchers' strings, where they
// are valid text (a $ in a regular expression).
func Expand(expr string) string {
	return variable.ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.Trim(v, "${}")
		name, _, _ = strings.Cut(name, ":")
		if d, ok := Builtins[name]; ok {
			return d
		}
		return v
	})
}
