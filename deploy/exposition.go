package deploy

import (
	"fmt"
	"io"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Exposition is what one /metrics scrape holds: each series name as PromQL reads it (a
// histogram's name_bucket, name_sum and name_count) with the names of the labels its series
// carry.
type Exposition map[string]map[string]bool

// targetLabels are added by Prometheus to every series it scrapes.
var targetLabels = []string{"job", "instance"}

// synthetic are the series Prometheus makes for every target itself, with their labels.
var synthetic = Exposition{
	"up":                      {"job": true, "instance": true},
	"scrape_duration_seconds": {"job": true, "instance": true},
}

// ParseExposition reads a scrape in the Prometheus text format.
func ParseExposition(r io.Reader) (Exposition, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse the exposition: %w", err)
	}
	e := Exposition{}
	add := func(name string, m *dto.Metric, extra ...string) {
		labels := e[name]
		if labels == nil {
			labels = map[string]bool{}
			e[name] = labels
		}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = true
		}
		for _, l := range extra {
			labels[l] = true
		}
	}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m, "quantile")
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	return e, nil
}

// Check returns what expr names that a Prometheus scraping e would not have: a metric no
// series is named, a label a selector matches that the metric's series lack, and a label of a
// by, without, on, ignoring or group_* clause that none of the expression's metrics carry.
// job and instance, which Prometheus adds, are on every series; up and
// scrape_duration_seconds, which it makes, exist with them. Grafana variables must have been
// expanded (see Expand).
func (e Exposition) Check(expr string) []error {
	refs, err := Parse(expr)
	if err != nil {
		return []error{err}
	}
	var errs []error
	carried := map[string]bool{} // labels some metric of expr carries
	for _, l := range targetLabels {
		carried[l] = true
	}
	for _, sel := range refs.Selectors {
		labels, ok := e.labels(sel.Metric)
		if !ok {
			errs = append(errs, fmt.Errorf("metric %s is not exposed (exposed: %s)", sel.Metric, e.near(sel.Metric)))
			continue
		}
		for l := range labels {
			carried[l] = true
		}
		for _, l := range sel.Labels {
			if !labels[l] {
				errs = append(errs, fmt.Errorf("%s has no label %s (it has %s)", sel.Metric, l, names(labels)))
			}
		}
	}
	for _, l := range refs.Grouping {
		if !carried[l] {
			errs = append(errs, fmt.Errorf("no metric of the expression has the label %s it groups or matches on", l))
		}
	}
	return errs
}

// labels returns the label names of metric's series, with the target labels.
func (e Exposition) labels(metric string) (map[string]bool, bool) {
	labels, ok := e[metric]
	if !ok {
		labels, ok = synthetic[metric]
	}
	if !ok {
		return nil, false
	}
	all := map[string]bool{}
	for l := range labels {
		all[l] = true
	}
	for _, l := range targetLabels {
		all[l] = true
	}
	return all, true
}

// near lists the exposed series sharing metric's first two words (its first, when it has
// only two), for the error message.
func (e Exposition) near(metric string) string {
	words := strings.Split(metric, "_")
	prefix := words[0] + "_"
	if len(words) > 2 {
		prefix += words[1]
	}
	var out []string
	for name := range e {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return "none starting " + prefix
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func names(labels map[string]bool) string {
	var out []string
	for l := range labels {
		out = append(out, l)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
