package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"fanin/deploy"
)

func dashboard(t *testing.T) (*deploy.Dashboard, []deploy.Query) {
	t.Helper()
	d, err := deploy.ReadDashboard()
	if err != nil {
		t.Fatal(err)
	}
	qs, err := d.Queries()
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) == 0 {
		t.Fatal("the dashboard has no query")
	}
	return d, qs
}

// TestDashboardQueriesParse hands every query of the dashboard to promtool, as the
// expressions of recording rules in a temporary rules file: promtool parses each as Prometheus
// would (Grafana's $__rate_interval and the like expanded to durations).
func TestDashboardQueriesParse(t *testing.T) {
	_, qs := dashboard(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, q := range qs {
		rules = append(rules, rule{Record: fmt.Sprintf("fanin_dashboard:query%02d", i), Expr: deploy.Expand(q.Expr)})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(t, dir, "check", "rules", "dashboard.yml"); !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", len(qs))) {
		t.Fatalf("promtool check rules:\n%s", out)
	}
}

// TestDashboardIsAGrafanaModel: a uid and a title, a recent schema, a Prometheus data source
// chosen by a variable (so it imports and provisions anywhere), the job, instance and
// projection variables, every panel and query on that data source, unique panel ids, panels
// inside the 24-column grid and not overlapping, and no variable used that is not defined.
func TestDashboardIsAGrafanaModel(t *testing.T) {
	d, qs := dashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later (Grafana 9+)", d.SchemaVersion)
	}
	defined := map[string]string{}
	for _, v := range d.Templating.List {
		defined[v.Name] = v.Type
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s queries %+v, want ${datasource}", v.Name, v.Datasource)
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "job": "query", "instance": "query", "projection": "query"} {
		if defined[name] != typ {
			t.Errorf("variable %s is a %q, want a %s variable", name, defined[name], typ)
		}
	}

	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d is not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps panel %q at column %d, row %d", p.Title, other, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want prometheus ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s: data source %+v, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
		}
	}
	for _, q := range qs {
		for _, v := range deploy.Variables(q.Expr) {
			if _, ok := defined[v]; !ok && deploy.Builtins[v] == "" {
				t.Errorf("%s uses $%s, which is neither a variable of the dashboard nor a Grafana builtin it knows", q.Where, v)
			}
		}
	}
}

// TestDashboardShowsWhatOperatorsAsk: throughput, backlog and lag, batch size and transaction
// time, naks and dead letters by reason, output reads, heap, readiness and the version.
func TestDashboardShowsWhatOperatorsAsk(t *testing.T) {
	_, qs := dashboard(t)
	shown := map[string]bool{}
	for _, q := range qs {
		refs, err := deploy.Parse(deploy.Expand(q.Expr))
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		for _, s := range refs.Selectors {
			shown[s.Metric] = true
		}
	}
	for _, m := range []string{
		"fanin_messages_acked_total", "messaging_client_consumed_messages_total",
		"fanin_consumer_num_pending", "fanin_lag_seconds",
		"fanin_batch_size_bucket", "fanin_transaction_duration_seconds_bucket",
		"fanin_messages_naked_total", "fanin_messages_dead_lettered_total",
		"fanin_output_objects_total", "fanin_output_bytes_total", "fanin_output_read_duration_seconds_bucket",
		"go_memstats_heap_inuse_bytes", "fanin_ready", "fanin_build_info",
	} {
		if !shown[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	var naks, deadLetters bool
	for _, q := range qs {
		naks = naks || strings.Contains(q.Expr, "fanin_messages_naked_total") && groupsBy(q, "reason")
		deadLetters = deadLetters || strings.Contains(q.Expr, "fanin_messages_dead_lettered_total") && groupsBy(q, "reason")
	}
	if !naks || !deadLetters {
		t.Errorf("naks by reason shown: %v, dead letters by reason: %v; want both", naks, deadLetters)
	}
}

func groupsBy(q deploy.Query, label string) bool {
	refs, err := deploy.Parse(deploy.Expand(q.Expr))
	return err == nil && slices.Contains(refs.Grouping, label)
}

// TestVariableQueriesInEitherForm: a query variable's label_values, written as a string (as
// this dashboard does) or as the object newer Grafanas export, is read as the PromQL that asks
// the same of the series.
func TestVariableQueriesInEitherForm(t *testing.T) {
	var d deploy.Dashboard
	err := json.Unmarshal([]byte(`{"templating": {"list": [
		{"name": "a", "type": "query", "query": "label_values(fanin_build_info, instance)"},
		{"name": "b", "type": "query", "query": {"qryType": 1, "query": "label_values(up{job=~\"$job\"}, job)", "refId": "X"}},
		{"name": "c", "type": "datasource", "query": "prometheus"}]}}`), &d)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := d.Queries()
	if err != nil {
		t.Fatal(err)
	}
	want := []deploy.Query{
		{Where: "variable a", Expr: "count by (instance) (fanin_build_info)"},
		{Where: "variable b", Expr: `count by (job) (up{job=~"$job"})`},
	}
	if !reflect.DeepEqual(qs, want) {
		t.Errorf("Queries() = %q, want %q", qs, want)
	}
}
