"""What a metric of the evaluation is: a named figure computed from one ``Evaluation``.

``speciesgan evaluate`` streams the generated images once through every network
(``speciesgan.metrics.generated``) and reads the real side once; a metric gets
both, with the settings, and returns a JSON-ready figure, which goes into
``eval/metrics.json`` under the metric's name and into the report.  Metric
modules add theirs to ``METRICS`` with ``@metric``; ``speciesgan.metrics.registered``
imports them (docs/extending.md shows how to add one).  Apart from the evaluation
so that metric modules import these types without importing what imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from speciesgan.metrics.generated import GeneratedOutputs
from speciesgan.metrics.real_side import RealSide
from speciesgan.util.registry import Registry


@dataclass(frozen=True)
class Evaluation:
    """What every metric sees of one evaluated generator."""

    species: list[str]
    labels: np.ndarray
    """Species id of each image of the balanced generated set (``images_per_species`` each)."""
    generated: GeneratedOutputs
    """The balanced set's Inception features and logits, other spaces' features, and
    whether the eval classifier (and the judge) recognised each image's species."""
    real: RealSide
    """The real crops' features in every space (``speciesgan.metrics.real_side``)."""
    options: Mapping[str, Any]
    """The ``metrics`` settings, defaults filled in."""
    seed: int
    extra: GeneratedOutputs | None = None
    """More generated images, so that ``matched`` follows the real split's species mix."""
    kept: np.ndarray | None = None
    """Rows of ``generated`` that ``matched`` keeps (None: all)."""

    def matched(self, space: str) -> np.ndarray:
        """Generated features in ``space`` ("inception" or an extra space), species mixed
        like the real split: what overall figures (FID, KID) compare with the real set."""

        def rows(outputs: GeneratedOutputs) -> np.ndarray:
            return outputs.inception if space == "inception" else outputs.spaces[space]

        kept = rows(self.generated) if self.kept is None else rows(self.generated)[self.kept]
        return kept if self.extra is None else np.concatenate([kept, rows(self.extra)])


Compute = TypeVar("Compute", bound=Callable[[Evaluation], Any])


@dataclass(frozen=True)
class Metric:
    """A figure of the evaluation, and one line on what it says (for the report)."""

    compute: Callable[[Evaluation], Any]
    about: str


METRICS: Registry[Metric] = Registry("metric")
"""Every metric by name, the key of its figure in ``eval/metrics.json``."""


def metric(name: str, about: str) -> Callable[[Compute], Compute]:
    """``@metric("name", about="...")`` above ``def f(evaluation) -> figure`` adds it to
    ``METRICS``; the function itself is left as it is."""

    def add(compute: Compute) -> Compute:
        METRICS.add(name, Metric(compute, about))
        return compute

    return add
