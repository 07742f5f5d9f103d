package deploy_test

import (
	"reflect"
	"strings"
	"testing"

	"fanin/deploy"
)

func TestParseFindsSelectorsMatchersAndGrouping(t *testing.T) {
	type sel = deploy.Selector
	for _, tc := range []struct {
		expr string
		want deploy.Refs
	}{
		{`up`, deploy.Refs{Selectors: []sel{{Metric: "up"}}}},
		{`up{job="fanin"} == 0`, deploy.Refs{Selectors: []sel{{Metric: "up", Labels: []string{"job"}}}}},
		{`sum by (projection, reason) (rate(fanin_messages_naked_total{instance=~"a|b", reason!="x"}[5m])) > 0`,
			deploy.Refs{Selectors: []sel{{Metric: "fanin_messages_naked_total", Labels: []string{"instance", "reason"}}},
				Grouping: []string{"projection", "reason"}}},
		{`sum(rate(x_total[1m])) without (field)`, deploy.Refs{Selectors: []sel{{Metric: "x_total"}}, Grouping: []string{"field"}}},
		{`histogram_quantile(0.99, sum by (le) (rate(fanin_batch_size_bucket[5m:1m])))`,
			deploy.Refs{Selectors: []sel{{Metric: "fanin_batch_size_bucket"}}, Grouping: []string{"le"}}},
		{"a > 300\nand on (job, instance) # a comment naming not_a_metric\nb offset 15m > 0",
			deploy.Refs{Selectors: []sel{{Metric: "a"}, {Metric: "b"}}, Grouping: []string{"job", "instance"}}},
		{`a * on (instance) group_left (version) fanin_build_info`,
			deploy.Refs{Selectors: []sel{{Metric: "a"}, {Metric: "fanin_build_info"}}, Grouping: []string{"instance", "version"}}},
		{`a / ignoring (reason) group_left b`,
			deploy.Refs{Selectors: []sel{{Metric: "a"}, {Metric: "b"}}, Grouping: []string{"reason"}}},
		{`{__name__="fanin_ready", instance="x"}`, deploy.Refs{Selectors: []sel{{Metric: "fanin_ready", Labels: []string{"instance"}}}}},
		{`absent(up{job="fanin"} == 1) and bool 1e3 < inf`, deploy.Refs{Selectors: []sel{{Metric: "up", Labels: []string{"job"}}}}},
		{`topk(5, sum without (le) (x:rate5m{a='it\'s', b=~"\\d+"}))`,
			deploy.Refs{Selectors: []sel{{Metric: "x:rate5m", Labels: []string{"a", "b"}}}, Grouping: []string{"le"}}},
	} {
		got, err := deploy.Parse(tc.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.expr, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.expr, got, tc.want)
		}
	}
}

func TestParseRefusesWhatItCannotRead(t *testing.T) {
	for expr, want := range map[string]string{
		`rate(x[$__rate_interval])`:                 "a variable outside a string",
		`{job="fanin"}`:                             "a selector without a metric name",
		`label_replace(up, "a", "$1", "b", "(.*)")`: "label_replace names labels in strings",
		`up{job="fanin`:                             "unterminated string",
		`up{job="fanin"`:                            "unclosed selector braces",
	} {
		if _, err := deploy.Parse(expr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", expr, err, want)
		}
	}
}
