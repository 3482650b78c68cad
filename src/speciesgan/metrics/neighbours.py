"""Chunked euclidean nearest-neighbour queries in feature space.

Precision/recall, density/coverage and the memorisation check each reduce an
N x M distance matrix row by row: a minimum, the k smallest entries, or a count
of entries under a per-column radius.  With N and M up to ~50k the whole float64
matrix would take ~20 GB, so it is computed in ``CHUNK_ROWS`` x ``CHUNK_ROWS``
blocks and every reduction is carried from block to block; no larger matrix ever
exists.

Blocks come from ``torch.cdist`` in its matrix-product form (|a|^2 + |b|^2 - 2 a.b),
8-10x faster on CPU than summing differences but inexact near zero: cancellation
leaves ~1e-6 where two 2048-d features are identical.  So both sets are first shifted
by one common vector (distances do not change, the norms shrink), and entries whose
squared distance is below ``REFINE`` times the squared norms are recomputed from the
differences.  Duplicates and copies then come out at exactly 0 and small distances
to the last bits, which the memorisation check reports and the closed-ball test of
precision/recall relies on for duplicated rows.
"""

from __future__ import annotations

import numpy as np
import torch

from speciesgan.util.errors import SpeciesganError

CHUNK_ROWS = 2048
"""Rows per block: a 2048 x 2048 float64 block is 32 MiB."""

REFINE = 1e-4
"""Below this fraction of |a|^2 + |b|^2 a squared distance is recomputed from differences.

The matrix-product form's error in d^2 is ~1e-14 of the squared norms, so above
the cut-off a distance is accurate to ~1e-10 relative."""

REFINE_PAIRS = 4096
"""Pairs recomputed at once: bounds the [pairs, D] difference matrix (32 MiB at D=1024)."""


def _as_tensor(features: np.ndarray, name: str) -> torch.Tensor:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise SpeciesganError(
            f"{name} features must be a 2-D array [images, dims], got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise SpeciesganError(f"{name} features contain NaN or infinite values")
    return torch.from_numpy(array)


def common_frame(
    first: np.ndarray, second: np.ndarray, names: tuple[str, str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature sets as float64 tensors, shifted by their joint mean.

    Euclidean distances do not depend on the shift; the smaller norms make the
    matrix-product distances more accurate (see the module docstring).  ``names``
    name the sets in error messages.
    """
    a, b = _as_tensor(first, names[0]), _as_tensor(second, names[1])
    if a.shape[1] != b.shape[1]:
        raise SpeciesganError(
            f"{names[0]} features have {a.shape[1]} dims but {names[1]} features have "
            f"{b.shape[1]}: both must come from the same feature extractor"
        )
    total = a.shape[0] + b.shape[0]
    if total == 0:
        return a, b
    shift = (a.sum(dim=0) + b.sum(dim=0)) / total
    return a - shift, b - shift


def block_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [len(a), len(b)] between two chunks of rows, small ones exact."""
    distances = torch.cdist(a, b, compute_mode="use_mm_for_euclid_dist")
    scale = a.square().sum(dim=1)[:, None] + b.square().sum(dim=1)[None, :]
    rows, cols = torch.nonzero(distances.square() < REFINE * scale, as_tuple=True)
    for start in range(0, len(rows), REFINE_PAIRS):
        r, c = rows[start : start + REFINE_PAIRS], cols[start : start + REFINE_PAIRS]
        distances[r, c] = torch.linalg.vector_norm(a[r] - b[c], dim=1)
    return distances


def _starts(count: int) -> range:
    return range(0, count, CHUNK_ROWS)


def kth_neighbour_distances(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest *other* row.

    A row is not its own neighbour, but an identical other row is one, at
    distance 0.  Needs more than ``k`` rows (callers check, naming the set).
    """
    radii = torch.empty(len(x), dtype=torch.float64)
    for i in _starts(len(x)):
        rows = x[i : i + CHUNK_ROWS]
        best = torch.full((len(rows), k), torch.inf, dtype=torch.float64)
        for j in _starts(len(x)):
            block = block_distances(rows, x[j : j + CHUNK_ROWS])
            if i == j:  # row and column chunks share boundaries: self pairs are this diagonal
                block.fill_diagonal_(torch.inf)
            best = torch.cat([best, block], dim=1).topk(k, dim=1, largest=False).values
        radii[i : i + CHUNK_ROWS] = best[:, k - 1]
    return radii


def nearest_neighbours(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to, and index of, each ``a`` row's nearest ``b`` row (ties: lowest index)."""
    distances = torch.full((len(a),), torch.inf, dtype=torch.float64)
    indices = torch.zeros(len(a), dtype=torch.long)
    for i in _starts(len(a)):
        rows = slice(i, i + CHUNK_ROWS)
        for j in _starts(len(b)):
            closest, where = block_distances(a[rows], b[j : j + CHUNK_ROWS]).min(dim=1)
            better = closest < distances[rows]
            distances[rows] = torch.where(better, closest, distances[rows])
            indices[rows] = torch.where(better, where + j, indices[rows])
    return distances, indices


def ball_hits(
    centres: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, closed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """How many balls (``centres[i]``, ``radii[i]``) hold each point; which balls hold any.

    ``closed`` counts a point exactly on a sphere as inside (distance <= radius).
    Returns (int64 [len(points)], bool [len(centres)]): density needs the first,
    coverage the second, from the same distances.  Centres are the block rows, as
    in :func:`kth_neighbour_distances`: the matrix-product distance is not bitwise
    symmetric, and computing d(centre, point) the way the radius d(centre,
    neighbour) was computed keeps exact ties (a set compared with itself) on the
    sphere.
    """
    counts = torch.zeros(len(points), dtype=torch.long)
    covered = torch.zeros(len(centres), dtype=torch.bool)
    for i in _starts(len(centres)):
        limit = radii[i : i + CHUNK_ROWS][:, None]
        for j in _starts(len(points)):
            block = block_distances(centres[i : i + CHUNK_ROWS], points[j : j + CHUNK_ROWS])
            inside = block <= limit if closed else block < limit
            counts[j : j + CHUNK_ROWS] += inside.sum(dim=0)
            covered[i : i + CHUNK_ROWS] |= inside.any(dim=1)
    return counts, covered


def mutual_ball_hits(
    a: torch.Tensor, b: torch.Tensor, a_radii: torch.Tensor, b_radii: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which ``b`` rows lie in some closed ball around an ``a`` row, and vice versa.

    Precision and recall need both directions of the same a-b distances; one
    pass over the blocks serves both, saving a quarter of their cost.  Returns
    (bool [len(b)], bool [len(a)]).
    """
    b_inside = torch.zeros(len(b), dtype=torch.bool)
    a_inside = torch.zeros(len(a), dtype=torch.bool)
    for i in _starts(len(a)):
        for j in _starts(len(b)):
            block = block_distances(a[i : i + CHUNK_ROWS], b[j : j + CHUNK_ROWS])
            in_a_balls = block <= a_radii[i : i + CHUNK_ROWS][:, None]
            in_b_balls = block <= b_radii[j : j + CHUNK_ROWS][None, :]
            b_inside[j : j + CHUNK_ROWS] |= in_a_balls.any(dim=0)
            a_inside[i : i + CHUNK_ROWS] |= in_b_balls.any(dim=1)
    return b_inside, a_inside


def require_more_than(x: torch.Tensor, k: int, name: str, metric: str) -> None:
    """Raise unless ``x`` has more than ``k`` rows, as a k-th-neighbour radius needs."""
    if len(x) <= k:
        raise SpeciesganError(
            f"{metric} with k={k} needs more than {k} {name} images, got {len(x)}: each "
            f"image's radius is the distance to its k-th nearest other {name} image"
        )
