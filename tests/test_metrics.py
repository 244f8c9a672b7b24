"""Node metrics render as Prometheus text, per node."""

from node.metrics import NodeMetrics


def test_metrics_render_the_values_set():
    metrics = NodeMetrics()
    metrics.height.set(7)
    metrics.messages_rejected.labels(reason="bad_signature").inc()
    text = metrics.render().decode()
    assert "pantheon_height 7.0" in text
    assert 'pantheon_messages_rejected_total{reason="bad_signature"} 1.0' in text


def test_two_nodes_in_one_process_keep_separate_numbers():
    first, second = NodeMetrics(), NodeMetrics()
    first.height.set(3)
    assert "pantheon_height 0.0" in second.render().decode()
