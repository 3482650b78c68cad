"""Every metric of the evaluation, by name: the modules that add one to ``METRICS``.

A metric module adds its metrics when imported (``@metric``, see
``speciesgan.metrics.registry``), so a new metric is its module and its name in
the import below.  The evaluation computes each of them; the report shows the
ones it has no section of its own for.
"""

from __future__ import annotations

from speciesgan.metrics.registry import METRICS, Metric
from speciesgan.util.registry import Registry


def registered_metrics() -> Registry[Metric]:
    """``METRICS`` with every metric module imported."""
    from speciesgan.metrics import (  # noqa: F401 - each adds its metrics to METRICS
        inception_figures,
    )

    return METRICS
