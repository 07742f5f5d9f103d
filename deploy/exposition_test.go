package deploy_test

import (
	"errors"
	"strings"
	"testing"

	"fanin/deploy"
)

const scrape = `# TYPE fanin_messages_naked_total counter
fanin_messages_naked_total{projection="started",reason="write_failed"} 0
# TYPE fanin_batch_size histogram
fanin_batch_size_bucket{projection="result",le="1"} 0
fanin_batch_size_bucket{projection="result",le="+Inf"} 2
fanin_batch_size_sum{projection="result"} 10
fanin_batch_size_count{projection="result"} 2
# TYPE fanin_ready gauge
fanin_ready 1
`

func TestCheckNamesWhatTheScrapeLacks(t *testing.T) {
	e, err := deploy.ParseExposition(strings.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		expr string
		want []string // substrings of the errors, in order; none: the expression is fine
	}{
		{`sum by (projection, reason) (rate(fanin_messages_naked_total{reason="write_failed", instance=~"a"}[5m]))`, nil},
		{`histogram_quantile(0.99, sum by (le, projection) (rate(fanin_batch_size_bucket[5m])))`, nil},
		{`rate(fanin_batch_size_sum[5m]) / rate(fanin_batch_size_count[5m])`, nil},
		{`fanin_ready == 0 or up{job="fanin"} == 0`, nil},
		{`fanin_messages_nacked_total`, []string{"metric fanin_messages_nacked_total is not exposed (exposed: fanin_messages_naked_total)"}},
		{`fanin_batch_size`, []string{"metric fanin_batch_size is not exposed (exposed: fanin_batch_size_bucket, fanin_batch_size_count, fanin_batch_size_sum)"}},
		{`fanin_ready{projection="started"}`, []string{"fanin_ready has no label projection (it has instance, job)"}},
		{`sum by (field) (fanin_messages_naked_total)`, []string{"no metric of the expression has the label field"}},
		{`fanin_ready * on (instance) group_left (version) fanin_build_info`,
			[]string{"metric fanin_build_info is not exposed", "no metric of the expression has the label version"}},
		{`rate(x[$__rate_interval])`, []string{"a variable outside a string"}},
	} {
		errs := e.Check(tc.expr)
		if len(errs) != len(tc.want) {
			t.Errorf("Check(%q) = %v, want %d errors", tc.expr, errors.Join(errs...), len(tc.want))
			continue
		}
		for i, err := range errs {
			if !strings.Contains(err.Error(), tc.want[i]) {
				t.Errorf("Check(%q) error %d = %q, want it to say %q", tc.expr, i, err, tc.want[i])
			}
		}
	}
}
