"""The PromQL selectors a query is made of: what `nbops.telemetry.prometheus` names when a query returns no series
(the real Prometheus is in tests/integration/test_prometheus.py)."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("query, found", [
    ("up", ["up"]),
    ('100 * rate(node_cpu_seconds_total{mode="idle"}[5m] offset -1h) @ 1609746000',
     ['node_cpu_seconds_total{mode="idle"}']),
    ("sum by (instance, job) (rate(a[1m])) / on (instance) group_left (job) b", ["a", "b"]),
    ("sum(rate(a[1m])) by (job) > bool 2 unless c", ["a", "c"]),
    ('histogram_quantile(0.9, sum without (pod) (rate(h_bucket{job="api"}[5m])))', ['h_bucket{job="api"}']),
    ('{__name__=~"x.*", a="}"} and on() y {b="by (z)"}', ['{__name__=~"x.*", a="}"}', 'y{b="by (z)"}']),
    ('label_replace(1e3 * m + 0x1f, "__name__", "cpu", "", "")', ["m"]),
    ("vector(1) + time()", []),
])
def test_the_selectors_of_a_promql_expression(query, found):
    from nbops.telemetry.prometheus import selectors

    assert selectors(query) == found
