"""Per-image random draws for one process's slice of the global batch.

Under data parallelism every rank holds the same random generators (seeded
alike, restored from one checkpoint) and trains on rows ``part`` of a global
batch.  A per-image draw made for the local rows only would give row i of every
rank the same value: each rank's slice would be augmented (or interpolated for
the gradient penalty) exactly like the others, and the result would depend on
the number of processes.  Drawing for the whole global batch and keeping this
rank's rows gives every image the value a single process would give it, and
advances every rank's generator alike, so they stay in step.  In one process
the slice is the whole batch and the draws are exactly the plain ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class BatchSlice:
    """Rows ``part`` of a global batch of ``size`` images (``slice(None)``: all of it)."""

    size: int
    part: slice = field(default_factory=lambda: slice(None))  # slices are unhashable

    @property
    def rows(self) -> int:
        """Images in this slice."""
        return len(range(self.size)[self.part])

    def check(self, x: torch.Tensor) -> None:
        """Refuse a batch that is not this slice: its draws would belong to other images."""
        if x.shape[0] != self.rows:
            raise ValueError(
                f"batch of {x.shape[0]} images given for rows {self.part} "
                f"({self.rows} images) of a global batch of {self.size}"
            )

    def rand(self, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """One float32 U(0, 1) per image of the slice, shape ``[rows]``."""
        draws = torch.rand(self.size, generator=generator, device=device, dtype=torch.float32)
        return draws[self.part]

    def randint(
        self, low: int, high: int, generator: torch.Generator, device: torch.device, count: int = 1
    ) -> torch.Tensor:
        """``count`` integers in ``[low, high)`` per image of the slice, shape ``[count, rows]``.

        Drawn as one ``[count, size]`` tensor: the same numbers, in the same
        order, as a plain ``randint`` of that shape in one process.
        """
        draws = torch.randint(low, high, (count, self.size), generator=generator, device=device)
        return draws[:, self.part]
