"""Kernel Inception Distance (Bińkowski et al., 2018).

KID is the squared MMD between real and generated Inception features under the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3.  Its estimator is unbiased, so
unlike FID it is meaningful with a few dozen images: this is what makes a
per-species score possible.  It is averaged over random subsets (seeded), and the
spread over subsets is reported as its standard deviation.

When the subset size reaches the size of either set (always so per species,
with a few dozen generated images), every "subset" of that set is the set
itself and the spread over subsets shrinks to the other set's share or to 0.
Then the estimate is computed once on both whole sets and its standard
deviation is the two-sample jackknife estimate (leave out one image of either
set at a time), which measures the estimate's own sampling spread.
"""

from __future__ import annotations

import numpy as np

from speciesgan.util.errors import SpeciesganError


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for all pairs of rows."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate: within-set means leave out the diagonal k(x_i, x_i)."""
    m, n = x.shape[0], y.shape[0]
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def jackknife_std(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sample jackknife standard deviation of :func:`mmd2_unbiased` (x, y).

    Each leave-one-out estimate comes from row sums of the full kernel matrices,
    so the whole jackknife costs the same three kernel matrices as one estimate.
    Both sets need at least 3 rows.
    """
    m, n = x.shape[0], y.shape[0]
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    rows_xx = k_xx.sum(axis=1) - np.diag(k_xx)  # each row without its diagonal entry
    rows_yy = k_yy.sum(axis=1) - np.diag(k_yy)
    sum_xx, sum_yy, sum_xy = rows_xx.sum(), rows_yy.sum(), k_xy.sum()
    # leave out x_i: its row and column drop from the x-x sum, its row from the x-y sum
    without_x = (
        (sum_xx - 2 * rows_xx) / ((m - 1) * (m - 2))
        + sum_yy / (n * (n - 1))
        - 2 * (sum_xy - k_xy.sum(axis=1)) / ((m - 1) * n)
    )
    without_y = (
        sum_xx / (m * (m - 1))
        + (sum_yy - 2 * rows_yy) / ((n - 1) * (n - 2))
        - 2 * (sum_xy - k_xy.sum(axis=0)) / (m * (n - 1))
    )
    variance = (m - 1) / m * np.sum((without_x - without_x.mean()) ** 2) + (n - 1) / n * np.sum(
        (without_y - without_y.mean()) ** 2
    )
    return float(np.sqrt(variance))


def kernel_inception_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    seed: int,
    num_subsets: int = 100,
    subset_size: int = 1000,
) -> dict[str, float | int]:
    """KID mean and std over ``num_subsets`` random subsets of both feature sets.

    ``subset_size`` is capped by the smaller set; both sets need at least 2 rows.
    When the subset covers a whole set (and both have 3 or more rows), the result
    is the whole-set estimate with its jackknife std (see the module docstring);
    ``std_method`` says which.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise SpeciesganError(
            f"KID needs at least 2 images per set, got {a.shape[0]} and {b.shape[0]}"
        )
    if size in (a.shape[0], b.shape[0]) and size >= 3:
        return {
            "mean": mmd2_unbiased(a, b),
            "std": jackknife_std(a, b),
            "std_method": "jackknife",
            "subset_size": int(size),
            "num_subsets": 1,
        }
    rng = np.random.default_rng(seed)
    estimates = np.array(
        [
            mmd2_unbiased(
                a[rng.choice(a.shape[0], size, replace=False)],
                b[rng.choice(b.shape[0], size, replace=False)],
            )
            for _ in range(num_subsets)
        ]
    )
    return {
        "mean": float(estimates.mean()),
        "std": float(estimates.std()),
        "std_method": "subsets",
        "subset_size": int(size),
        "num_subsets": int(num_subsets),
    }
