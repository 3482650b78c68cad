"""Inception Score from the Inception network's 1008-way logits.

IS = exp(E_x KL(p(y|x) || p(y))), computed per split of the images and reported
as mean and standard deviation over splits, as in Salimans et al. (2016).  The
images are shuffled (seeded) before splitting, as torch-fidelity does: the
evaluation generates species by species, and contiguous splits would each hold a
few species only, scoring a perfect 50-species generator about 5 instead of 50.  Every
step runs in float64 (log-softmax, not softmax then log) so that nearly-one-hot
predictions do not lose the small probabilities that the KL term depends on.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.special import log_softmax, logsumexp

from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)


def _split_score(log_probs: np.ndarray) -> float:
    """exp of the mean KL divergence between each p(y|x) and the split's marginal p(y)."""
    log_marginal = logsumexp(log_probs, axis=0) - np.log(log_probs.shape[0])
    kl = np.sum(np.exp(log_probs) * (log_probs - log_marginal), axis=1)
    return float(np.exp(np.mean(kl)))


def inception_score(logits: np.ndarray, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the IS over ``splits`` equal parts of ``logits`` [N, C].

    The rows are put in the order of a permutation seeded by ``seed`` first, so
    the score does not depend on the order the images were generated in.  Like
    the original implementation, the parts have N // splits images each and the
    remainder is left out.  With fewer images than splits, splits is reduced.
    """
    logits = np.asarray(logits, dtype=np.float64)
    count = logits.shape[0]
    if count < 1:
        raise SpeciesganError("Inception Score needs at least one image")
    if splits > count:
        log.warning(
            "Inception Score: %d images, reducing splits from %d to %d", count, splits, count
        )
        splits = count
    logits = logits[np.random.default_rng(seed).permutation(count)]
    log_probs = log_softmax(logits, axis=1)
    part = count // splits
    scores = [_split_score(log_probs[k * part : (k + 1) * part]) for k in range(splits)]
    return float(np.mean(scores)), float(np.std(scores))
