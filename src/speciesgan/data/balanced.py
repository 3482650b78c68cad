"""Class-balanced draws of training rows (the ``sampling: balanced`` setting).

Camera-trap collections are long-tailed: a few species have thousands of crops,
most a handful.  Drawing rows uniformly (``natural``) then spends nearly every
step on the head species.  ``balanced`` makes every species (that has train
crops) equally likely per draw, and each of its crops equally likely within it,
so a tail species is seen as often as a head one (its few crops repeat).

Every draw is a pure function of the ``torch.Generator`` passed in, so a
training loop whose generator state is checkpointed (the GAN's ``data``
generator) or re-seeded per epoch (the classifier) resumes bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from speciesgan.util.errors import SpeciesganError

SAMPLING_MODES = ("natural", "balanced")
SAMPLING_BEFORE_THE_SETTING = "natural"
"""How every run drew its rows before ``sampling`` was a setting: the value a run's
identity leaves out.  A fact about old runs, not a default (the schema's
``gan.sampling`` and ``classifier.sampling`` are those): were the default ever to
change, runs of this value must still keep their identity, and runs of the new
default must not take it."""


def check_sampling(mode: Any, key: str) -> str:
    """``mode`` if it is a sampling mode; a user error naming the config ``key`` otherwise."""
    if mode not in SAMPLING_MODES:
        raise SpeciesganError(f"{key} must be one of {', '.join(SAMPLING_MODES)}, got {mode!r}")
    return str(mode)


def identity_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` for a run's identity hash, without ``sampling`` when it is
    ``SAMPLING_BEFORE_THE_SETTING`` (today's default).

    Runs that never set it keep the identity their resume files and checkpoints
    were written under before the setting existed, so upgrading mid-run does not
    throw a long run's progress away.
    """
    return {
        key: value
        for key, value in settings.items()
        if not (key == "sampling" and value == SAMPLING_BEFORE_THE_SETTING)
    }


@dataclass(frozen=True)
class SpeciesIndex:
    """Rows of a split grouped by species: what a class-balanced draw needs.

    ``rows`` lists row numbers sorted by species (stable, so manifest order within
    a species); species ``present[j]`` owns ``rows[starts[j] : starts[j] + sizes[j]]``.
    Species without rows are not drawn: there is nothing to show of them.
    """

    rows: torch.Tensor  # int64 [N]
    present: torch.Tensor  # int64 [K'] species ids with at least one row
    starts: torch.Tensor  # int64 [K']
    sizes: torch.Tensor  # int64 [K']

    @classmethod
    def from_labels(cls, labels: torch.Tensor) -> SpeciesIndex:
        labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
        if labels.numel() == 0:
            raise SpeciesganError("class-balanced sampling needs at least one row")
        rows = torch.sort(labels, stable=True).indices
        present, sizes = torch.unique(labels, sorted=True, return_counts=True)
        starts = torch.cumsum(sizes, 0) - sizes
        return cls(rows=rows, present=present, starts=starts, sizes=sizes)

    def _draw_groups(self, count: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(len(self.present), (count,), generator=generator)

    def draw_species(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` species ids, each present species equally likely (CPU int64)."""
        return self.present[self._draw_groups(count, generator)]

    def draw_rows(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` row numbers: a species uniformly, then one of its rows uniformly.

        The row within the species comes from a float64 uniform scaled by the
        species' size: one draw per row whatever the sizes, and exact for any
        size below 2**52.
        """
        group = self._draw_groups(count, generator)
        uniform = torch.rand(count, generator=generator, dtype=torch.float64)
        sizes = self.sizes[group]
        within = torch.minimum((uniform * sizes).long(), sizes - 1)
        return self.rows[self.starts[group] + within]
