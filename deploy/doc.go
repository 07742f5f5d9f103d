// Package deploy holds what an operator loads beside fanin — Prometheus alerting rules
// (prometheus/alerts.yml, with their promtool unit tests in prometheus/alerts_test.yml) and a
// Grafana dashboard (grafana/fanin.json) — and reads them back for the tests that keep them
// true: every metric and label they name must be on a real /metrics scrape (cmd/ingest's
// TestAlertsAndDashboardNameWhatMetricsExposes), and promtool must accept and pass them
// (this package's tests). Nothing in fanin imports it but tests.
package deploy
