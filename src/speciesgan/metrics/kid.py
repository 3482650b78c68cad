"""Kernel Inception Distance (Bińkowski et al., 2018).

KID is the squared MMD between real and generated Inception features under the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3.  Its estimator is unbiased, so
unlike FID it is meaningful with a few dozen images: this is what makes a
per-species score possible.  It is averaged over random subsets (seeded), and the
spread over subsets is reported as its standard deviation.
"""

from __future__ import annotations

import numpy as np

from speciesgan.errors import SpeciesganError


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


def kernel_inception_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    seed: int,
    num_subsets: int = 100,
    subset_size: int = 1000,
) -> dict[str, float | int]:
    """KID mean and std over ``num_subsets`` random subsets of both feature sets.

    ``subset_size`` is capped by the smaller set; both sets need at least 2 rows.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise SpeciesganError(
            f"KID needs at least 2 images per set, got {a.shape[0]} and {b.shape[0]}"
        )
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
        "subset_size": int(size),
        "num_subsets": int(num_subsets),
    }
